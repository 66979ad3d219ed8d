#include "hilo/calibration/measured_kernels.hpp"

#include <Eigen/Cholesky>
#include <cmath>
#include <stdexcept>

#include "stats.hpp"

namespace hilo::calibration {

std::string KernelProbeOptions::validate() const {
  if (margin_px < 0 || margin_px > 10) return "bench.kernels.margin_px must be in [0, 10], got " + std::to_string(margin_px);
  if (points < 0 || points > 64) return "bench.kernels.points must be in [0, 64], got " + std::to_string(points);
  if (random_patterns < 0 || random_patterns > 256)
    return "bench.kernels.random_patterns must be in [0, 256], got " + std::to_string(random_patterns);
  if (points + random_patterns < 2)
    return "bench.kernels.points + random_patterns must be >= 2, got " + std::to_string(points + random_patterns);
  if (!(fill > 0 && fill <= 1)) return "bench.kernels.fill must be in (0, 1], got " + std::to_string(fill);
  if (frames < 1 || frames > 64) return "bench.kernels.frames must be in [1, 64], got " + std::to_string(frames);
  if (!(ridge >= 0) || !std::isfinite(ridge)) return "bench.kernels.ridge must be >= 0, got " + std::to_string(ridge);
  return {};
}

nlohmann::json MeasuredKernels::summary() const {
  return {{"kernel_size", kernel_size},
          {"support", support},
          {"correlation", correlation},
          {"mean_correlation", mean_correlation},
          {"stray", stray},
          {"design_stray", design_stray},
          {"offset", offset},
          {"fit_residual", fit_residual},
          {"read_var_counts2", read_var},
          {"shot_slope", shot_slope},
          {"probes", probes},
          {"frames", frames}};
}

std::vector<RArray> kernel_probes(int rows, int cols, int support, const KernelProbeOptions& o, std::mt19937_64& rng) {
  if (auto e = o.validate(); !e.empty()) throw std::invalid_argument(e);
  std::vector<RArray> out;
  const int sp = std::max(1, support);
  for (int p = 0; p < o.points; ++p) {
    RArray x = RArray::Zero(rows, cols);
    const int r0 = p % sp, c0 = (p * (sp / 2 + 1)) % sp;
    for (int r = r0; r < rows; r += sp)
      for (int c = c0; c < cols; c += sp) x(r, c) = 1.0;
    out.push_back(std::move(x));
  }
  for (int p = 0; p < o.random_patterns; ++p) out.push_back(random_binary_pattern(rows, cols, o.fill, 1.0, rng));
  return out;
}

distill::MatD psf_kernels(const RArray& psf, const TileLayout& layout, int support, double scale) {
  TileLayout wide = layout;
  wide.kernel_size = support;
  const auto tiles = cut_kernels(psf, wide);
  distill::MatD w(layout.count(), support * support);
  for (int j = 0; j < layout.count(); ++j)
    for (int u = 0; u < support; ++u)
      for (int v = 0; v < support; ++v) w(j, u * support + v) = scale * tiles[j](support - 1 - u, support - 1 - v);
  return w;
}

namespace {

// Regressors of every map pixel of one input: rows = pixels (row-major), columns = the s² support
// samples (u, v), then Σx, then 1.
Eigen::MatrixXd regressors(const RArray& x, int s) {
  const Eigen::Index R = x.rows(), C = x.cols();
  const int H = s / 2;
  Eigen::MatrixXd phi = Eigen::MatrixXd::Zero(R * C, s * s + 2);
  const double total = x.sum();
  for (Eigen::Index r = 0; r < R; ++r)
    for (Eigen::Index c = 0; c < C; ++c) {
      const Eigen::Index q = r * C + c;
      for (int u = 0; u < s; ++u) {
        const Eigen::Index rr = r + u - H;
        if (rr < 0 || rr >= R) continue;
        for (int v = 0; v < s; ++v) {
          const Eigen::Index cc = c + v - H;
          if (cc >= 0 && cc < C) phi(q, u * s + v) = x(rr, cc);
        }
      }
      phi(q, s * s) = total;
      phi(q, s * s + 1) = 1.0;
    }
  return phi;
}

Eigen::VectorXd flat(const RArray& m) { return Eigen::Map<const Eigen::VectorXd>(m.data(), m.size()); }

}  // namespace

MeasuredKernels fit_kernels(const std::vector<RArray>& inputs, const std::vector<std::vector<RArray>>& maps, int k,
                            int margin, double ridge) {
  if (inputs.empty() || inputs.size() != maps.size())
    throw std::invalid_argument("fit_kernels: " + std::to_string(inputs.size()) + " probes for " +
                                std::to_string(maps.size()) + " sets of maps");
  const int K = int(maps[0].size()), s = k + 2 * margin, P = s * s + 2;
  if (K < 1) throw std::invalid_argument("fit_kernels: no windows");
  const Eigen::Index R = inputs[0].rows(), C = inputs[0].cols();
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(P, P), rhs = Eigen::MatrixXd::Zero(P, K);
  std::vector<Eigen::MatrixXd> phis;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].rows() != R || inputs[i].cols() != C || int(maps[i].size()) != K)
      throw std::invalid_argument("fit_kernels: probe " + std::to_string(i) + " differs in size from probe 0");
    phis.push_back(regressors(inputs[i], s));
    G.noalias() += phis.back().transpose() * phis.back();
    for (int j = 0; j < K; ++j) {
      if (maps[i][j].rows() != R || maps[i][j].cols() != C)
        throw std::invalid_argument("fit_kernels: map " + std::to_string(j) + " of probe " + std::to_string(i) +
                                    " differs in size from the input");
      rhs.col(j).noalias() += phis.back().transpose() * flat(maps[i][j]);
    }
  }
  G.diagonal().array() += ridge * G.diagonal().mean();
  const Eigen::MatrixXd theta = G.ldlt().solve(rhs);
  MeasuredKernels mk;
  mk.kernel_size = k;
  mk.support = s;
  mk.kernels = theta.topRows(s * s).transpose();
  for (int j = 0; j < K; ++j) {
    mk.stray.push_back(theta(s * s, j));
    mk.offset.push_back(theta(s * s + 1, j));
    double err = 0, norm = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const Eigen::VectorXd m = flat(maps[i][j]);
      err += (phis[i] * theta.col(j) - m).squaredNorm();
      norm += m.squaredNorm();
    }
    mk.fit_residual.push_back(norm > 0 ? std::sqrt(err / norm) : 0.0);
  }
  mk.probes = int(inputs.size());
  return mk;
}

std::vector<RArray> kernel_maps(const MeasuredKernels& mk, const RArray& x, bool bench_change) {
  const int s = mk.support, H = s / 2;
  const Eigen::Index R = x.rows(), C = x.cols();
  const double total = x.sum();
  if (bench_change && mk.design_fit.rows() != mk.kernels.rows())
    throw std::invalid_argument("kernel_maps: the measured kernels have no design fit");
  std::vector<RArray> out;
  for (Eigen::Index j = 0; j < mk.kernels.rows(); ++j) {
    const auto jj = std::size_t(j);
    const double b = mk.stray[jj] - (bench_change ? mk.design_stray[jj] : 0.0);
    const double a = mk.offset[jj] - (bench_change ? mk.design_offset[jj] : 0.0);
    RArray m = RArray::Constant(R, C, b * total + a);
    for (int u = 0; u < s; ++u)
      for (int v = 0; v < s; ++v) {
        const double w = mk.kernels(j, u * s + v) - (bench_change ? mk.design_fit(j, u * s + v) : 0.0);
        if (w == 0) continue;
        // m(r, c) += w · x(r + u − H, c + v − H) over the rows and columns where both lie inside.
        const int du = u - H, dv = v - H;
        const Eigen::Index r0 = std::max<Eigen::Index>(0, -du), r1 = std::min<Eigen::Index>(R, R - du);
        const Eigen::Index c0 = std::max<Eigen::Index>(0, -dv), c1 = std::min<Eigen::Index>(C, C - dv);
        if (r1 <= r0 || c1 <= c0) continue;
        m.block(r0, c0, r1 - r0, c1 - c0) += w * x.block(r0 + du, c0 + dv, r1 - r0, c1 - c0);
      }
    out.push_back(std::move(m));
  }
  return out;
}

namespace {

// Photon transfer from pairs of single frames of the same input: var(f1 − f2)/2 = read_var + shot_slope · S.
void photon_transfer(const std::vector<std::pair<RArray, RArray>>& pairs, const DarkFrame& dark, MeasuredKernels& mk) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& [f1, f2] : pairs)
    for (Eigen::Index p = 0; p < f1.size(); ++p) {
      if (dark.hot.size() == f1.size() && dark.hot.data()[p] > 0) continue;
      const double S = 0.5 * (f1.data()[p] + f2.data()[p]) - dark.dark.data()[p];
      const double d = f1.data()[p] - f2.data()[p], v = 0.5 * d * d;
      n += 1;
      sx += S;
      sy += v;
      sxx += S * S;
      sxy += S * v;
    }
  if (n < 2) return;
  const double den = n * sxx - sx * sx;
  const double slope = den > 0 ? (n * sxy - sx * sy) / den : 0.0;
  mk.shot_slope = std::max(0.0, slope);
  mk.read_var = std::max(0.0, (sy - mk.shot_slope * sx) / n);
}

}  // namespace

drivers::DeviceResult<MeasuredKernels> measure_kernels(const CaptureFn& capture, const BenchCalibration& calibration,
                                                       DesignModel& design, const Deployment& deployment,
                                                       const KernelProbeOptions& o, std::mt19937_64& rng) {
  if (auto e = o.validate(); !e.empty()) throw std::invalid_argument(e);
  const auto& in = design.options().input;
  const int k = deployment.layout.kernel_size, s = k + 2 * o.margin_px;
  const auto probes = kernel_probes(in.rows, in.cols, s, o, rng);
  std::vector<std::vector<RArray>> maps;
  for (const auto& p : probes) {
    auto f = capture(p, o.frames);
    if (!f) return f.error();
    auto m = extract_features(f.value(), calibration);
    for (auto& mj : m) mj /= deployment.counts_per_unit;
    maps.push_back(std::move(m));
  }
  // Photon transfer: two single frames of each of the first two random probes.
  std::vector<std::pair<RArray, RArray>> pairs;
  for (int p = o.points; p < std::min<int>(int(probes.size()), o.points + 2); ++p) {
    auto f1 = capture(probes[std::size_t(p)], 1);
    if (!f1) return f1.error();
    auto f2 = capture(probes[std::size_t(p)], 1);
    if (!f2) return f2.error();
    pairs.emplace_back(std::move(f1.value()), std::move(f2.value()));
  }
  MeasuredKernels mk = fit_kernels(probes, maps, k, o.margin_px, o.ridge);
  photon_transfer(pairs, calibration.dark, mk);
  mk.noise_frames = 2 * int(pairs.size());
  mk.frames = int(probes.size()) * o.frames + mk.noise_frames;
  // The same fit on the design model's maps of the probes.
  std::vector<std::vector<RArray>> design_maps;
  for (const auto& p : probes) {
    const RArray img = design.predict(p);
    std::vector<RArray> m;
    for (int j = 0; j < deployment.layout.count(); ++j) {
      const auto org = deployment.layout.map_origin(j);
      m.emplace_back(img.block(org.x(), org.y(), in.rows, in.cols) / deployment.counts_per_unit);
    }
    design_maps.push_back(std::move(m));
  }
  const MeasuredKernels df = fit_kernels(probes, design_maps, k, o.margin_px, o.ridge);
  mk.design_fit = df.kernels;
  mk.design_stray = df.stray;
  mk.design_offset = df.offset;
  mk.design = psf_kernels(design.psf(), deployment.layout, s, deployment.kernel_scale);
  for (Eigen::Index j = 0; j < mk.kernels.rows(); ++j) {
    const RArray a = mk.kernels.row(j).array(), b = mk.design.row(j).array();
    mk.correlation.push_back(detail::pearson(a, b));
    mk.mean_correlation += mk.correlation.back() / double(mk.kernels.rows());
  }
  return mk;
}

}  // namespace hilo::calibration
