// Which images to measure (calibration/selection_study.hpp): every row is the documented draw and re-fit,
// the strategies are paired by seed, and fractions outside the measured subset are refused.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "hilo/calibration/selection_study.hpp"
#include "hilo/distill/train.hpp"
#include "sim_rig.hpp"

using namespace hilo;
using namespace hilo::calibration;
namespace fs = std::filesystem;
using nlohmann::json;

TEST(SelectionStudy, EachRowIsTheStrategysNestedDrawReFittedWithTheSameSeedAndGuarded) {
  std::mt19937_64 rng(8);
  distill::OpticalStudent student = calibration::testing::trained_like_student(rng);
  const int D = int(student.feature_dim());
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  auto dataset = [&](int n) {
    distill::Dataset d;
    d.x.resize(n, 784);
    for (Eigen::Index i = 0; i < d.x.size(); ++i) d.x.data()[i] = u(rng) < 0.3f ? u(rng) : 0.0f;
    for (int i = 0; i < n; ++i) d.y.push_back(i % 10);
    return d;
  };
  distill::Splits data;
  data.train = dataset(200);
  data.val = dataset(20);
  data.test = dataset(30);
  auto teacher = distill::make_teacher(distill::TeacherArch{}, data.train.shape, 10);
  std::normal_distribution<double> g(0.0, 1.0);
  auto features = [&](int n) {
    distill::MatD a(n, D);
    for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = std::abs(g(rng));
    return a;
  };
  const distill::MatD A_test = features(30), A_val = features(20), A_sub = features(40);
  const fs::path d = fs::temp_directory_path() / ("hilo_selection_" + std::to_string(::getpid()));
  fs::create_directories(d);
  write_features(d / "test_features.npy", A_test);
  write_features(d / "val_features.npy", A_val);
  write_features(d / "subset_features.npy", A_sub);
  std::vector<int> idx;
  for (int i = 0; i < 40; ++i) idx.push_back(5 * i);
  std::ofstream(d / "result.json") << json{{"subset", {{"indices", idx}, {"fraction", 0.2}}}}.dump();

  const SweepEntry e = sweep_entry_from_json("t", {{"mode", "task"}, {"epochs", 2}});
  const std::vector<SubsetStrategy> strategies{SubsetStrategy::class_balanced, SubsetStrategy::uncertainty};
  const json r = compare_selection(d, "p", {data, teacher, student}, {e}, strategies, {0.05}, {3, 4});
  ASSERT_EQ(r["rows"].size(), 4u);
  ASSERT_EQ(r["summary"].size(), 2u);
  EXPECT_EQ(r["measured_pool"], 40);

  // The row of (uncertainty, seed 4) by hand: the nested draw (0.05 / 0.2 of the 40 measured images,
  // the teacher's outputs as features), then compensate() and the guard, both with seed 4.
  const distill::Dataset sub = distill::take(data.train, idx);
  const distill::MatD space = distill::predict(teacher, sub.x).cast<double>();
  std::mt19937_64 draw(4);
  const auto pick = nested_subset(SubsetStrategy::uncertainty, 0.05, 0.2, sub.y, space, draw);
  ASSERT_EQ(pick.size(), 10u);
  std::mt19937_64 fit(4);
  auto t = compensate(student, take_rows(A_sub, sub, pick), teacher, e.options, fit, A_test, data.test.y, &A_val, &data.val.y);
  distill::OpticalStudent none = distill::OpticalStudent::from_model(student.to_model({}));
  const double none_val = distill::accuracy(none.backend_forward(A_val), data.val.y);
  guard_against_none(t, none_val, none.backend_forward(A_test), data.test.y);
  const json* row = nullptr;
  for (const auto& x : r["rows"])
    if (x["strategy"] == "uncertainty" && x["seed"] == 4) row = &x;
  ASSERT_NE(row, nullptr) << r.dump();
  EXPECT_EQ((*row)["measured"], 10);
  EXPECT_EQ((*row)["refit_accuracy"].get<double>(), t.refit_test_accuracy);
  EXPECT_EQ((*row)["accuracy"].get<double>(), t.test_accuracy);
  EXPECT_EQ((*row)["kept_none"].get<bool>(), t.kept_uncompensated);
  EXPECT_EQ((*row)["val_accuracy"].get<double>(), t.val_accuracy);

  // The reference strategy's paired difference to itself is exactly 0.
  for (const auto& s : r["summary"]) {
    EXPECT_EQ(s["reference"], "class_balanced");
    EXPECT_EQ(s["seeds"], 2);
    if (s["strategy"] == "class_balanced") EXPECT_EQ(s["paired_diff_mean"].get<double>(), 0.0);
  }

  // Fractions must lie inside the measured subset; a study needs strategies.
  EXPECT_THROW(compare_selection(d, "p", {data, teacher, student}, {e}, strategies, {0.2}, {3}), std::invalid_argument);
  EXPECT_THROW(compare_selection(d, "p", {data, teacher, student}, {e}, {}, {0.05}, {3}), std::invalid_argument);
  // A measured subset whose rows do not match its indices names the file.
  write_features(d / "subset_features.npy", features(39));
  try {
    compare_selection(d, "p", {data, teacher, student}, {e}, strategies, {0.05}, {3});
    ADD_FAILURE() << "expected an error";
  } catch (const std::runtime_error& err) {
    EXPECT_NE(std::string(err.what()).find("subset_features.npy has 39 rows for 40 subset indices"), std::string::npos) << err.what();
  }
  fs::remove_all(d);
}
