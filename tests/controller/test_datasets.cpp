// A lab's own datasets in the daemon, through the protocol handler (no sockets): capture and pipeline
// jobs accept {"name": "npy" | "cifar10-bin" | "png-folder", ...} with paths confined to the data
// directory, and refuse escapes, missing files and bad options with the key and the rule. The PNG
// folder is read through the real decoder (OpenCV) on generated RGB and grey images.
#include <gtest/gtest.h>

#include <fstream>

#include <opencv2/core.hpp>

#include "harness.hpp"
#include "hilo/controller/dataset.hpp"
#include "hilo/io/figures.hpp"
#include "hilo/io/file_io.hpp"
#include "hilo/sim/npy.hpp"

namespace hilo::controller {
namespace {

using nlohmann::json;
using testing::Harness;
namespace fs = std::filesystem;

// 10 grey 8×8 images (image i holds level 20·i) and labels i % 2 in <dir>/own/.
void write_npy_set(const fs::path& data_dir) {
  fs::create_directories(data_dir / "own");
  sim::NpyArray x;
  x.dtype = sim::Dtype::u1;
  x.shape = {10, 8, 8};
  for (int i = 0; i < 10; ++i) x.bytes.insert(x.bytes.end(), 64, std::byte(20 * i));
  sim::write_npy(data_dir / "own" / "x.npy", x);
  std::vector<std::int64_t> y(10);
  for (int i = 0; i < 10; ++i) y[i] = i % 2;
  sim::write_npy(data_dir / "own" / "y.npy", sim::make_npy<std::int64_t>(std::span<const std::int64_t>(y), {10}));
}

Reply capture(Harness& h, const json& dataset, int count = 2) {
  return handle(Request{3, "capture", {{"dataset", dataset}, {"split", "test"}, {"start", 0}, {"count", count}}, {}}, *h.ctx);
}

std::string code(const Reply& r) { return r.body.contains("error") ? r.body["error"]["code"].get<std::string>() : "ok"; }
std::string message(const Reply& r) { return r.body.contains("error") ? r.body["error"]["message"].get<std::string>() : ""; }

}  // namespace

TEST(DatasetArgs, CaptureOfANpyDatasetShowsItsTestSplitAndStoresTheResolvedFiles) {
  Harness h("ds_capture");
  write_npy_set(h.dir);
  const json spec = {{"name", "npy"}, {"images", "own/x.npy"}, {"labels", "own/y.npy"}, {"test_size", 3}};
  const auto r = capture(h, spec, 3);
  ASSERT_EQ(code(r), "ok") << r.body.dump();
  h.jobs->wait_idle();
  EXPECT_EQ(h.slm.shows, 3);
  const auto rec = h.jobs->get(r.body["result"]["job_id"].get<std::int64_t>());
  ASSERT_TRUE(rec);
  EXPECT_EQ(to_string(rec->state), std::string("done")) << rec->error;
  EXPECT_EQ(rec->params["dataset"]["images"], (h.dir / "own" / "x.npy").string());
  // The same options name the same (now loaded) dataset: a range beyond its 3 test images is refused.
  const auto r4 = capture(h, spec, 4);
  EXPECT_EQ(code(r4), "bad_argument") << r4.body.dump();
  EXPECT_NE(message(r4).find("within [0, 3)"), std::string::npos) << message(r4);
}

TEST(DatasetArgs, CaptureRefusesEscapesMissingFilesAndBadOptionsNamingTheKey) {
  Harness h("ds_refuse");
  write_npy_set(h.dir);
  const fs::path outside = h.dir.parent_path() / ("hilo_outside_ds_" + std::to_string(::getpid()));
  fs::create_directories(outside);
  fs::copy_file(h.dir / "own" / "x.npy", outside / "x.npy", fs::copy_options::overwrite_existing);
  fs::create_symlink(outside / "x.npy", h.dir / "own" / "link.npy");
  auto with = [](json j) {
    json s = {{"name", "npy"}, {"images", "own/x.npy"}, {"labels", "own/y.npy"}};
    s.update(j);
    return s;
  };
  for (const auto& bad : {std::string("../") + outside.filename().string() + "/x.npy", (outside / "x.npy").string(),
                          std::string("own/link.npy")}) {
    const auto r = capture(h, with({{"images", bad}}));
    EXPECT_EQ(code(r), "forbidden_path") << bad << " " << r.body.dump();
    EXPECT_NE(message(r).find("args.dataset.images"), std::string::npos) << message(r);
  }
  auto r = capture(h, with({{"labels", "own/none.npy"}}));
  EXPECT_EQ(code(r), "not_found");
  EXPECT_NE(message(r).find("args.dataset.labels: no file 'own/none.npy'"), std::string::npos) << message(r);
  r = capture(h, {{"name", "cifar10-bin"}, {"dir", "nowhere"}});
  EXPECT_EQ(code(r), "not_found");
  EXPECT_NE(message(r).find("args.dataset.dir: no folder"), std::string::npos) << message(r);
  r = capture(h, with({{"colour", "rgb"}}));
  EXPECT_EQ(code(r), "bad_argument");
  EXPECT_NE(message(r).find("colour"), std::string::npos) << message(r);
  r = capture(h, with({{"color", "rgb"}}));
  EXPECT_EQ(code(r), "bad_argument");
  EXPECT_NE(message(r).find("args.dataset.color must be \"luminance\""), std::string::npos) << message(r);
  r = capture(h, {{"name", "npy"}, {"images", "own/x.npy"}});
  EXPECT_EQ(code(r), "bad_argument");
  EXPECT_NE(message(r).find("data.images and data.labels"), std::string::npos) << message(r);
  r = capture(h, {{"name", "mnist"}});
  EXPECT_EQ(code(r), "bad_argument");
  EXPECT_NE(message(r).find("file source"), std::string::npos) << message(r);
  EXPECT_TRUE(h.jobs->list().empty());
  // Valid arguments, broken contents: the job fails with the loader's message (file and rule).
  sim::write_npy(h.dir / "own" / "y3.npy", sim::make_npy<std::int64_t>(std::span<const std::int64_t>(std::vector<std::int64_t>{0, 1, 0}), {3}));
  r = capture(h, with({{"labels", "own/y3.npy"}}));
  ASSERT_EQ(code(r), "ok") << r.body.dump();
  h.jobs->wait_idle();
  const auto rec = h.jobs->get(r.body["result"]["job_id"].get<std::int64_t>());
  EXPECT_EQ(to_string(rec->state), std::string("failed"));
  EXPECT_NE(rec->error.find("3 labels for 10 images"), std::string::npos) << rec->error;
  fs::remove_all(outside);
}

TEST(DatasetArgs, PipelineConfinesTheDataFilesAndChecksTheBenchInputSize) {
  Harness h("ds_pipeline");
  write_npy_set(h.dir);
  PipelineBench pb{h.slm, nullptr, h.camera, sim::BenchOptions{}};  // design input 28×28
  h.ctx->pipeline = &pb;
  auto pipeline = [&](const json& data) {
    return handle(Request{5, "pipeline", {{"config", {{"data", data}, {"bench", {{"profiles", json::array()}, {"test_images", 2}}}}}}, {}}, *h.ctx);
  };
  auto r = pipeline({{"name", "npy"}, {"images", "../x.npy"}, {"labels", "own/y.npy"}});
  EXPECT_EQ(code(r), "forbidden_path");
  EXPECT_NE(message(r).find("config.data.images"), std::string::npos) << message(r);
  r = pipeline({{"name", "npy"}, {"images", "own/x.npy"}, {"labels", "own/none.npy"}});
  EXPECT_EQ(code(r), "not_found");
  EXPECT_NE(message(r).find("config.data.labels"), std::string::npos) << message(r);
  r = pipeline({{"name", "npy"}, {"images", "own/x.npy"}, {"labels", "own/y.npy"}, {"color", "rgb"}});
  EXPECT_EQ(code(r), "bad_argument");
  EXPECT_NE(message(r).find("data.color must be \"luminance\" in a pipeline"), std::string::npos) << message(r);
  EXPECT_TRUE(h.jobs->list().empty());
  // Accepted, with the resolved path stored for a resume; the 8×8 images do not fit the 28×28 design
  // input, which the job reports before it trains anything.
  r = pipeline({{"name", "npy"}, {"images", "own/x.npy"}, {"labels", "own/y.npy"}});
  ASSERT_EQ(code(r), "ok") << r.body.dump();
  h.jobs->wait_idle();
  const auto rec = h.jobs->get(r.body["result"]["job_id"].get<std::int64_t>());
  EXPECT_EQ(rec->params["config"]["data"]["images"], (h.dir / "own" / "x.npy").string());
  EXPECT_EQ(to_string(rec->state), std::string("failed"));
  EXPECT_NE(rec->error.find("the images are 8x8, the bench's design input is 28x28"), std::string::npos) << rec->error;
}

TEST(DatasetArgs, TrainingJobsConfineTheBuiltInDatasetFoldersToo) {
  Harness h("ds_folders");
  write_npy_set(h.dir);
  const fs::path outside = h.dir.parent_path() / ("hilo_outside_dirs_" + std::to_string(::getpid()));
  fs::create_directories(outside / "digits");
  fs::create_directory_symlink(outside, h.dir / "out_link");
  fs::create_directories(h.dir / "mnist" / "digits");
  auto teacher = [&](const json& data) {
    return handle(Request{6, "train-teacher", {{"config", {{"data", data}, {"train", {{"epochs", 1}}}}}}, {}}, *h.ctx);
  };
  const std::string up = "../" + outside.filename().string();
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"fashion_dir", up}, {"mnist_dir", outside.string()}, {"mnist_dir", "out_link/digits"}, {"fashion_dir", "mnist/../.."}}) {
    const json data = {{"name", key == "mnist_dir" ? "mnist" : "fashion-mnist"}, {key, value}};
    const auto r = teacher(data);
    EXPECT_EQ(code(r), "forbidden_path") << data.dump() << " " << r.body.dump();
    EXPECT_NE(message(r).find("config.data." + key), std::string::npos) << message(r);
  }
  // A folder the named source does not read is confined all the same.
  auto r = teacher({{"name", "npy"}, {"images", "own/x.npy"}, {"labels", "own/y.npy"}, {"fashion_dir", outside.string()}});
  EXPECT_EQ(code(r), "forbidden_path") << r.body.dump();
  EXPECT_NE(message(r).find("config.data.fashion_dir"), std::string::npos) << message(r);
  r = teacher({{"name", "mnist"}, {"mnist_dir", "mnist/none"}});
  EXPECT_EQ(code(r), "not_found") << r.body.dump();
  EXPECT_TRUE(h.jobs->list().empty());
  // Inside: accepted, and the job reads that folder (empty here, so it fails naming it).
  r = teacher({{"name", "mnist"}, {"mnist_dir", "mnist/digits"}});
  ASSERT_EQ(code(r), "ok") << r.body.dump();
  h.jobs->wait_idle();
  const auto rec = h.jobs->get(r.body["result"]["job_id"].get<std::int64_t>());
  EXPECT_EQ(to_string(rec->state), std::string("failed"));
  EXPECT_NE(rec->error.find((h.dir / "mnist" / "digits").string()), std::string::npos) << rec->error;
  fs::remove_all(outside);
}

TEST(DatasetArgs, CalibrateConfinesTheDataPathsOfTheDeploymentsStoredConfig) {
  Harness h("ds_stored");
  write_npy_set(h.dir);
  PipelineBench pb{h.slm, nullptr, h.camera, sim::BenchOptions{}};
  h.ctx->pipeline = &pb;
  const fs::path outside = h.dir.parent_path() / ("hilo_outside_stored_ds_" + std::to_string(::getpid()));
  fs::create_directories(outside);
  fs::copy_file(h.dir / "own" / "x.npy", outside / "x.npy", fs::copy_options::overwrite_existing);
  // A deployment directory a user placed in the data directory, its config naming a file outside.
  const fs::path dep = h.dir / "handmade";
  for (const char* f : {"student/student.hilo", "deploy/student.hilo", "teacher.hilo"}) {
    fs::create_directories((dep / f).parent_path());
    std::ofstream(dep / f) << "x";
  }
  auto calibrate_with = [&](const std::string& images) {
    json cfg = PipelineConfig::defaults().to_json();
    cfg["data"] = {{"name", "npy"}, {"images", images}, {"labels", (h.dir / "own" / "y.npy").string()}};
    cfg["bench"]["profiles"] = json::array();
    io::write_json_atomic(dep / "config.json", cfg);
    return handle(Request{8, "calibrate", {{"deployment", "handmade"}, {"teacher", "handmade/teacher.hilo"}}, {}}, *h.ctx);
  };
  auto r = calibrate_with((outside / "x.npy").string());
  EXPECT_EQ(code(r), "forbidden_path") << r.body.dump();
  EXPECT_NE(message(r).find("config.data.images"), std::string::npos) << message(r);
  r = calibrate_with((h.dir / "own" / ".." / ".." / outside.filename() / "x.npy").string());
  EXPECT_EQ(code(r), "forbidden_path") << r.body.dump();
  EXPECT_TRUE(h.jobs->list().empty());
  // The resolved path a deploy job stores is accepted (the job then fails on the dummy model files).
  r = calibrate_with((h.dir / "own" / "x.npy").string());
  EXPECT_EQ(code(r), "ok") << r.body.dump();
  h.jobs->wait_idle();
  fs::remove_all(outside);
}

TEST(DatasetArgs, ATrainTeacherJobReadsAPngFolderThroughTheDecoder) {
  Harness h("ds_png_job");
  for (int i = 0; i < 30; ++i) {
    const fs::path d = h.dir / "imgs" / (i % 2 ? "light" : "dark");
    fs::create_directories(d);
    io::write_png(d / (std::to_string(i) + ".png"), cv::Mat(8, 8, CV_8UC1, cv::Scalar(i % 2 ? 200 : 20 + i)));
  }
  const json cfg = {{"data", {{"name", "png-folder"}, {"dir", "imgs"}}},
                    {"arch", {{"channels", {2}}, {"hidden", 8}}},
                    {"train", {{"epochs", 1}, {"batch_size", 8}, {"threads", 1}}}};
  const auto r = handle(Request{4, "train-teacher", {{"config", cfg}}, {}}, *h.ctx);
  ASSERT_EQ(code(r), "ok") << r.body.dump();
  h.jobs->wait_idle();
  const auto rec = h.jobs->get(r.body["result"]["job_id"].get<std::int64_t>());
  EXPECT_EQ(to_string(rec->state), std::string("done")) << rec->error;
  EXPECT_TRUE(fs::exists(h.dir / rec->run_id / "teacher.hilo"));
}

TEST(DatasetFiles, PngFolderIsDecodedWithOpenCvAsRgbAndCapturedAsLuminance) {
  const fs::path d = testing::fresh_dir("ds_png");
  for (const char* cls : {"cat", "dog"}) fs::create_directories(d / cls);
  cv::Mat rgb(6, 5, CV_8UC3, cv::Scalar(0, 0, 0));
  rgb.at<cv::Vec3b>(1, 2) = cv::Vec3b(200, 100, 50);  // as stored: B, G, R in OpenCV's order
  io::write_png(d / "cat" / "a.png", rgb);
  io::write_png(d / "dog" / "b.png", cv::Mat(6, 5, CV_8UC1, cv::Scalar(90)));
  io::write_png(d / "dog" / "c.png", cv::Mat(6, 5, CV_8UC1, cv::Scalar(30)));
  const distill::Dataset s = distill::load_image_folder(d, image_decoder());
  ASSERT_EQ(s.shape, (distill::Shape{3, 6, 5}));
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"cat", "dog"}));
  // Pixel (1, 2) of the cat: R = 50, G = 100, B = 200 in the dataset's channel planes.
  EXPECT_FLOAT_EQ(s.x(0, 0 * 30 + 1 * 5 + 2), 50 / 255.0f);
  EXPECT_FLOAT_EQ(s.x(0, 1 * 30 + 1 * 5 + 2), 100 / 255.0f);
  EXPECT_FLOAT_EQ(s.x(0, 2 * 30 + 1 * 5 + 2), 200 / 255.0f);
  distill::DataOptions o;
  o.name = "png-folder";
  o.dir = d.string();
  o.test_size = 3;
  o.val_size = 0;
  o.train_limit = 0;
  // 3 images, all held out as the test split: no training image left.
  EXPECT_THROW(read_file_split(o, "test"), DatasetError);
  io::write_png(d / "dog" / "e.png", cv::Mat(6, 5, CV_8UC1, cv::Scalar(10)));
  const ImageSet t = read_file_split(o, "test");
  ASSERT_EQ(t.count, 3u);
  EXPECT_EQ(t.rows, 6u);
  { std::ofstream(d / "dog" / "broken.png") << "not a png"; }
  try {
    read_file_split(o, "test");
    ADD_FAILURE() << "a broken PNG was read";
  } catch (const DatasetError& e) {
    EXPECT_NE(std::string(e.what()).find("broken.png: cannot decode"), std::string::npos) << e.what();
  }
  fs::remove_all(d);
}

}  // namespace hilo::controller
