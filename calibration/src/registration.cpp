#include "hilo/calibration/registration.hpp"

#include <cmath>
#include <numbers>
#include <sstream>
#include <stdexcept>

#include <Eigen/Dense>
#include <opencv2/imgproc.hpp>

namespace hilo::calibration {

namespace {
constexpr double kDeg = std::numbers::pi / 180.0;

Eigen::Vector2d centre(Eigen::Index rows, Eigen::Index cols) { return {double(cols / 2), double(rows / 2)}; }

Eigen::Matrix2d rotation(double deg) {
  const double c = std::cos(deg * kDeg), s = std::sin(deg * kDeg);
  Eigen::Matrix2d m;
  m << c, -s, s, c;
  return m;
}

double bilinear(const RArray& a, double x, double y) {
  const double fx = std::floor(x), fy = std::floor(y);
  const auto c0 = Eigen::Index(fx), r0 = Eigen::Index(fy);
  if (r0 < -1 || r0 >= a.rows() || c0 < -1 || c0 >= a.cols()) return 0.0;
  auto at = [&](Eigen::Index r, Eigen::Index c) {
    return (r >= 0 && r < a.rows() && c >= 0 && c < a.cols()) ? a(r, c) : 0.0;
  };
  const double ax = x - fx, ay = y - fy;
  return (1 - ay) * ((1 - ax) * at(r0, c0) + ax * at(r0, c0 + 1)) +
         ay * ((1 - ax) * at(r0 + 1, c0) + ax * at(r0 + 1, c0 + 1));
}

Pose pose_from(const Eigen::Matrix<double, 5, 1>& q, double gain) {
  Pose p;
  p.shift_x_px = q[0];
  p.shift_y_px = q[1];
  p.rotation_deg = q[2];
  p.scale = std::exp(q[3]);
  p.gain = gain;
  return p;
}

void check(const std::string& rule) {
  if (!rule.empty()) throw std::invalid_argument(rule);
}

}  // namespace

RArray gaussian_blur(const RArray& in, double sigma_px) {
  const double s = std::abs(sigma_px);
  if (s < 1e-3) return in;
  RArray out(in.rows(), in.cols());
  const cv::Mat src(int(in.rows()), int(in.cols()), CV_64F, const_cast<double*>(in.data()));
  cv::Mat dst(int(in.rows()), int(in.cols()), CV_64F, out.data());
  const int half = int(std::ceil(4 * s));
  cv::GaussianBlur(src, dst, cv::Size(2 * half + 1, 2 * half + 1), s, s, cv::BORDER_CONSTANT);
  return out;
}

namespace {
// A pose's map of one frame size with its rotations evaluated once (the warps below call it per pixel,
// where a sine and cosine per call were 6 % of a pipeline's CPU). Same arithmetic as before, so the
// same bits.
struct PoseMap {
  Eigen::Matrix2d rot, rot_inv;
  Eigen::Vector2d c, shift;
  double scale;
  PoseMap(const Pose& pose, Eigen::Index rows, Eigen::Index cols)
      : rot(rotation(pose.rotation_deg)), rot_inv(rotation(-pose.rotation_deg)), c(centre(rows, cols)),
        shift(pose.shift_x_px, pose.shift_y_px), scale(pose.scale) {}
  Eigen::Vector2d forward(const Eigen::Vector2d& p) const { return scale * (rot * (p - c)) + c + shift; }
  Eigen::Vector2d inverse(const Eigen::Vector2d& p) const { return rot_inv * (p - c - shift) / scale + c; }
};

// out(r, c) = bilinear(in) at map(c, r).
template <typename Map>
RArray resample(const RArray& in, Map&& map) {
  RArray out(in.rows(), in.cols());
  for (Eigen::Index r = 0; r < in.rows(); ++r)
    for (Eigen::Index c = 0; c < in.cols(); ++c) {
      const Eigen::Vector2d p = map(Eigen::Vector2d(double(c), double(r)));
      out(r, c) = bilinear(in, p.x(), p.y());
    }
  return out;
}
}  // namespace

Eigen::Vector2d apply_pose(const Pose& pose, const Eigen::Vector2d& p, Eigen::Index rows, Eigen::Index cols) {
  return PoseMap(pose, rows, cols).forward(p);
}

Eigen::Vector2d apply_inverse_pose(const Pose& pose, const Eigen::Vector2d& p, Eigen::Index rows, Eigen::Index cols) {
  return PoseMap(pose, rows, cols).inverse(p);
}

RArray warp_forward(const RArray& in, const Pose& pose) {
  if (pose.is_identity_warp()) return in;
  const PoseMap m(pose, in.rows(), in.cols());
  return resample(in, [&](const Eigen::Vector2d& p) { return m.inverse(p); });
}

RArray warp_back(const RArray& measured, const Pose& pose) {
  if (pose.is_identity_warp()) return measured;
  const PoseMap m(pose, measured.rows(), measured.cols());
  return resample(measured, [&](const Eigen::Vector2d& p) { return m.forward(p); });
}

double max_displacement_px(const Pose& a, const Pose& b, const Rect& f, Eigen::Index rows, Eigen::Index cols) {
  double worst = 0.0;
  for (const double x : {f.x0, f.x0 + f.w})
    for (const double y : {f.y0, f.y0 + f.h})
      worst = std::max(worst, (apply_pose(a, {x, y}, rows, cols) - apply_pose(b, {x, y}, rows, cols)).norm());
  return worst;
}

std::string PoseFitOptions::validate() const {
  if (max_iterations < 1) return "fit.max_iterations must be >= 1, got " + std::to_string(max_iterations);
  if (!(tolerance_px > 0)) return "fit.tolerance_px must be > 0, got " + std::to_string(tolerance_px);
  return {};
}

std::string RegistrationOptions::validate() const {
  if (probes < 1) return "registration.probes must be >= 1, got " + std::to_string(probes);
  if (frames < 1) return "registration.frames must be >= 1, got " + std::to_string(frames);
  if (!(fill > 0 && fill < 1)) return "registration.fill must be in (0, 1), got " + std::to_string(fill);
  if (!(level > 0 && level <= 1)) return "registration.level must be in (0, 1], got " + std::to_string(level);
  return fit.validate();
}

PoseFit fit_pose(const std::vector<RArray>& measured, const std::vector<RArray>& predicted,
                 const PoseFitOptions& options, const Pose& initial) {
  check(options.validate());
  if (measured.empty() || measured.size() != predicted.size())
    throw std::invalid_argument("fit_pose: need as many measured as predicted images, at least one");
  const Eigen::Index R = measured[0].rows(), C = measured[0].cols();
  for (std::size_t k = 0; k < measured.size(); ++k)
    if (measured[k].rows() != R || measured[k].cols() != C || predicted[k].rows() != R || predicted[k].cols() != C)
      throw std::invalid_argument("fit_pose: all images must have one size");
  const int K = int(measured.size());

  using Vec5 = Eigen::Matrix<double, 5, 1>;
  Vec5 q;
  q << initial.shift_x_px, initial.shift_y_px, initial.rotation_deg, std::log(initial.scale),
      options.fit_blur ? options.initial_blur_px : 0.0;
  std::ostringstream report;
  if (options.coarse_phase_correlation) {
    // Integer-robust starting shift from the first pair, relative to the initial pose.
    RArray a = warp_forward(predicted[0], pose_from(q, 1.0)), b = measured[0];
    cv::Mat ma(int(R), int(C), CV_64F, a.data()), mb(int(R), int(C), CV_64F, b.data());
    double response = 0;
    const cv::Point2d d = cv::phaseCorrelate(ma, mb, cv::noArray(), &response);
    q[0] += d.x;
    q[1] += d.y;
    report << "phase correlation shift (" << d.x << ", " << d.y << "), response " << response << "; ";
  }
  std::vector<int> active = {0, 1};
  if (options.fit_rotation) active.push_back(2);
  if (options.fit_scale) active.push_back(3);
  if (options.fit_blur) active.push_back(4);
  const int G = int(active.size());
  const int N = G + 1 + K;  // geometry, gain a, offsets b_k
  const double h[5] = {0.01, 0.01, 0.01, 1e-4, 0.01};

  // Photometric parameters for the current geometry by linear least squares.
  auto photometric = [&](const std::vector<RArray>& w, double& a, std::vector<double>& b) {
    double spp = 0, smp = 0;
    std::vector<double> mp(K), mm(K);
    for (int k = 0; k < K; ++k) {
      mp[k] = w[k].mean();
      mm[k] = measured[k].mean();
      spp += ((w[k] - mp[k]).square()).sum();
      smp += ((w[k] - mp[k]) * (measured[k] - mm[k])).sum();
    }
    a = spp > 0 ? smp / spp : 0.0;
    b.resize(K);
    for (int k = 0; k < K; ++k) b[k] = mm[k] - a * mp[k];
  };
  auto warped = [&](const Vec5& qq) {
    std::vector<RArray> w;
    for (const auto& p : predicted) w.push_back(warp_forward(gaussian_blur(p, qq[4]), pose_from(qq, 1.0)));
    return w;
  };
  auto cost = [&](const std::vector<RArray>& w, double a, const std::vector<double>& b) {
    double s = 0;
    for (int k = 0; k < K; ++k) s += (measured[k] - a * w[k] - b[k]).square().sum();
    return s;
  };

  std::vector<RArray> w = warped(q);
  double a = 0;
  std::vector<double> b;
  photometric(w, a, b);
  double E = cost(w, a, b);
  double lambda = 1e-3;
  PoseFit fit;
  int it = 0;
  for (; it < options.max_iterations; ++it) {
    // Jacobian columns of the geometric parameters by central differences of the warped prediction.
    std::vector<std::vector<RArray>> dW(G);
    for (int g = 0; g < G; ++g) {
      Vec5 qp = q, qm = q;
      qp[active[g]] += h[active[g]];
      qm[active[g]] -= h[active[g]];
      const auto wp = warped(qp), wm = warped(qm);
      for (int k = 0; k < K; ++k) dW[g].push_back(a * (wp[k] - wm[k]) / (2 * h[active[g]]));
    }
    Eigen::MatrixXd JtJ = Eigen::MatrixXd::Zero(N, N);
    Eigen::VectorXd Jtr = Eigen::VectorXd::Zero(N);
    for (int k = 0; k < K; ++k) {
      const RArray r = measured[k] - a * w[k] - b[k];
      std::vector<const RArray*> cols;
      for (int g = 0; g < G; ++g) cols.push_back(&dW[g][k]);
      cols.push_back(&w[k]);
      const int bk = G + 1 + k;
      for (int i = 0; i <= G; ++i) {
        for (int j = i; j <= G; ++j) JtJ(i, j) += ((*cols[i]) * (*cols[j])).sum();
        JtJ(i, bk) += cols[i]->sum();
        Jtr(i) += ((*cols[i]) * r).sum();
      }
      JtJ(bk, bk) += double(R * C);
      Jtr(bk) += r.sum();
    }
    JtJ = JtJ.selfadjointView<Eigen::Upper>();
    bool accepted = false;
    Vec5 step = Vec5::Zero();
    for (int tries = 0; tries < 12 && !accepted; ++tries) {
      Eigen::MatrixXd A = JtJ;
      A.diagonal() *= (1.0 + lambda);
      const Eigen::VectorXd d = A.ldlt().solve(Jtr);
      Vec5 qn = q;
      for (int g = 0; g < G; ++g) qn[active[g]] += d[g];
      auto wn = warped(qn);
      double an;
      std::vector<double> bn;
      photometric(wn, an, bn);
      const double En = cost(wn, an, bn);
      if (En <= E) {
        step = qn - q;
        q = qn;
        w = std::move(wn);
        a = an;
        b = std::move(bn);
        E = En;
        lambda = std::max(lambda / 4, 1e-9);
        accepted = true;
      } else {
        lambda *= 8;
      }
    }
    const double moved =
        max_displacement_px(pose_from(q, 1), pose_from(q - step, 1), {0, 0, double(C - 1), double(R - 1)}, R, C);
    if (!accepted || moved < options.tolerance_px) {
      fit.converged = true;
      ++it;
      break;
    }
  }
  fit.pose = pose_from(q, a);
  fit.blur_px = std::abs(q[4]);
  fit.offset = b;
  fit.iterations = it;
  fit.rms_residual = std::sqrt(E / double(K * R * C));
  double smm = 0, sfm = 0, sff = 0;
  for (int k = 0; k < K; ++k) {
    const RArray m = measured[k] - measured[k].mean();
    const RArray f = a * w[k] - (a * w[k]).mean();
    smm += m.square().sum();
    sff += f.square().sum();
    sfm += (m * f).sum();
  }
  fit.correlation = (smm > 0 && sff > 0) ? sfm / std::sqrt(smm * sff) : 0.0;
  report << (fit.converged ? "converged" : "stopped at the iteration limit") << " after " << fit.iterations
         << " iterations, rms residual " << fit.rms_residual << " counts, correlation " << fit.correlation;
  fit.report = report.str();
  return fit;
}

RArray registered_model(const RArray& predicted, const PoseFit& fit) {
  return warp_forward(gaussian_blur(predicted, fit.blur_px), fit.pose);
}

drivers::DeviceResult<Registration> register_input_to_camera(ProbeRig& rig, const Predictor& predict,
                                                             const DarkFrame& dark,
                                                             const RegistrationOptions& options,
                                                             std::mt19937_64& rng) {
  check(options.validate());
  Registration reg;
  std::vector<RArray> measured, predicted;
  for (int i = 0; i < options.probes; ++i) {
    reg.probes.push_back(random_binary_pattern(rig.input_rows(), rig.input_cols(), options.fill, options.level, rng));
    auto f = rig.capture(reg.probes.back(), options.frames);
    if (!f) return f.error();
    measured.push_back(apply_dark_flat(f.value(), dark));
    predicted.push_back(predict(reg.probes.back()));
  }
  reg.fit = fit_pose(measured, predicted, options.fit);
  return reg;
}

}  // namespace hilo::calibration
