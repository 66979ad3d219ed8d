// Datasets, model files, job configs, the training loops (progress, cancellation) and one short
// accuracy check on real data.
#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "student_fixture.hpp"
#include "hilo/distill/data.hpp"
#include "hilo/distill/jobs.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/distill/student_jobs.hpp"
#include "hilo/distill/threads.hpp"

using namespace hilo::distill;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("hilo_distill_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write_gz(const fs::path& p, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

std::vector<unsigned char> be(std::uint32_t v) {
  return {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16), static_cast<unsigned char>(v >> 8),
          static_cast<unsigned char>(v)};
}

// n images of 2×3 where pixel k of image i is (i + k) mod 256; label i mod 10.
void write_idx(const fs::path& dir, const std::string& prefix, int n) {
  std::vector<unsigned char> im = be(0x803), lb = be(0x801);
  for (auto v : {be(n), be(2), be(3)}) im.insert(im.end(), v.begin(), v.end());
  auto nb = be(n);
  lb.insert(lb.end(), nb.begin(), nb.end());
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 6; ++k) im.push_back(static_cast<unsigned char>((i + k) % 256));
    lb.push_back(static_cast<unsigned char>(i % 10));
  }
  write_gz(dir / (prefix + "-images-idx3-ubyte.gz"), im);
  write_gz(dir / (prefix + "-labels-idx1-ubyte.gz"), lb);
}
}  // namespace

TEST(Data, IdxLoaderReadsPixelsAndLabels) {
  const fs::path d = temp_dir("idx");
  write_idx(d, "train", 12);
  const Dataset ds = load_idx_gz(d / "train-images-idx3-ubyte.gz", d / "train-labels-idx1-ubyte.gz");
  ASSERT_EQ(ds.size(), 12u);
  EXPECT_EQ(ds.shape, (Shape{1, 2, 3}));
  EXPECT_FLOAT_EQ(ds.x(5, 2), 7.0f / 255.0f);
  EXPECT_EQ(ds.y[11], 1);
  fs::remove_all(d);
}

TEST(Data, MissingOrCorruptFileIsAClearError) {
  const fs::path d = temp_dir("missing");
  try {
    load_idx_gz(d / "nope-images.gz", d / "nope-labels.gz");
    FAIL();
  } catch (const DatasetError& e) {
    EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos);
  }
  write_gz(d / "bad.gz", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
  EXPECT_THROW(load_idx_gz(d / "bad.gz", d / "bad.gz"), DatasetError);
  DataOptions o;
  o.name = "mnist";
  o.mnist_dir = d.string();
  EXPECT_THROW(load_splits(o), DatasetError);
  fs::remove_all(d);
}

TEST(Data, MnistJsonLoaderAndSplitsAreDeterministicAndDisjoint) {
  const fs::path d = temp_dir("mnistjson");
  int id = 0;
  for (int digit = 0; digit < 10; ++digit) {
    nlohmann::json j;
    std::vector<float> v;
    for (int n = 0; n < 30; ++n, ++id)
      for (int k = 0; k < 784; ++k) v.push_back(k == 0 ? static_cast<float>(id) / 1000.0f : 0.0f);
    j["data"] = v;
    std::ofstream(d / (std::to_string(digit) + ".json")) << j.dump();
  }
  DataOptions o;
  o.name = "mnist";
  o.mnist_dir = d.string();
  o.val_size = 50;
  o.mnist_test_size = 60;
  const Splits a = load_splits(o), b = load_splits(o);
  EXPECT_EQ(a.train.size(), 190u);
  EXPECT_EQ(a.val.size(), 50u);
  EXPECT_EQ(a.test.size(), 60u);
  EXPECT_EQ(a.test.x, b.test.x);
  std::set<float> ids;
  for (const Dataset* s : {&a.train, &a.val, &a.test})
    for (Eigen::Index i = 0; i < s->x.rows(); ++i) ids.insert(s->x(i, 0));
  EXPECT_EQ(ids.size(), 300u);  // every image exactly once
  o.split_seed = 99;
  EXPECT_NE(load_splits(o).test.x, a.test.x);
  fs::remove_all(d);
}

TEST(ModelFile, SequentialRoundTripGivesIdenticalPredictions) {
  std::mt19937_64 rng(3);
  Sequential<float> net(Shape{1, 8, 8});
  net.conv(2, 3, 1).batchnorm().relu().maxpool(2).linear(5).relu().linear(3);
  init_he(net, rng);
  const fs::path d = temp_dir("model");
  write_model(d / "t.hilo", sequential_to_model(net, "teacher", {{"note", "x"}}));
  const ModelFile m = read_model(d / "t.hilo");
  EXPECT_EQ(m.kind, "teacher");
  EXPECT_EQ(m.meta["note"], "x");
  Sequential<float> back = sequential_from_model<float>(m);
  const Mat<float> x = Mat<float>::Random(3, 64);
  EXPECT_EQ(net.forward(x, false), back.forward(x, false));
  // Truncation is detected.
  fs::resize_file(d / "t.hilo", fs::file_size(d / "t.hilo") - 64);
  EXPECT_THROW(read_model(d / "t.hilo"), ModelFileError);
  std::ofstream(d / "junk.hilo") << "not a model";
  EXPECT_THROW(read_model(d / "junk.hilo"), ModelFileError);
  fs::remove_all(d);
}

TEST(ModelFile, StudentRoundTripGivesIdenticalPredictions) {
  std::mt19937_64 rng(4);
  StudentOptions o;
  o.kernels = 4;
  o.hidden = 16;
  OpticalStudent s(o, Shape{1, 28, 28}, 10);
  s.init(rng);
  const fs::path d = temp_dir("student");
  write_model(d / "s.hilo", s.to_model({}));
  OpticalStudent b = OpticalStudent::from_model(read_model(d / "s.hilo"));
  const MatD x = MatD::Random(2, 784).cwiseAbs();
  EXPECT_EQ(s.forward(x, false), b.forward(x, false));
  fs::remove_all(d);
}

namespace {
// The message a config reader throws, or "(accepted)".
template <class F>
std::string msg(F fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

// Both jobs read through io::read_options: a misspelt key anywhere gets a suggestion and its full
// path, a wrong type names the key, and a job written out reads back to every field.
TEST(JobConfig, JobsReadStrictlyAndRoundTrip) {
  EXPECT_EQ(msg([] { TeacherJob::from_json({{"arch", {{"hiden", 3}}}}); }),
            "train-teacher job.arch: unknown key 'hiden'; did you mean 'hidden'?");
  EXPECT_EQ(msg([] { TeacherJob::from_json({{"out_dri", "x"}}); }),
            "train-teacher job: unknown key 'out_dri'; did you mean 'out_dir'?");
  EXPECT_EQ(msg([] { DistillJob::from_json({{"teacher", "t"}, {"train", {{"batch_size", "big"}}}}); }),
            "distill job.train.batch_size must be an integer, got a string (\"big\")");
  EXPECT_EQ(msg([] { DistillJob::from_json({{"command", "train-teacher"}, {"teacher", "t"}}); }),
            "distill job.command must be \"distill\", got \"train-teacher\"");
  DistillJob d;
  d.teacher = "runs/t/teacher.hilo";
  d.out_dir = "runs/s";
  d.data.val_size = 123;
  d.student.kernels = 6;
  d.distill.method = "kd";
  d.distill.temperature = 7;
  d.train.epochs = 9;
  d.train.threads = 2;
  nlohmann::json j = d;
  j["command"] = "distill";
  const DistillJob back = DistillJob::from_json(j);
  EXPECT_EQ(nlohmann::json(back), nlohmann::json(d));
  EXPECT_EQ(back.distill.temperature, 7);
  TeacherJob t;
  t.arch.hidden = 17;
  t.train.optimizer.lr = 0.25;
  EXPECT_EQ(nlohmann::json(TeacherJob::from_json(nlohmann::json(t))), nlohmann::json(t));
}

TEST(JobConfig, UnknownKeysAndBadValuesAreRejectedWithTheirName) {
  EXPECT_NE(msg([] { TeacherJob::from_json({{"train", {{"epoch", 3}}}}); }).find("unknown key 'epoch'"), std::string::npos);
  EXPECT_NE(msg([] { TeacherJob::from_json({{"train", {{"epochs", 0}}}}); }).find("train.epochs"), std::string::npos);
  EXPECT_NE(msg([] { DistillJob::from_json({{"distill", {{"method", "kd"}}}}); }).find("distill job.teacher"), std::string::npos);
  // Method none needs no teacher; a partial "train" section keeps the student's defaults, not the teacher's.
  const DistillJob none = DistillJob::from_json({{"train", {{"epochs", 2}}}});
  EXPECT_TRUE(none.teacher.empty());
  EXPECT_EQ(none.train.epochs, 2);
  EXPECT_EQ(none.train.batch_size, student_train_defaults().batch_size);
  EXPECT_DOUBLE_EQ(none.train.optimizer.lr, student_train_defaults().optimizer.lr);
  EXPECT_NE(msg([] { DistillJob::from_json({{"teacher", "t"}, {"distill", {{"method", "magic"}}}}); }).find("distill.method"),
            std::string::npos);
  EXPECT_NE(msg([] { DistillJob::from_json({{"teacher", "t"}, {"distill", {{"ntk_distance", "l1"}}}}); }).find("ntkd.distance"),
            std::string::npos);
  EXPECT_NE(msg([] { DistillJob::from_json({{"teacher", "t"}, {"distill", {{"ntk_teacher", "guess"}}}}); }).find("distill.ntk_teacher"),
            std::string::npos);
  const fs::path d = temp_dir("yaml");
  std::ofstream(d / "job.yaml") << "command: train-teacher\ntrain:\n  epochs: 2\n  optimizer:\n    lr: 0.01\n";
  const TeacherJob t = TeacherJob::from_json(load_config_file(d / "job.yaml"));
  EXPECT_EQ(t.train.epochs, 2);
  EXPECT_DOUBLE_EQ(t.train.optimizer.lr, 0.01);
  EXPECT_THROW(load_config_file(d / "absent.json"), std::runtime_error);
  fs::remove_all(d);
}

namespace {
Splits toy(int n, std::mt19937_64& rng) { return hilo::distill::testing::toy_splits(n, rng); }
}  // namespace

// The convergence rule read from a job's train section, and a teacher stopped by it keeping its best
// epoch whole: its validation accuracy afterwards is the best one, which needs the batch-norm running
// statistics restored with the weights.
TEST(Training, ConvergenceRuleReadsFromJsonAndTheTeacherKeepsItsBestEpoch) {
  const DistillJob d = DistillJob::from_json({{"train", {{"early_stop", {{"patience", 3}, {"min_delta", 0.002}}},
                                                         {"log_test_acc", true}}}});
  EXPECT_EQ(d.train.early_stop.patience, 3);
  EXPECT_EQ(d.train.early_stop.min_delta, 0.002);
  EXPECT_EQ(msg([] { DistillJob::from_json({{"train", {{"early_stop", {{"patiense", 3}}}}}}); }),
            "distill job.train.early_stop: unknown key 'patiense'; did you mean 'patience'?");
  EXPECT_NE(msg([] { DistillJob::from_json({{"train", {{"early_stop", {{"patience", -1}}}}}}); })
                .find("train.early_stop.patience must be >= 0"),
            std::string::npos);
  std::mt19937_64 rng(5);
  Splits s = toy(256, rng);
  Sequential<float> net = make_teacher(TeacherArch{{4}, 8}, s.train.shape, 2);
  TrainOptions o;
  o.epochs = 12;
  o.batch_size = 32;
  o.optimizer.lr = 3e-2;
  o.schedule = "constant";
  o.early_stop = {.patience = 2, .min_delta = 0.0};
  o.log_test_acc = true;
  std::vector<Mat<float>> logits;  // the validation logits after every epoch
  JobControl ctl;
  ctl.on_epoch = [&](const EpochRecord&) { logits.push_back(predict(net, s.val.x)); };
  const History h = train_classifier(net, s, o, ctl);
  ASSERT_FALSE(h.stop_reason.empty());
  EXPECT_EQ(h.stopped_epoch, static_cast<int>(h.epochs.size()));
  ASSERT_GE(h.best_epoch, 1);
  EXPECT_EQ(h.epochs[static_cast<std::size_t>(h.best_epoch - 1)].val_acc, h.best_val_acc);
  EXPECT_EQ(accuracy(predict(net, s.val.x), s.val.y), h.best_val_acc);
  EXPECT_TRUE(predict(net, s.val.x) == logits[static_cast<std::size_t>(h.best_epoch - 1)])
      << "the kept network (weights and batch-norm statistics) is the best epoch's";
  if (h.best_epoch < h.stopped_epoch) EXPECT_FALSE(predict(net, s.val.x) == logits.back());
  for (const auto& r : h.epochs) EXPECT_TRUE(r.extra.contains("test_acc")) << "log_test_acc: every epoch";
  EXPECT_EQ(h.test_acc, h.epochs[static_cast<std::size_t>(h.best_epoch - 1)].extra.at("test_acc").get<double>());
  s.val = {};
  Sequential<float> net2 = make_teacher(TeacherArch{{4}, 8}, s.train.shape, 2);
  EXPECT_NE(msg([&] { train_classifier(net2, s, o, {}); }).find("needs a validation split"), std::string::npos);
}

TEST(Training, ReportsProgressAndLearnsAToyProblem) {
  std::mt19937_64 rng(5);
  const Splits s = toy(256, rng);
  Sequential<float> net = make_teacher(TeacherArch{{4}, 8}, s.train.shape, 2);
  TrainOptions o;
  o.epochs = 5;
  o.batch_size = 32;
  o.optimizer.lr = 1e-2;
  int progress = 0, epochs = 0;
  JobControl ctl;
  ctl.on_step = [&](const Progress&) { ++progress; };
  ctl.on_epoch = [&](const EpochRecord&) { ++epochs; };
  const History h = train_classifier(net, s, o, ctl);
  EXPECT_EQ(epochs, 5);
  EXPECT_GT(progress, 3);
  EXPECT_GT(h.test_acc, 0.95);
}

TEST(Training, CancellationStopsBeforeTheFirstStep) {
  std::mt19937_64 rng(6);
  const Splits s = toy(128, rng);
  Sequential<float> net = make_teacher(TeacherArch{{4}, 8}, s.train.shape, 2);
  std::stop_source stop;
  stop.request_stop();
  JobControl ctl;
  ctl.work.stop = stop.get_token();
  const History h = train_classifier(net, s, TrainOptions{}, ctl);
  EXPECT_TRUE(h.cancelled);
  EXPECT_TRUE(h.epochs.empty());
}

// A stop requested through the work control (io/progress.hpp) ends teacher and student training
// before their next step, and the progress they report is (step, all steps, job name).
TEST(Training, StopThroughTheWorkControlEndsTrainingBeforeTheNextStep) {
  std::mt19937_64 rng(9);
  const Splits s = toy(256, rng);
  Sequential<float> teacher = make_teacher(TeacherArch{{4}, 8}, s.train.shape, 2);
  TrainOptions o;
  o.epochs = 3;
  o.batch_size = 32;  // 8 steps per epoch
  for (const std::string job : {"train-teacher", "distill"}) {
    std::stop_source stop;
    std::vector<std::int64_t> done;
    JobControl ctl;
    ctl.progress_every = 1;
    ctl.work.stop = stop.get_token();
    ctl.work.progress = [&](std::int64_t d, std::int64_t total, std::string_view stage) {
      EXPECT_EQ(total, 24);
      EXPECT_EQ(stage, job);
      done.push_back(d);
      if (d == 11) stop.request_stop();  // in the second epoch
    };
    History h;
    if (job == "train-teacher") {
      h = train_classifier(teacher, s, o, ctl);
    } else {
      OpticalStudent st(StudentOptions{}, s.train.shape, 2);
      DistillOptions d;
      d.method = "none";
      h = train_student(st, teacher, s, d, o, ctl);
    }
    EXPECT_TRUE(h.cancelled) << job;
    EXPECT_EQ(done.back(), 11) << job << ": steps ran after the stop";
    EXPECT_EQ(h.epochs.size(), 1u) << job;
  }
}

// Regression: training set Eigen's process-wide thread count to its options' `threads`, so a
// library call changed every other thread's products. The count belongs to the thread's owner.
TEST(Training, LeavesTheCallersThreadCountAlone) {
  std::mt19937_64 rng(8);
  const Splits s = toy(64, rng);
  Sequential<float> net = make_teacher(TeacherArch{{4}, 8}, s.train.shape, 2);
  set_compute_threads(3);
  TrainOptions o;
  o.epochs = 1;
  o.batch_size = 32;
  o.threads = 1;
  (void)train_classifier(net, s, o, {});
  OpticalStudent st(StudentOptions{}, s.train.shape, 2);
  (void)train_student(st, net, s, DistillOptions{}, o, {});
  EXPECT_EQ(compute_threads(), 3);
  set_compute_threads(1);
}

TEST(Training, ComputeThreadsArePerThread) {
  set_compute_threads(2);
  int other = 0;
  std::thread t([&] {
    set_compute_threads(1);
    other = compute_threads();
  });
  t.join();
  EXPECT_EQ(other, 1);
  EXPECT_EQ(compute_threads(), 2);
  EXPECT_THROW(set_compute_threads(0), std::invalid_argument);
  set_compute_threads(1);
}

// Short end-to-end check on real data: a student learns Fashion-MNIST well above chance from 3,000
// images in 2 epochs, with and without NTKD. Skipped where the dataset is not installed.
TEST(Distill, StudentLearnsFashionMnistSubset) {
  DataOptions o;
  o.train_limit = 3000;
  o.val_size = 500;
  if (!fs::exists(fashion_mnist_dir(o) / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not installed";
  Splits s = load_splits(o);
  s.test = head(s.test, 1000);
  std::mt19937_64 rng(7);
  Sequential<float> teacher = make_teacher(TeacherArch{{4}, 16}, s.train.shape, 10);
  init_he(teacher, rng);
  StudentOptions so;
  so.hidden = 64;
  TrainOptions t;
  t.epochs = 2;
  t.batch_size = 50;
  t.optimizer.lr = 3e-3;
  for (std::string method : {"none", "ntkd"}) {
    OpticalStudent st(so, s.train.shape, 10);
    DistillOptions d;
    d.method = method;
    d.ntk_subbatch = 8;
    d.ntk_every = 4;
    const History h = train_student(st, teacher, s, d, t, {});
    EXPECT_GT(h.test_acc, 0.6) << method;  // chance is 0.1
    if (method == "ntkd") EXPECT_TRUE(h.epochs.back().extra.contains("ntk_distance"));
  }
}

// Input augmentation in distillation: without augmentation distill.teacher_on_augmented changes nothing
// (bit-identical histories); with it, KD's soft labels are recomputed on the augmented images, so the
// two settings train differently, and each repeats bit for bit from its seed.
TEST(Training, TeacherOnAugmentedMattersOnlyWithAugmentation) {
  std::mt19937_64 rng(12);
  const Splits s = toy(128, rng);
  Sequential<float> teacher = make_teacher(TeacherArch{{4}, 8}, s.train.shape, 2);
  init_he(teacher, rng);
  auto run = [&](int shift, bool on_augmented) {
    OpticalStudent st(StudentOptions{}, s.train.shape, 2);
    DistillOptions d;
    d.method = "kd";
    d.teacher_on_augmented = on_augmented;
    TrainOptions o;
    o.epochs = 2;
    o.batch_size = 32;
    o.augment.shift_px = shift;
    std::vector<double> losses;
    for (const auto& e : train_student(st, teacher, s, d, o, {}).epochs) losses.push_back(e.loss);
    return losses;
  };
  EXPECT_EQ(run(0, true), run(0, false));
  EXPECT_NE(run(0, true), run(2, true)) << "augmentation changed nothing";
  EXPECT_EQ(run(2, true), run(2, true));
  EXPECT_NE(run(2, true), run(2, false)) << "the teacher's outputs were not recomputed on the augmented images";
}
