#include "hilo/distill/augment.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "hilo/io/options_json.hpp"

namespace hilo::distill {

std::string AugmentOptions::validate() const {
  const std::pair<const char*, double> sigmas[] = {{"shift_px", shift_px}, {"rotation_deg", rotation_deg},
                                                   {"scale", scale},       {"defocus_px", defocus_px},
                                                   {"gain", gain},         {"dark", dark}};
  for (const auto& [key, v] : sigmas)
    if (!(v >= 0) || !std::isfinite(v))
      return std::string("student.augment.") + key + " must be a finite σ >= 0, got " + std::to_string(v);
  if (rotation_deg > 10) return "student.augment.rotation_deg must be <= 10, got " + std::to_string(rotation_deg);
  if (scale > 0.1) return "student.augment.scale must be <= 0.1, got " + std::to_string(scale);
  if (gain > 0.3) return "student.augment.gain must be <= 0.3 (the gain stays positive), got " + std::to_string(gain);
  if (defocus_px > 5) return "student.augment.defocus_px must be <= 5, got " + std::to_string(defocus_px);
  return {};
}

namespace {
// Normalised Gaussian taps of σ px, radius ⌈3σ⌉ (σ = 0: the identity).
std::vector<double> gaussian_taps(double sigma) {
  if (sigma <= 0) return {1.0};
  const int r = static_cast<int>(std::ceil(3.0 * sigma));
  std::vector<double> g(2 * r + 1);
  double sum = 0;
  for (int i = -r; i <= r; ++i) sum += g[i + r] = std::exp(-0.5 * i * i / (sigma * sigma));
  for (double& v : g) v /= sum;
  return g;
}

// Separable blur of an H × W map with symmetric taps, zero outside: a symmetric matrix, so it is its
// own transpose.
sim::RArray blur(const sim::RArray& in, const std::vector<double>& g) {
  if (g.size() == 1) return in;
  const int r = static_cast<int>(g.size() / 2);
  const Eigen::Index H = in.rows(), W = in.cols();
  sim::RArray tmp = sim::RArray::Zero(H, W), out = sim::RArray::Zero(H, W);
  for (Eigen::Index y = 0; y < H; ++y)
    for (Eigen::Index x = 0; x < W; ++x)
      for (int i = -r; i <= r; ++i)
        if (x + i >= 0 && x + i < W) tmp(y, x) += g[i + r] * in(y, x + i);
  for (Eigen::Index y = 0; y < H; ++y)
    for (int i = -r; i <= r; ++i)
      if (y + i >= 0 && y + i < H) out.row(y) += g[i + r] * tmp.row(y + i);
  return out;
}
}  // namespace

FrontEndJitter::FrontEndJitter(const AugmentOptions& options, const sim::KernelTiling& layout)
    : o_(options), layout_(layout) {
  io::require_valid(o_.validate());
  io::require_valid(layout_.validate());
}

void FrontEndJitter::draw(Eigen::Index n, std::mt19937_64& rng) {
  std::normal_distribution<double> e(0.0, 1.0);
  draws_.assign(static_cast<std::size_t>(n), {});
  for (auto& d : draws_) {
    d.blur_px = o_.defocus_px * std::abs(e(rng));
    d.pose.shift_x_px = o_.shift_px * e(rng);
    d.pose.shift_y_px = o_.shift_px * e(rng);
    d.pose.rotation_deg = o_.rotation_deg * e(rng);
    d.pose.scale = 1.0 + o_.scale * e(rng);
    d.pose.gain = 1.0 + o_.gain * e(rng);
    d.dark.resize(static_cast<std::size_t>(layout_.count));
    for (double& v : d.dark) v = o_.dark * e(rng);
  }
}

sim::Pose FrontEndJitter::map_pose(const FrontEndDraw& d, int k) const {
  // Map k's centre relative to the frame centre, both in warp_image's convention (index size / 2).
  const auto [r0, c0] = layout_.map_origin(k);
  const double cx = double(c0 + layout_.object_cols / 2) - double(layout_.canvas_cols() / 2);
  const double cy = double(r0 + layout_.object_rows / 2) - double(layout_.canvas_rows() / 2);
  const double th = d.pose.rotation_deg * std::numbers::pi / 180.0, s = d.pose.scale;
  sim::Pose p = d.pose;
  p.shift_x_px += s * (std::cos(th) * cx - std::sin(th) * cy) - cx;
  p.shift_y_px += s * (std::sin(th) * cx + std::cos(th) * cy) - cy;
  return p;
}

void FrontEndJitter::check(const MatD& y) const {
  const Eigen::Index HW = layout_.object_rows * layout_.object_cols;
  if (y.rows() != static_cast<Eigen::Index>(draws_.size()) || y.cols() != layout_.count * HW)
    throw std::invalid_argument("student.augment: maps must be " + std::to_string(draws_.size()) + " x " +
                                std::to_string(layout_.count * HW) + " (the drawn samples x K·H·W), got " +
                                std::to_string(y.rows()) + " x " + std::to_string(y.cols()));
}

MatD FrontEndJitter::apply(const MatD& y) const {
  check(y);
  const Eigen::Index H = layout_.object_rows, W = layout_.object_cols, HW = H * W;
  MatD m(y.rows(), y.cols());
  for (Eigen::Index i = 0; i < y.rows(); ++i) {
    const FrontEndDraw& d = draws_[static_cast<std::size_t>(i)];
    const auto g = gaussian_taps(d.blur_px);
    for (int k = 0; k < layout_.count; ++k) {
      const sim::RArray yk = Eigen::Map<const sim::RArray>(y.row(i).data() + k * HW, H, W);
      const sim::RArray mk = d.pose.gain * sim::warp_image(blur(yk, g), map_pose(d, k)) + d.dark[k];
      Eigen::Map<sim::RArray>(m.row(i).data() + k * HW, H, W) = mk;
    }
  }
  return m;
}

MatD FrontEndJitter::apply_t(const MatD& dm) const {
  check(dm);
  const Eigen::Index H = layout_.object_rows, W = layout_.object_cols, HW = H * W;
  MatD dy(dm.rows(), dm.cols());
  for (Eigen::Index i = 0; i < dm.rows(); ++i) {
    const FrontEndDraw& d = draws_[static_cast<std::size_t>(i)];
    const auto g = gaussian_taps(d.blur_px);
    for (int k = 0; k < layout_.count; ++k) {
      const sim::RArray dk = Eigen::Map<const sim::RArray>(dm.row(i).data() + k * HW, H, W);
      Eigen::Map<sim::RArray>(dy.row(i).data() + k * HW, H, W) =
          blur(sim::warp_image_adjoint(d.pose.gain * dk, map_pose(d, k)), g);
    }
  }
  return dy;
}

}  // namespace hilo::distill
