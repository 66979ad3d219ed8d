// The `defer` command through the protocol handler (no sockets): the deployed student classifies
// feature rows, the least confident go to the teacher (its class on the clean input), by the rule of
// distill/deferral.hpp; bad shapes, wrong types, missing or foreign models are refused naming the key.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "harness.hpp"
#include "hilo/calibration/saved.hpp"
#include "hilo/distill/deferral.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/distill/train.hpp"

namespace hilo::controller {
namespace {

using nlohmann::json;
using testing::Harness;
namespace fs = std::filesystem;

struct Defer : ::testing::Test {
  Harness h{"defer"};
  int D = 0;
  static constexpr int n = 24;
  std::vector<float> features;        // n × D
  std::vector<std::uint8_t> images;   // n × 8 × 8 levels
  void SetUp() override {
    std::mt19937_64 rng(5);
    distill::StudentOptions so;
    so.kernels = 2;
    so.kernel_size = 3;
    distill::OpticalStudent s(so, distill::Shape{1, 8, 8}, 3);
    s.init(rng);
    D = s.feature_dim();
    fs::create_directories(h.dir / "run");
    distill::write_model(h.dir / "run" / "student.hilo", s.to_model({}));
    auto t = distill::make_teacher(distill::TeacherArch{{4}, 8}, distill::Shape{1, 8, 8}, 3);
    distill::write_model(h.dir / "run" / "teacher.hilo", distill::sequential_to_model(t, "teacher", {}));
    std::normal_distribution<float> g(0.0f, 1.0f);
    for (int i = 0; i < n * D; ++i) features.push_back(g(rng));
    std::uniform_int_distribution<int> u(0, 255);
    for (int i = 0; i < n * 64; ++i) images.push_back(std::uint8_t(u(rng)));
  }
  template <typename T>
  static std::string bytes(const std::vector<T>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  json fdesc(int rows, int cols, const char* dtype = "<f4") const { return {{"dtype", dtype}, {"shape", {rows, cols}}, {"part", 1}}; }
  Reply defer(json args, std::vector<std::string> parts) { return handle(Request{9, "defer", std::move(args), std::move(parts)}, *h.ctx); }
  json base(bool teacher) const {
    json a = {{"student", "run/student.hilo"}, {"features", fdesc(n, D)}};
    if (teacher) {
      a["teacher"] = "run/teacher.hilo";
      a["inputs"] = {{"dtype", "|u1"}, {"shape", {n, 8, 8}}, {"part", 2}};
    }
    return a;
  }
  std::vector<std::string> parts(bool teacher) const {
    std::vector<std::string> p{bytes(features)};
    if (teacher) p.push_back(bytes(images));
    return p;
  }
  // The rule applied here, from the model files, for comparison.
  distill::MatD student_logits() {
    auto s = distill::OpticalStudent::from_model(distill::read_model(h.dir / "run" / "student.hilo"));
    distill::MatD a(n, D);
    for (int i = 0; i < n * D; ++i) a(i / D, i % D) = features[std::size_t(i)];
    return s.backend_forward(a);
  }
  distill::MatD teacher_logits() {
    auto t = distill::sequential_from_model<float>(distill::read_model(h.dir / "run" / "teacher.hilo"));
    distill::Mat<float> x(n, 64);
    for (int i = 0; i < n * 64; ++i) x(i / 64, i % 64) = float(images[std::size_t(i)]) / 255.0f;
    return distill::predict(t, x).cast<double>();
  }
};

std::string code(const Reply& r) { return r.body.contains("error") ? r.body["error"]["code"].get<std::string>() : "ok"; }
std::string message(const Reply& r) { return r.body.contains("error") ? r.body["error"]["message"].get<std::string>() : ""; }

}  // namespace

TEST_F(Defer, ARateDefersTheLeastConfidentShareToTheTeachersClass) {
  json a = base(true);
  a["rate"] = 0.25;
  const auto r = defer(a, parts(true));
  ASSERT_EQ(code(r), "ok") << r.body.dump();
  const json& res = r.body["result"];
  EXPECT_EQ(res["count"], n);
  EXPECT_EQ(res["deferred"], 6) << "ceil(0.25 * 24) inputs, no ties among random features";
  const auto z = student_logits();
  const auto zt = teacher_logits();
  const auto conf = distill::confidence(z);
  std::vector<double> sorted = conf;
  std::sort(sorted.begin(), sorted.end());
  const double tau = res["threshold"].get<double>();
  EXPECT_DOUBLE_EQ(tau, sorted[6]);
  for (int i = 0; i < n; ++i) {
    const json& d = res["decisions"][i];
    Eigen::Index mk = 0, tk = 0;
    z.row(i).maxCoeff(&mk);
    zt.row(i).maxCoeff(&tk);
    EXPECT_NEAR(d["confidence"].get<double>(), conf[std::size_t(i)], 1e-12);
    EXPECT_EQ(d["deferred"].get<bool>(), conf[std::size_t(i)] < tau);
    EXPECT_EQ(d["model_class"], int(mk));
    EXPECT_EQ(d["class"], d["deferred"].get<bool>() ? int(tk) : int(mk)) << i;
  }
}

TEST_F(Defer, AThresholdWithoutTheTeacherMarksDeferredRowsWithoutAClass) {
  json a = base(false);
  a["threshold"] = 1.0;  // every confidence of 3 classes is below 1: all deferred
  auto r = defer(a, parts(false));
  ASSERT_EQ(code(r), "ok") << r.body.dump();
  EXPECT_EQ(r.body["result"]["deferred"], n);
  EXPECT_FALSE(r.body["result"]["teacher"].get<bool>());
  for (const auto& d : r.body["result"]["decisions"]) EXPECT_TRUE(d["class"].is_null()) << d.dump();
  a["threshold"] = 0.0;
  r = defer(a, parts(false));
  ASSERT_EQ(code(r), "ok") << r.body.dump();
  EXPECT_EQ(r.body["result"]["deferred"], 0);
  for (const auto& d : r.body["result"]["decisions"]) EXPECT_EQ(d["class"], d["model_class"]);
}

TEST_F(Defer, BadShapesTypesAndModelsAreRefusedNamingTheKey) {
  struct Case {
    std::function<void(json&, std::vector<std::string>&)> change;
    bool teacher;
    const char* code;
    const char* words;
  };
  const Case cases[] = {
      {[](json& a, auto&) { a.erase("student"); }, false, "missing_field", "args.student"},
      {[](json& a, auto&) { a.erase("rate"); }, false, "missing_field", "exactly one of args.rate"},
      {[](json& a, auto&) { a["threshold"] = 0.5; }, false, "bad_argument", "exactly one of args.rate"},
      {[](json& a, auto&) { a["rate"] = "ten"; }, false, "wrong_type", "args.rate must be a number"},
      {[](json& a, auto&) { a["rate"] = 1.5; }, false, "bad_argument", "args.rate must be in [0, 1]"},
      {[](json& a, auto&) { a["student"] = 5; }, false, "wrong_type", "args.student"},
      {[](json& a, auto&) { a["student"] = "../student.hilo"; }, false, "forbidden_path", "args.student"},
      {[](json& a, auto&) { a["student"] = "/etc/passwd"; }, false, "forbidden_path", "args.student"},
      {[](json& a, auto&) { a["student"] = "run/none.hilo"; }, false, "not_found", "args.student"},
      {[](json& a, auto&) { a["student"] = "run/teacher.hilo"; }, false, "bad_argument", "args.student is not a student model"},
      {[](json& a, auto&) { a["teacher"] = "run/student.hilo"; }, true, "bad_argument", "args.teacher is not a teacher model"},
      {[](json& a, auto&) { a.erase("features"); }, false, "missing_field", "features"},
      {[this](json& a, auto& p) { a["features"] = fdesc(n, D - 1); p[0].resize(std::size_t(n * (D - 1)) * 4); }, false,
       "bad_argument", "the student's backend takes"},
      {[this](json& a, auto& p) { a["features"] = fdesc(n, D * 4, "|u1"); }, false, "bad_argument", "features"},
      {[this](json& a, auto& p) { a["features"] = fdesc(n, D); p[0].resize(8); }, false, "bad_parts", "features"},
      {[](json& a, auto& p) { p.push_back("extra"); }, false, "bad_parts", ""},
      {[](json& a, auto&) { a["teacher"] = "run/teacher.hilo"; }, false, "bad_argument", "go together"},
      {[](json& a, auto&) { a["inputs"] = {{"dtype", "|u1"}, {"shape", {n - 1, 8, 8}}, {"part", 2}}; }, true, "bad_parts", "inputs"},
      {[](json& a, auto& p) { a["inputs"] = {{"dtype", "|u1"}, {"shape", {n, 8, 7}}, {"part", 2}}; p[1].resize(std::size_t(n) * 56); },
       true, "bad_argument", "the teacher takes 1 x 8 x 8"},
      {[](json& a, auto& p) { a["inputs"] = {{"dtype", "|u1"}, {"shape", {n - 1, 8, 8}}, {"part", 2}}; p[1].resize(std::size_t(n - 1) * 64); },
       true, "bad_argument", "one clean input per row"},
      {[](json& a, auto&) { a["colour"] = 1; }, false, "bad_argument", "colour"},
  };
  for (const auto& c : cases) {
    json a = base(c.teacher);
    a["rate"] = 0.1;
    auto p = parts(c.teacher);
    c.change(a, p);
    const auto r = defer(a, p);
    EXPECT_EQ(code(r), c.code) << a.dump() << " " << r.body.dump();
    EXPECT_NE(message(r).find(c.words), std::string::npos) << message(r);
  }
  // Non-finite features and out-of-range float inputs.
  json a = base(true);
  a["rate"] = 0.1;
  auto p = parts(true);
  const float nan = std::nanf("");
  std::memcpy(p[0].data(), &nan, 4);
  EXPECT_NE(message(defer(a, p)).find("args.features must be finite"), std::string::npos);
  p = parts(true);
  std::vector<float> big(std::size_t(n) * 64, 2.0f);
  a["inputs"] = {{"dtype", "<f4"}, {"shape", {n, 64}}, {"part", 2}};
  p[1] = bytes(big);
  EXPECT_NE(message(defer(a, p)).find("args.inputs must be uint8 levels or floats in [0, 1]"), std::string::npos);
}

// Raw camera frames in, through a saved bench calibration: frames built from known feature maps Y (each
// map at its layout window, × gain × counts per unit, on a dark level) give exactly the decisions of the
// features the student computes from Y (features_from_maps), with the calibration named by the model's
// meta "bench" (as the pipeline writes it) or by the arguments; what does not fit is refused.
TEST_F(Defer, FramesThroughASavedCalibrationGiveTheDecisionsOfTheirFeatures) {
  constexpr int R = 32, C = 32;
  constexpr double kGain = 2.0, kCountsPerUnit = 50.0, kDark = 10.0;
  calibration::SavedCalibration saved;
  saved.calibration.dark.dark = calibration::RArray::Constant(R, C, kDark);
  saved.calibration.dark.hot = calibration::RArray::Zero(R, C);
  saved.calibration.dark.level = kDark;
  saved.calibration.gain = kGain;
  auto& l = saved.calibration.layout;
  l.kernel_size = 3;
  l.map_rows = l.map_cols = 8;
  l.object_row = l.object_col = 4;
  l.offset = {{0, 0}, {0, 14}};
  saved.drift_reference.probes = {calibration::RArray::Zero(8, 8)};
  saved.drift_reference.frames = {calibration::RArray::Zero(R, C)};
  calibration::save_calibration(h.dir / "run" / "cal", saved);
  // The student of the fixture (2 kernels of 3 × 3 on 8 × 8), saved once more with the meta "bench".
  auto s = distill::OpticalStudent::from_model(distill::read_model(h.dir / "run" / "student.hilo"));
  distill::write_model(h.dir / "run" / "with_bench.hilo",
                       s.to_model({{"bench", {{"calibration", "cal"}, {"counts_per_unit", kCountsPerUnit}}}}));
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  distill::MatD Y(n, 2 * 64);
  std::vector<float> frames(std::size_t(n) * R * C, float(kDark));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < 2; ++j)
      for (int r = 0; r < 8; ++r)
        for (int c = 0; c < 8; ++c) {
          const double y = u(rng);
          Y(i, j * 64 + r * 8 + c) = y;
          const int fr = int(l.object_row) + l.offset[std::size_t(j)].x() + r, fc = int(l.object_col) + l.offset[std::size_t(j)].y() + c;
          frames[std::size_t(i) * R * C + std::size_t(fr) * C + std::size_t(fc)] = float(kDark + kGain * kCountsPerUnit * y);
        }
  const distill::MatD a = s.features_from_maps(Y);
  std::vector<float> want(std::size_t(n) * std::size_t(D));
  for (int i = 0; i < n * D; ++i) want[std::size_t(i)] = float(a(i / D, i % D));
  const json frame_desc = {{"dtype", "<f4"}, {"shape", {n, R, C}}, {"part", 1}};

  json by_features = {{"student", "run/with_bench.hilo"}, {"features", fdesc(n, D)}, {"rate", 0.25}};
  const auto ref = defer(by_features, {bytes(want)});
  ASSERT_EQ(code(ref), "ok") << ref.body.dump();
  for (const json& args : {json{{"student", "run/with_bench.hilo"}, {"frames", frame_desc}, {"rate", 0.25}},
                           json{{"student", "run/student.hilo"}, {"frames", frame_desc}, {"rate", 0.25},
                                {"calibration", "run/cal"}, {"counts_per_unit", kCountsPerUnit}}}) {
    const auto r = defer(args, {bytes(frames)});
    ASSERT_EQ(code(r), "ok") << r.body.dump();
    EXPECT_EQ(r.body["result"]["source"], "frames (through the saved bench calibration)");
    EXPECT_EQ(r.body["result"]["deferred"], ref.body["result"]["deferred"]);
    for (int i = 0; i < n; ++i) {
      const json &d = r.body["result"]["decisions"][i], &e = ref.body["result"]["decisions"][i];
      EXPECT_NEAR(d["confidence"].get<double>(), e["confidence"].get<double>(), 1e-5) << i;
      EXPECT_EQ(d["model_class"], e["model_class"]) << i;
      EXPECT_EQ(d["deferred"], e["deferred"]) << i;
    }
  }
  // Refused: no calibration anywhere, one outside the data directory, a missing one, frames of another
  // size, features and frames together, a calibration argument with features.
  distill::write_model(h.dir / "run" / "escapes.hilo", s.to_model({{"bench", {{"calibration", "../../.."}, {"counts_per_unit", 1.0}}}}));
  struct Case {
    json args;
    std::string part;
    const char* code;
    const char* words;
  };
  const json small = {{"dtype", "<f4"}, {"shape", {n, R - 2, C}}, {"part", 1}};
  const std::vector<Case> cases = {
      {{{"student", "run/student.hilo"}, {"frames", frame_desc}, {"rate", 0.1}}, bytes(frames), "missing_field", "args.calibration"},
      {{{"student", "run/student.hilo"}, {"frames", frame_desc}, {"rate", 0.1}, {"calibration", "run/cal"}}, bytes(frames),
       "missing_field", "args.counts_per_unit"},
      {{{"student", "run/escapes.hilo"}, {"frames", frame_desc}, {"rate", 0.1}}, bytes(frames), "forbidden_path", "bench.calibration"},
      {{{"student", "run/student.hilo"}, {"frames", frame_desc}, {"rate", 0.1}, {"calibration", "run/nothing"}, {"counts_per_unit", 5}},
       bytes(frames), "not_found", "no saved calibration"},
      {{{"student", "run/with_bench.hilo"}, {"frames", small}, {"rate", 0.1}},
       bytes(std::vector<float>(std::size_t(n) * (R - 2) * C, 0.0f)), "bad_argument", "args.frames is [24, 30, 32]"},
      {{{"student", "run/with_bench.hilo"}, {"frames", frame_desc}, {"features", fdesc(n, D)}, {"rate", 0.1}}, bytes(frames),
       "bad_argument", "exactly one of args.features"},
      {{{"student", "run/with_bench.hilo"}, {"features", fdesc(n, D)}, {"rate", 0.1}, {"calibration", "run/cal"}}, bytes(want),
       "bad_argument", "go with args.frames"},
      {{{"student", "run/with_bench.hilo"}, {"frames", frame_desc}, {"rate", 0.1}, {"counts_per_unit", -1}}, bytes(frames),
       "bad_argument", "counts_per_unit must be > 0"},
  };
  for (const auto& c : cases) {
    const auto r = defer(c.args, {c.part});
    EXPECT_EQ(code(r), c.code) << c.args.dump() << " " << r.body.dump();
    EXPECT_NE(message(r).find(c.words), std::string::npos) << message(r);
  }
}

}  // namespace hilo::controller
