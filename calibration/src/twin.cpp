#include "hilo/calibration/twin.hpp"

#include <cmath>
#include <stdexcept>

namespace hilo::calibration {

TwinNoise twin_noise(const MeasuredKernels& kernels, const BenchCalibration& calibration, int frames) {
  TwinNoise n;
  n.read_var = std::max(kernels.read_var, 1.0 / 12);
  n.shot_slope = kernels.shot_slope;
  n.gain = calibration.gain;
  n.frames = std::max(1, frames);
  return n;
}

Twin::Twin(MeasuredKernels kernels, DesignModel& design, const Deployment& deployment, TwinNoise noise,
           const distill::OpticalStudent& student)
    : kernels_(std::move(kernels)), design_(design), deployment_(deployment), noise_(noise), student_(student) {
  if (kernels_.kernels.rows() != student.options().kernels)
    throw std::invalid_argument("twin: " + std::to_string(kernels_.kernels.rows()) + " measured kernels for a student of " +
                                std::to_string(student.options().kernels));
  if (kernels_.design_fit.rows() != kernels_.kernels.rows()) throw std::invalid_argument("twin: the measured kernels have no design fit");
  if (!(deployment_.counts_per_unit > 0)) throw std::invalid_argument("twin: counts_per_unit must be > 0");
  if (!(noise_.gain > 0)) throw std::invalid_argument("twin: the calibrated gain must be > 0");
}

std::vector<RArray> Twin::maps(const RArray& input) const {
  std::vector<RArray> m = kernel_maps(kernels_, input, true);
  const RArray img = design_.predict(input);
  const auto& l = deployment_.layout;
  for (int j = 0; j < l.count(); ++j) {
    const auto org = l.map_origin(j);
    m[std::size_t(j)] += img.block(org.x(), org.y(), input.rows(), input.cols()) / deployment_.counts_per_unit;
  }
  return m;
}

distill::MatD Twin::row_features(const distill::Mat<float>& x, std::mt19937_64* rng, const distill::MatD* design_maps) const {
  const auto in = student_.in_shape();
  if (x.cols() != in.h * in.w) throw std::invalid_argument("twin: images of " + std::to_string(x.cols()) + " pixels, the student takes " + std::to_string(in.h * in.w));
  const Eigen::Index HW = Eigen::Index(in.h) * in.w;
  if (design_maps && (design_maps->rows() != x.rows() || design_maps->cols() != kernels_.kernels.rows() * HW))
    throw std::invalid_argument("twin: design maps of " + std::to_string(design_maps->rows()) + " x " + std::to_string(design_maps->cols()) +
                                " for " + std::to_string(x.rows()) + " images of " + std::to_string(kernels_.kernels.rows()) + " maps of " +
                                std::to_string(HW) + " pixels");
  const double scale = noise_.gain * deployment_.counts_per_unit;
  std::normal_distribution<double> gauss(0.0, 1.0);
  distill::MatD a(x.rows(), student_.feature_dim());
  RArray im(in.h, in.w);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    for (int r = 0; r < in.h; ++r)
      for (int c = 0; c < in.w; ++c) im(r, c) = std::clamp(double(x(i, r * in.w + c)), 0.0, 1.0);
    std::vector<RArray> m;
    if (design_maps) {
      m = kernel_maps(kernels_, im, true);
      for (std::size_t j = 0; j < m.size(); ++j)
        m[j] += Eigen::Map<const RArray>(design_maps->row(i).data() + Eigen::Index(j) * HW, in.h, in.w);
    } else {
      m = maps(im);
    }
    if (rng)
      for (auto& mj : m)
        for (Eigen::Index p = 0; p < mj.size(); ++p) {
          const double var = (noise_.read_var + noise_.shot_slope * scale * std::max(mj.data()[p], 0.0)) / double(noise_.frames);
          mj.data()[p] += std::sqrt(var) / scale * gauss(*rng);
        }
    // The maps are in student units already (maps_to_features divides by its counts_per_unit argument).
    a.row(i) = maps_to_features(m, student_, 1.0);
  }
  return a;
}

distill::MatD Twin::features(const distill::Mat<float>& x) const { return row_features(x, nullptr, nullptr); }

distill::MatD Twin::features(const distill::Mat<float>& x, const distill::MatD& design_rows) const {
  const auto in = student_.in_shape();
  if (design_rows.rows() != x.rows() || design_rows.cols() != student_.feature_dim())
    throw std::invalid_argument("twin: design features of " + std::to_string(design_rows.rows()) + " rows for " + std::to_string(x.rows()) + " images");
  distill::MatD a = design_rows;
  RArray im(in.h, in.w);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    for (int r = 0; r < in.h; ++r)
      for (int c = 0; c < in.w; ++c) im(r, c) = std::clamp(double(x(i, r * in.w + c)), 0.0, 1.0);
    a.row(i) += maps_to_features(kernel_maps(kernels_, im, true), student_, 1.0);
  }
  return a;
}

distill::MatD Twin::sample_features(const distill::Mat<float>& x, std::mt19937_64& rng) const { return row_features(x, &rng, nullptr); }

distill::MatD Twin::features_from_design_maps(const distill::Mat<float>& x, const distill::MatD& design_maps,
                                              std::mt19937_64* rng) const {
  return row_features(x, rng, &design_maps);
}

double relative_rms(const distill::MatD& model, const distill::MatD& measured) {
  if (model.rows() != measured.rows() || model.cols() != measured.cols())
    throw std::invalid_argument("relative_rms: " + std::to_string(model.rows()) + " x " + std::to_string(model.cols()) +
                                " against " + std::to_string(measured.rows()) + " x " + std::to_string(measured.cols()));
  const double n = measured.norm();
  if (!(n > 0)) throw std::invalid_argument("relative_rms: the measured features are all zero");
  return (model - measured).norm() / n;
}

std::string TwinMix::validate() const {
  if (measured_weight < 1 || measured_weight > 1000)
    return "compensation.twin.measured_weight must be in [1, 1000], got " + std::to_string(measured_weight);
  return {};
}

MeasuredSubset twin_training_set(const distill::MatD& twin_train, const distill::Dataset& train, const distill::MatD& measured,
                                 const std::vector<std::size_t>& rows, const TwinMix& mix, std::vector<int>* sample_rows) {
  if (auto e = mix.validate(); !e.empty()) throw std::invalid_argument(e);
  const auto N = Eigen::Index(train.size());
  if (twin_train.rows() != N) throw std::invalid_argument("twin_training_set: " + std::to_string(twin_train.rows()) + " twin rows for " + std::to_string(N) + " samples");
  if (measured.rows() != Eigen::Index(rows.size()) || measured.cols() != twin_train.cols())
    throw std::invalid_argument("twin_training_set: the measured rows do not match their indices or the twin's features");
  std::vector<char> is_measured(std::size_t(N), 0);
  for (auto r : rows) {
    if (Eigen::Index(r) >= N) throw std::invalid_argument("twin_training_set: index " + std::to_string(r) + " outside the training split");
    is_measured[r] = 1;
  }
  distill::MatD shift = distill::MatD::Zero(1, twin_train.cols());
  if (mix.residual_correction && !rows.empty()) {
    for (std::size_t i = 0; i < rows.size(); ++i) shift += measured.row(Eigen::Index(i)) - twin_train.row(Eigen::Index(rows[i]));
    shift /= double(rows.size());
  }
  const Eigen::Index twin_rows = N - Eigen::Index(std::count(is_measured.begin(), is_measured.end(), 1));
  const Eigen::Index total = twin_rows + Eigen::Index(rows.size()) * mix.measured_weight;
  MeasuredSubset out;
  out.features.resize(total, twin_train.cols());
  out.samples.shape = train.shape;
  out.samples.num_classes = train.num_classes;
  out.samples.x.resize(total, train.x.cols());
  out.samples.y.resize(std::size_t(total));
  if (sample_rows) sample_rows->assign(std::size_t(N), -1);
  Eigen::Index k = 0;
  for (Eigen::Index i = 0; i < N; ++i) {
    if (is_measured[std::size_t(i)]) continue;
    if (sample_rows) (*sample_rows)[std::size_t(i)] = int(k);
    out.features.row(k) = twin_train.row(i) + shift;
    out.samples.x.row(k) = train.x.row(i);
    out.samples.y[std::size_t(k)] = train.y[std::size_t(i)];
    ++k;
  }
  for (int w = 0; w < mix.measured_weight; ++w)
    for (std::size_t i = 0; i < rows.size(); ++i, ++k) {
      if (sample_rows && (*sample_rows)[rows[i]] < 0) (*sample_rows)[rows[i]] = int(k);
      out.features.row(k) = measured.row(Eigen::Index(i));
      out.samples.x.row(k) = train.x.row(Eigen::Index(rows[i]));
      out.samples.y[std::size_t(k)] = train.y[rows[i]];
    }
  return out;
}

}  // namespace hilo::calibration

namespace hilo::calibration {

NtkGroups map_ntk_groups(const NtkGroups& groups, const std::vector<int>& sample_rows) {
  NtkGroups out;
  out.teacher = groups.teacher;
  out.rows.reserve(groups.rows.size());
  for (const auto& g : groups.rows) {
    std::vector<int> r;
    r.reserve(g.size());
    for (int i : g) {
      if (i < 0 || std::size_t(i) >= sample_rows.size() || sample_rows[std::size_t(i)] < 0)
        throw std::invalid_argument("map_ntk_groups: sample " + std::to_string(i) + " has no row in the set");
      r.push_back(sample_rows[std::size_t(i)]);
    }
    out.rows.push_back(std::move(r));
  }
  return out;
}

}  // namespace hilo::calibration
