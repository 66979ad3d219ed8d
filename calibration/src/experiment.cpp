#include "hilo/calibration/experiment.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "hilo/distill/train.hpp"
#include "hilo/drivers/emulator.hpp"
#include "hilo/io/options_json.hpp"
#include "hilo/sim/npy.hpp"
#include "hilo/sim/slm_model.hpp"

namespace hilo::calibration {

namespace fs = std::filesystem;
using nlohmann::json;
using distill::MatD;

std::string MeasureOptions::validate() const {
  if (frames < 1 || frames > 64) return "frames must be in [1, 64], got " + std::to_string(frames);
  if (drift_every < 10) return "drift_every must be >= 10 images, got " + std::to_string(drift_every);
  if (drift_action != "update" && drift_action != "report")
    return "drift_action must be \"update\" or \"report\", got \"" + drift_action + "\"";
  if (auto e = drift.validate(); !e.empty()) return "drift: " + e;
  if (!(max_unproven_fraction >= 0 && max_unproven_fraction <= 1))
    return "content_check.max_unproven_fraction must be in [0, 1], got " + std::to_string(max_unproven_fraction);
  return content.validate();
}

Experiment::Experiment(ExperimentBench& bench, DesignModel& design, const Deployment& deployment,
                       const distill::OpticalStudent& deployed, MeasureOptions options, ExperimentControl control,
                       std::string name)
    : bench_(bench),
      design_(design),
      deployment_(deployment),
      deployed_(deployed),
      opt_(std::move(options)),
      ctl_(std::move(control)),
      name_(std::move(name)),
      rig_(bench.input, bench.camera),
      content_status_{{"active", false}, {"reason", "the bench is not calibrated yet"}} {
  if (auto e = opt_.validate(); !e.empty()) throw std::invalid_argument("measure options: " + e);
  rig_.set_frame_log([this](const drivers::Frame& f, const RArray& intensity, const cv::Mat& levels) {
    frame_log_.push_back({f.sequence, drivers::pattern_crc32(f.image), drivers::pattern_crc32(levels)});
    last_kept_ = Kept{f.image.clone(), intensity};
  });
}

template <typename F>
auto Experiment::locked(F&& f) {
  if (bench_.mutex) {
    std::lock_guard lk(*bench_.mutex);
    return f();
  }
  return f();
}

drivers::DeviceResult<BenchCalibrationResult> Experiment::calibrate(BenchCalibrationOptions options, std::mt19937_64& rng) {
  const sim::SlmModel slm_model(design_.options().element.slm);
  ShowElementFn show = [&](const RArray& phase) -> drivers::DeviceStatus {
    if (bench_.element) return deploy_phase(*bench_.element, phase, slm_model);
    if (bench_.install_fixed_mask) bench_.install_fixed_mask(phase);
    return std::nullopt;
  };
  options.flat_element_for_registration = bench_.element != nullptr;
  if (!bench_.element) (void)show(deployment_.design.phase);
  rig_.set_judge({});  // the probes are judged by counter and timestamp only (MeasureOptions)
  content_.reset();
  auto cal = locked([&] { return calibrate_bench(rig_, design_, deployment_, show, options, rng); });
  if (!cal) return cal;
  calibrated_ = live_ = cal.value().calibration;
  calibrated_at_s_ = bench_.now_s ? bench_.now_s() : 0.0;
  blur_px_ = cal.value().registration.fit.blur_px;
  calibration_frames_ = frame_log_.size();
  start_content_check(blur_px_);
  auto ref = locked([&] {
    return capture_drift_reference(rig_, calibrated_.dark, calibrated_.pose, calibrated_at_s_, opt_.drift, rng);
  });
  if (!ref) return ref.error();
  reference_ = std::move(ref.value());
  return cal;
}

drivers::DeviceStatus Experiment::adopt(const SavedCalibration& saved) {
  if (auto e = saved.calibration.validate(rig_.camera_rows(), rig_.camera_cols()); !e.empty())
    throw std::invalid_argument("saved calibration does not fit this bench: " + e);
  if (saved.drift_reference.probes.empty())
    throw std::invalid_argument("saved calibration has no drift reference");
  if (bench_.element) {
    const sim::SlmModel slm_model(design_.options().element.slm);
    if (auto e = locked([&] { return deploy_phase(*bench_.element, deployment_.design.phase, slm_model); })) return e;
  } else if (bench_.install_fixed_mask) {
    bench_.install_fixed_mask(deployment_.design.phase);
  }
  design_.set_element_phase(deployment_.design.phase);
  calibrated_ = live_ = saved.calibration;
  calibrated_at_s_ = saved.calibrated_at_s;
  blur_px_ = saved.blur_px;
  reference_ = saved.drift_reference;
  rig_.set_judge({});
  content_.reset();
  // The content check continues from a known picture: one frame of a dark input, judged by frame
  // counter and timestamp only (as the calibration probes are), whatever an earlier job left shown.
  auto blank = locked([&] { return rig_.capture(RArray::Zero(rig_.input_rows(), rig_.input_cols()), 1); });
  if (!blank) return blank.error();
  calibration_frames_ = frame_log_.size();
  start_content_check(blur_px_);
  return check_drift_now();
}

SavedCalibration Experiment::saved_calibration(json summary) const {
  if (!reference_) throw std::logic_error("Experiment::saved_calibration before calibrate or adopt");
  return {calibrated_, blur_px_, *reference_, calibrated_at_s_, std::move(summary)};
}

void Experiment::start_content_check(double blur_px) {
  if (!opt_.content.enabled) {
    content_status_ = {{"active", false}, {"reason", "disabled by the options (content_check.enabled false)"}};
    return;
  }
  Predictor calibrated = [this, blur_px](const RArray& x) {
    return RArray(live_.gain * warp_forward(gaussian_blur(design_.predict(x), blur_px), live_.pose));
  };
  const double counts_per_electron =
      std::pow(10.0, rig_.camera().gain_db() / 20.0) / design_.options().camera.gain_e_per_count;
  // The gate's verdict on its last re-grab must fall inside the grabber's show + grab cycles, or the
  // grabber gives up first and accept_unproven never applies.
  ContentGateOptions gate = opt_.content;
  gate.max_regrabs = std::min(gate.max_regrabs, rig_.options().grab.max_attempts - 1);
  content_.emplace(std::move(calibrated), rig_.input_rows(), rig_.input_cols(), rig_.camera_rows(), rig_.camera_cols(),
                   counts_per_electron, gate);
  content_->set_reference(calibrated_.dark.dark, calibrated_.dark.temporal_noise);
  // The first checked frame follows the calibration's last probe, not the dark input: a slow first frame
  // still shows that probe, which judged against dark passes for any bright input (the emulated lab
  // filed such a drift-reference frame under its probe), so the chain continues from that probe's frame.
  if (last_kept_) content_->continue_from(to_array(last_kept_->image), last_kept_->intensity);
  rig_.set_judge([this](const RArray& frame, const RArray& input) {
    const auto unproven_before = content_counters_.content_undecidable;
    drivers::Judgement j = content_->judge(frame, input, content_counters_);
    if (!set_ || !set_->counting || content_counters_.content_undecidable == unproven_before) return j;
    const double share = set_->max_unproven_fraction;
    const auto limit = std::int64_t(std::floor(share * double(set_->frames)));
    if (++set_->unproven <= limit) return j;
    std::ostringstream msg;
    msg << set_->unproven << " of the set's " << set_->frames << " frames stored unproven, more than "
        << "content_check.max_unproven_fraction " << share << " allows (" << limit
        << "): the frames do not show their inputs (a stuck or much too slow SLM?)";
    return drivers::Judgement{drivers::Judged::fail, msg.str()};
  });
  json options = opt_.content;  // the job's bench.content_check keys, all of them
  options["max_unproven_fraction"] = opt_.max_unproven_fraction;
  content_status_ = {{"active", true},
                     {"model", "design (calibrated: pose, blur, gain)"},
                     {"options", options},
                     {"dark_noise_counts", content_->dark_noise_counts()}};
}

json Experiment::frame_integrity() const {
  json j = rig_.counters().to_json();
  content_counters_.add_to(j);
  j["content_check"] = content_status_;
  j["frames_kept"] = frame_log_.size();
  j["calibration_frames"] = calibration_frames_;
  return j;
}

drivers::DeviceStatus Experiment::check_drift() {
  if (!reference_) throw std::logic_error("Experiment::check_drift before calibrate or adopt");
  return check_drift_now();
}

drivers::DeviceStatus Experiment::check_drift_now() {
  const double t = bench_.now_s ? bench_.now_s() : 0.0;
  auto r = locked([&] { return calibration::check_drift(rig_, *reference_, live_.dark, t, opt_.drift); });
  if (!r) return r.error();
  const auto& dr = r.value();
  json j = {{"t_s", dr.t_s}, {"measured_images", measured_}, {"displacement_px", dr.displacement_px},
            {"gain_change", dr.gain_change}, {"exceeded", dr.exceeded}, {"message", dr.message}};
  if (dr.exceeded) {
    j["action"] = opt_.drift_action;
    j["profile"] = name_;
    if (opt_.drift_action == "update") {
      live_.pose = dr.updated_pose;
      live_.gain = calibrated_.gain * dr.updated_pose.gain / std::max(1e-12, reference_->pose.gain);
      if (content_) content_->model_changed();
    }
    if (ctl_.log) ctl_.log(dr.message + (opt_.drift_action == "update" ? " (calibration updated)" : ""));
    if (ctl_.on_drift) ctl_.on_drift(j);
  }
  drift_checks_.push_back(j);
  return std::nullopt;
}

drivers::DeviceResult<MatD> Experiment::measure(const distill::Mat<float>& x, std::optional<double> max_unproven_fraction) {
  if (!reference_) throw std::logic_error("Experiment::measure before calibrate");
  const ExtractOptions extract;
  MatD out(x.rows(), deployed_.feature_dim());
  set_ = SetCount{std::int64_t(x.rows()) * opt_.frames};
  set_->max_unproven_fraction = max_unproven_fraction.value_or(opt_.max_unproven_fraction);
  struct EndOfSet {
    std::optional<SetCount>& set;
    ~EndOfSet() { set.reset(); }
  } end_of_set{set_};
  for (Eigen::Index s0 = 0; s0 < x.rows(); s0 += opt_.drift_every) {
    const Eigen::Index m = std::min<Eigen::Index>(opt_.drift_every, x.rows() - s0);
    const distill::Mat<float> part = x.middleRows(s0, m);
    // The chunk counts from the images measured before it.
    const std::int64_t before = measured_, set_end = measured_ + (x.rows() - s0);
    const io::WorkControl chunk{[&](std::int64_t n, std::int64_t, std::string_view stage) {
                                  ctl_.work.report(before + n, set_end, stage);
                                },
                                ctl_.work.stop};
    set_->counting = true;  // the set's images only, not the drift probes between its chunks
    auto r = locked([&] {
      return measure_features(rig_, live_, extract, deployment_, deployed_, part, opt_.frames, chunk);
    });
    set_->counting = false;
    if (!r) return r.error();
    if (ctl_.work.stop_requested()) return MatD(out.topRows(s0));
    out.middleRows(s0, m) = r.value();
    measured_ += m;
    if (auto e = check_drift_now()) return *e;
  }
  return out;
}

drivers::DeviceResult<RArray> Experiment::capture(const RArray& input, int frames) {
  return locked([&] { return rig_.capture(input, frames); });
}

MeasuredSubset take_rows(const MatD& features, const distill::Dataset& samples, const std::vector<std::size_t>& pick) {
  if (std::size_t(features.rows()) != samples.size())
    throw std::invalid_argument("take_rows: " + std::to_string(features.rows()) + " feature rows for " +
                                std::to_string(samples.size()) + " samples");
  std::vector<int> pi(pick.begin(), pick.end());
  MatD a(Eigen::Index(pi.size()), features.cols());
  for (std::size_t i = 0; i < pi.size(); ++i) {
    if (pick[i] >= samples.size()) throw std::invalid_argument("take_rows: index " + std::to_string(pick[i]) + " out of range");
    a.row(Eigen::Index(i)) = features.row(pi[i]);
  }
  return {std::move(a), distill::take(samples, pi)};
}

std::vector<std::size_t> nested_subset(SubsetStrategy strategy, double f, double fmax, const std::vector<int>& labels,
                                       const Eigen::Ref<const Eigen::MatrixXd>& features, std::mt19937_64& rng) {
  if (f >= fmax) {
    std::vector<std::size_t> all(labels.size());
    std::iota(all.begin(), all.end(), std::size_t{0});
    return all;
  }
  SubsetOptions so;
  so.strategy = strategy;
  so.fraction = std::min(1.0, f / fmax);
  return select_subset(so, labels, features, rng);
}

CompensationTrial compensate(const distill::OpticalStudent& deployed, const MeasuredSubset& subset,
                             distill::Sequential<float>& teacher, const CompensationOptions& options, std::mt19937_64& rng,
                             const MatD& test_features, const std::vector<int>& test_labels, const MatD* val_features,
                             const std::vector<int>* val_labels, const io::WorkControl& work, const NtkGroups* ntk_groups) {
  distill::OpticalStudent s = distill::OpticalStudent::from_model(deployed.to_model({}));
  CompensationTrial t;
  t.report = refit_backend(s, subset.features, subset.samples.y, &teacher, &subset.samples.x, options, rng, work, ntk_groups);
  t.test_logits = s.backend_forward(test_features);
  t.test_accuracy = distill::accuracy(t.test_logits, test_labels);
  if (val_features && val_labels) {
    t.val_logits = s.backend_forward(*val_features);
    t.val_accuracy = distill::accuracy(t.val_logits, *val_labels);
  }
  t.model = s.to_model({{"refit", to_string(options.mode)}});
  return t;
}

void guard_against_none(CompensationTrial& t, double none_val_accuracy, const MatD& none_test_logits,
                        const std::vector<int>& test_labels) {
  t.refit_test_accuracy = t.test_accuracy;
  t.kept_uncompensated = !(t.val_accuracy > none_val_accuracy);
  if (!t.kept_uncompensated) return;
  t.test_logits = none_test_logits;
  t.test_accuracy = distill::accuracy(none_test_logits, test_labels);
}

SweepEntry sweep_entry_from_json(const std::string& name, const json& j) {
  SweepEntry e;
  e.name = name;
  const std::string section = "sweep." + name;
  e.options.mode = parse_compensation_mode(j.value("mode", std::string("ntkd")));
  e.options = io::read_options(j, section, e.options);
  if (auto err = e.options.validate(); !err.empty()) throw std::invalid_argument(section + ": " + err);
  return e;
}

namespace {

json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return json::parse(in);
}

}  // namespace

void write_frame_log(const fs::path& p, const std::vector<Experiment::FrameRecord>& log) {
  std::vector<double> v;
  v.reserve(3 * log.size());
  for (const auto& r : log) v.insert(v.end(), {double(r.sequence), double(r.frame_crc32), double(r.input_crc32)});
  sim::write_npy(p, sim::make_npy<double>(std::span<const double>(v), {log.size(), 3}));
}

void write_features(const fs::path& p, const MatD& m) {
  sim::write_npy(p, sim::make_npy<double>(std::span<const double>(m.data(), std::size_t(m.size())),
                                          {std::size_t(m.rows()), std::size_t(m.cols())}));
}

MatD read_features(const fs::path& p) {
  const auto a = sim::read_npy(p);
  if (a.shape.size() != 2) throw std::runtime_error(p.string() + ": expected a 2-D array");
  const auto v = sim::as_doubles(a, p.string());
  MatD m(Eigen::Index(a.shape[0]), Eigen::Index(a.shape[1]));
  std::copy(v.begin(), v.end(), m.data());
  return m;
}

StoredMeasurements read_stored_measurements(const fs::path& d, const distill::Splits& data) {
  StoredMeasurements m;
  m.result = read_json(d / "result.json");
  m.test = read_features(d / "test_features.npy");
  m.subset = read_features(d / "subset_features.npy");
  m.val = read_features(d / "val_features.npy");
  if (std::size_t(m.test.rows()) > data.test.size() || std::size_t(m.val.rows()) != data.val.size())
    throw std::runtime_error(d.string() + ": the stored measurements do not match the run's dataset");
  m.test_samples = distill::head(data.test, std::size_t(m.test.rows()));
  const std::vector<int> idx = m.result.at("subset").at("indices").get<std::vector<int>>();
  m.subset_samples = distill::take(data.train, idx);
  if (std::size_t(m.subset.rows()) != m.subset_samples.size())
    throw std::runtime_error(d.string() + ": subset_features.npy has " + std::to_string(m.subset.rows()) +
                             " rows for " + std::to_string(m.subset_samples.size()) + " subset indices");
  m.fmax = m.result.at("subset").at("fraction").get<double>();
  return m;
}

json sweep_compensation(const fs::path& profile_dir, const std::string& profile, const SweepInputs& in,
                        const std::vector<SweepEntry>& grid, const std::vector<std::uint64_t>& seeds,
                        const std::vector<double>& fractions, const std::function<void(const std::string&)>& log) {
  const fs::path& d = profile_dir;
  const StoredMeasurements st = read_stored_measurements(d, in.data);
  const json& res = st.result;
  const MatD &A_test = st.test, &A_sub = st.subset, &A_val = st.val;
  const distill::Dataset &test = st.test_samples, &sub = st.subset_samples;
  const double fmax = st.fmax;
  json nested = json::object();
  if (fs::exists(d / "nested_subsets.json")) nested = read_json(d / "nested_subsets.json");
  json rows = json::array();
  for (const auto& fr : res.at("accuracy").at("fractions")) {
    const double f = fr.at("fraction").get<double>();
    if (!fractions.empty() && std::find(fractions.begin(), fractions.end(), f) == fractions.end()) continue;
    std::vector<std::size_t> pick;
    if (nested.contains("fractions")) {
      for (const auto& e : nested["fractions"])
        if (e.at("fraction").get<double>() == f) pick = e.at("indices").get<std::vector<std::size_t>>();
      if (pick.empty()) throw std::runtime_error(d.string() + "/nested_subsets.json: no subset for f = " + std::to_string(f));
    } else {
      // A run from before the nested subsets were stored: a class-balanced draw of fixed seed.
      std::mt19937_64 r(12345);
      pick = nested_subset(SubsetStrategy::class_balanced, f, fmax, sub.y, Eigen::MatrixXd(), r);
    }
    const MeasuredSubset part = take_rows(A_sub, sub, pick);
    for (const auto& g : grid)
      for (auto seed : seeds) {
        std::mt19937_64 r2(seed);
        const auto t = compensate(in.deployed, part, in.teacher, g.options, r2, A_test, test.y, &A_val, &in.data.val.y);
        const auto& ep = t.report.epochs;
        json row = {{"name", g.name}, {"fraction", f}, {"seed", seed}, {"val_accuracy", t.val_accuracy},
                    {"accuracy", t.test_accuracy}, {"final_ntk_distance", ep.empty() ? 0.0 : ep.back().ntk_distance},
                    {"final_train_acc", ep.empty() ? 0.0 : ep.back().accuracy}};
        if (log) log(row.dump());
        rows.push_back(row);
      }
  }
  return {{"profile", profile}, {"none", res.at("accuracy").at("none")}, {"rows", rows}};
}

}  // namespace hilo::calibration
