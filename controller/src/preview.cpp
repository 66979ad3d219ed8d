#include "hilo/controller/preview.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace hilo::controller {

namespace {
double steady_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

std::string_view to_string(PreviewSource s) {
  switch (s) {
    case PreviewSource::frame: return "frame";
    case PreviewSource::input_slm: return "input_slm";
    case PreviewSource::element_slm: return "element_slm";
  }
  return "?";
}

std::string PreviewOptions::validate() const {
  if (!(max_per_s > 0 && max_per_s <= 100)) return "preview.max_per_s must be in (0, 100], got " + std::to_string(max_per_s);
  if (max_side_px < 16 || max_side_px > 4096) return "preview.max_side_px must be in [16, 4096], got " + std::to_string(max_side_px);
  if (histogram_bins < 2 || histogram_bins > 4096) {
    return "preview.histogram_bins must be in [2, 4096], got " + std::to_string(histogram_bins);
  }
  return {};
}

PreviewTap::PreviewTap(PreviewOptions opt) : opt_(opt) {
  if (auto e = opt_.validate(); !e.empty()) throw std::invalid_argument(e);
}

bool PreviewTap::offer(PreviewSource s, const cv::Mat& image, int bit_depth, bool force) {
  Slot& sl = slots_[static_cast<int>(s)];
  sl.offered.fetch_add(1, std::memory_order_relaxed);
  const double now = steady_s();
  if (!force && now - sl.last_accept_s.load(std::memory_order_relaxed) < 1.0 / opt_.max_per_s) {
    sl.dropped_rate.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if ((image.type() != CV_8UC1 && image.type() != CV_16UC1) || image.empty() || bit_depth < 1 || bit_depth > 16)
    return false;
  cv::Mat copy = image.clone();
  std::unique_lock lk(sl.latest_mu, std::try_to_lock);
  if (!lk.owns_lock()) {
    sl.dropped_busy.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  std::swap(sl.latest, copy);
  sl.latest_bits = bit_depth;
  sl.latest_time_s = now;
  sl.last_accept_s.store(now, std::memory_order_relaxed);
  sl.version.fetch_add(1, std::memory_order_release);
  sl.accepted.fetch_add(1, std::memory_order_relaxed);
  // `copy` (the previous image) is freed after the lock is released.
  lk.unlock();
  return true;
}

std::uint64_t PreviewTap::version(PreviewSource s) const {
  return slots_[static_cast<int>(s)].version.load(std::memory_order_acquire);
}

PreviewCounters PreviewTap::counters(PreviewSource s) const {
  const Slot& sl = slots_[static_cast<int>(s)];
  PreviewCounters c;
  c.offered = sl.offered.load();
  c.accepted = sl.accepted.load();
  c.dropped_rate = sl.dropped_rate.load();
  c.dropped_busy = sl.dropped_busy.load();
  c.encoded = sl.encodings.load();
  return c;
}

PreviewSnapshot PreviewTap::snapshot(PreviewSource s) {
  Slot& sl = slots_[static_cast<int>(s)];
  std::lock_guard enc(sl.encoded_mu);
  if (sl.encoded.version == sl.version.load(std::memory_order_acquire)) return sl.encoded;
  cv::Mat img;
  PreviewSnapshot out;
  {
    // Held only to take a reference to the image (Mat is reference counted): the offering side's
    // try_lock fails for this long at most, and its next swap leaves our reference alone.
    std::lock_guard lk(sl.latest_mu);
    img = sl.latest;
    out.version = sl.version.load(std::memory_order_acquire);
    out.bit_depth = sl.latest_bits;
    out.time_s = sl.latest_time_s;
  }
  if (img.empty()) return sl.encoded;
  out.rows = img.rows;
  out.cols = img.cols;
  const double full = std::ldexp(1.0, out.bit_depth) - 1.0;
  if (s == PreviewSource::frame) {
    const int bins = opt_.histogram_bins;
    out.histogram.assign(static_cast<std::size_t>(bins), 0);
    const double per_bin = (full + 1.0) / bins;
    double sum = 0, lo = 1e300, hi = -1e300;
    for (int r = 0; r < img.rows; ++r) {
      for (int c = 0; c < img.cols; ++c) {
        const double v = img.type() == CV_8UC1 ? img.at<std::uint8_t>(r, c) : img.at<std::uint16_t>(r, c);
        sum += v;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        if (v >= full) ++out.saturated;
        const auto b = static_cast<std::size_t>(std::clamp(static_cast<int>(v / per_bin), 0, bins - 1));
        ++out.histogram[b];
      }
    }
    out.min = lo;
    out.max = hi;
    out.mean = sum / static_cast<double>(img.total());
  }
  cv::Mat shown;
  img.convertTo(shown, CV_8UC1, 255.0 / full);
  const int side = std::max(shown.rows, shown.cols);
  if (side > opt_.max_side_px) {
    const double f = static_cast<double>(opt_.max_side_px) / side;
    cv::resize(shown, shown, {}, f, f, cv::INTER_AREA);
  }
  std::vector<std::uint8_t> buf;
  cv::imencode(".png", shown, buf, {cv::IMWRITE_PNG_COMPRESSION, 1});
  out.png.assign(buf.begin(), buf.end());
  ++sl.encodings;
  sl.encoded = out;
  return out;
}

drivers::DeviceStatus PreviewSlm::show(const cv::Mat& levels) {
  auto st = inner_.show(levels);
  if (!st) {
    last_ = levels;
    tap_.offer(source_, levels, inner_.bit_depth());
  }
  return st;
}

drivers::DeviceResult<drivers::Frame> PreviewCamera::grab(std::chrono::milliseconds timeout) {
  auto fr = inner_.grab(timeout);
  if (fr && tap_.offer(PreviewSource::frame, fr.value().image, drivers::bit_depth(inner_.pixel_format())) && input_ &&
      !input_->last_shown().empty())
    tap_.offer(PreviewSource::input_slm, input_->last_shown(), input_->bit_depth(), true);
  return fr;
}

}  // namespace hilo::controller
