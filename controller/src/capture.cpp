#include "hilo/controller/capture.hpp"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include <opencv2/imgcodecs.hpp>

#include "hilo/controller/figures.hpp"
#include "hilo/controller/storage.hpp"

namespace hilo::controller {

using nlohmann::json;

std::string CaptureOptions::validate() const {
  if (chunk_records < 1) return "capture.chunk_records must be >= 1, got 0";
  if (!(chunk_seconds > 0)) return "capture.chunk_seconds must be > 0, got " + std::to_string(chunk_seconds);
  if (grab_timeout.count() < 1 || grab_timeout.count() > 600000) {
    return "capture.timeout_ms must be in [1, 600000], got " + std::to_string(grab_timeout.count());
  }
  if (scale < 0 || scale > 256) return "capture.scale must be in [0, 256], got " + std::to_string(scale);
  return {};
}

int fitting_scale(int rows, int cols, int slm_rows, int slm_cols) {
  if (rows <= 0 || cols <= 0) return 0;
  return std::min(slm_rows / rows, slm_cols / cols);
}

cv::Mat place_on_slm(const std::uint8_t* image, int rows, int cols, int slm_rows, int slm_cols, int bit_depth,
                     int scale) {
  if (scale == 0) scale = fitting_scale(rows, cols, slm_rows, slm_cols);
  if (scale < 1 || rows * scale > slm_rows || cols * scale > slm_cols) {
    throw std::invalid_argument("input " + std::to_string(rows) + "x" + std::to_string(cols) + " at scale " +
                                std::to_string(scale) + " does not fit the " + std::to_string(slm_rows) + "x" +
                                std::to_string(slm_cols) + " SLM");
  }
  const bool wide = bit_depth > 8;
  const double gain = wide ? (std::ldexp(1.0, bit_depth) - 1.0) / 255.0 : 1.0;
  cv::Mat p = cv::Mat::zeros(slm_rows, slm_cols, wide ? CV_16UC1 : CV_8UC1);
  const int r0 = (slm_rows - rows * scale) / 2, c0 = (slm_cols - cols * scale) / 2;
  for (int r = 0; r < rows * scale; ++r) {
    const std::uint8_t* src = image + static_cast<std::size_t>(r / scale) * cols;
    if (wide) {
      auto* dst = p.ptr<std::uint16_t>(r0 + r) + c0;
      for (int c = 0; c < cols * scale; ++c) dst[c] = static_cast<std::uint16_t>(std::lround(src[c / scale] * gain));
    } else {
      auto* dst = p.ptr<std::uint8_t>(r0 + r) + c0;
      for (int c = 0; c < cols * scale; ++c) dst[c] = src[c / scale];
    }
  }
  return p;
}

namespace {

struct Pending {
  std::string frames, inputs, indices, labels;
  std::size_t n = 0;
};

std::string frame_dtype(int type) { return type == CV_8UC1 ? "|u1" : "<u2"; }

std::vector<std::uint8_t> encode_png(const cv::Mat& bgr) {
  std::vector<std::uint8_t> buf;
  cv::imencode(".png", bgr, buf);
  return buf;
}

}  // namespace

JobOutcome run_capture(const CaptureInputs& in, const CaptureOptions& opt, Devices& devices,
                       const std::filesystem::path& run_dir, json manifest_base, JobControl& ctl,
                       const std::function<double()>& monotonic_s) {
  if (auto e = opt.validate(); !e.empty()) return {JobState::failed, e};
  std::lock_guard dev_lock(devices.mutex);
  auto& slm = devices.slm;
  auto& cam = devices.camera;
  const auto& set = *in.set;
  const int rows = static_cast<int>(set.rows), cols = static_cast<int>(set.cols);
  const int scale = opt.scale == 0 ? fitting_scale(rows, cols, slm.height_px(), slm.width_px()) : opt.scale;

  manifest_base["placement"] = {{"scale", scale},
                                {"slm_rows", slm.height_px()},
                                {"slm_cols", slm.width_px()},
                                {"slm_bit_depth", slm.bit_depth()}};
  manifest_base["devices"] = {{"slm", slm.name()},
                              {"camera", cam.name()},
                              {"exposure_ms", cam.exposure_ms()},
                              {"gain_db", cam.gain_db()}};
  RunWriter w(run_dir, std::move(manifest_base));

  const auto total = static_cast<std::int64_t>(in.count);
  Pending pend;
  int frame_type = -1, frame_rows = 0, frame_cols = 0;
  std::vector<cv::Mat> preview_frames, preview_inputs;
  double chunk_start = monotonic_s();

  auto commit = [&] {
    if (pend.n == 0) return;
    std::vector<RunWriter::Array> arrays;
    arrays.push_back({"frames", frame_dtype(frame_type), {pend.n, std::size_t(frame_rows), std::size_t(frame_cols)},
                      std::move(pend.frames)});
    arrays.push_back({"inputs", "|u1", {pend.n, set.rows, set.cols}, std::move(pend.inputs)});
    arrays.push_back({"indices", "<i8", {pend.n}, std::move(pend.indices)});
    if (in.has_labels) arrays.push_back({"labels", "|u1", {pend.n}, std::move(pend.labels)});
    w.append_chunk(arrays, pend.n);
    pend = Pending{};
    ctl.checkpoint(static_cast<std::int64_t>(w.records()));
    chunk_start = monotonic_s();
  };

  auto finish = [&](JobState st, std::string err) -> JobOutcome {
    commit();
    if (!preview_frames.empty() && opt.previews > 0) {
      ImageOptions io;
      io.scale = std::max(1, 112 / std::max(1, std::max(frame_rows, frame_cols)));
      w.add_preview("preview_frames.png", encode_png(render_grid(preview_frames, 4, {}, io)));
      io.scale = std::max(1, 112 / std::max(rows, cols));
      io.cmap = Colormap::gray;
      w.add_preview("preview_inputs.png", encode_png(render_grid(preview_inputs, 4, {}, io)));
    }
    json extra = {{"error", err}};
    w.finish(std::string(to_string(st)), extra);
    return {st, std::move(err)};
  };

  ctl.progress(0, total);
  for (std::size_t k = 0; k < in.count; ++k) {
    if (ctl.stop_requested()) {
      const bool shutdown = ctl.stop_reason() == StopReason::shutdown;
      return finish(shutdown ? JobState::interrupted : JobState::cancelled,
                    shutdown ? "daemon shut down during the job" : "cancelled by request");
    }
    const std::size_t idx = in.start + k;
    const std::uint8_t* img = set.images.data() + idx * set.rows * set.cols;
    cv::Mat pattern;
    try {
      pattern = place_on_slm(img, rows, cols, slm.height_px(), slm.width_px(), slm.bit_depth(), scale);
    } catch (const std::invalid_argument& e) {
      return finish(JobState::failed, e.what());
    }
    if (auto err = slm.show(pattern)) {
      return finish(JobState::failed, "input " + std::to_string(idx) + ": " + err->message);
    }
    auto fr = cam.grab(opt.grab_timeout);
    if (!fr) return finish(JobState::failed, "input " + std::to_string(idx) + ": " + fr.error().message);
    const cv::Mat& f = fr.value().image;
    if (frame_type < 0) {
      if (f.type() != CV_8UC1 && f.type() != CV_16UC1) {
        return finish(JobState::failed, "camera returned a frame of unsupported type " + std::to_string(f.type()));
      }
      frame_type = f.type();
      frame_rows = f.rows;
      frame_cols = f.cols;
    } else if (f.type() != frame_type || f.rows != frame_rows || f.cols != frame_cols) {
      return finish(JobState::failed, "input " + std::to_string(idx) + ": frame size or type changed during the capture");
    }
    const cv::Mat fc = f.isContinuous() ? f : f.clone();
    pend.frames.append(reinterpret_cast<const char*>(fc.data), fc.total() * fc.elemSize());
    pend.inputs.append(reinterpret_cast<const char*>(img), set.rows * set.cols);
    const std::int64_t i64 = static_cast<std::int64_t>(idx);
    pend.indices.append(reinterpret_cast<const char*>(&i64), sizeof i64);  // little-endian host
    if (in.has_labels) pend.labels.push_back(static_cast<char>(set.labels[idx]));
    ++pend.n;
    if (preview_frames.size() < opt.previews) {
      preview_frames.push_back(fc.clone());
      preview_inputs.push_back(cv::Mat(rows, cols, CV_8UC1, const_cast<std::uint8_t*>(img)).clone());
    }
    ctl.progress(static_cast<std::int64_t>(k + 1), total);
    if (pend.n >= opt.chunk_records || monotonic_s() - chunk_start >= opt.chunk_seconds) commit();
  }
  return finish(JobState::done, "");
}

}  // namespace hilo::controller
