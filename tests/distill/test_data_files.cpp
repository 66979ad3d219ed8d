// A lab's own datasets (data.hpp): .npy pairs, CIFAR-10 binary batches and folders of images per class,
// read from small generated files, and every broken case a user can hand in, refused with the file and
// the rule. The PNG decoding itself is OpenCV's (tested with the controller); here the folder reader gets
// an injected decoder.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <cmath>
#include <map>
#include <set>

#include "hilo/distill/data.hpp"
#include "hilo/sim/npy.hpp"

using namespace hilo;
using namespace hilo::distill;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("hilo_test_data_files_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

template <typename T>
fs::path write(const fs::path& p, const std::vector<T>& v, std::vector<std::size_t> shape) {
  sim::write_npy(p, sim::make_npy<T>(std::span<const T>(v), std::move(shape)));
  return p;
}

std::vector<std::int64_t> labels_of(std::size_t n, int classes) {
  std::vector<std::int64_t> l(n);
  for (std::size_t i = 0; i < n; ++i) l[i] = static_cast<std::int64_t>(i % static_cast<std::size_t>(classes));
  return l;
}

// Expects a DatasetError whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no DatasetError";
  } catch (const DatasetError& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << "\n  lacks: " << p;
  }
}

}  // namespace

TEST(NpyDataset, GreyUint8AndRgbLayoutsBecomeChannelPlanes) {
  const fs::path d = fresh_dir("layouts");
  const std::size_t n = 4, h = 2, w = 5;  // w ≠ 3: a last axis of 3 would be read as H×W×3
  std::vector<std::uint8_t> grey(n * h * w);
  for (std::size_t i = 0; i < grey.size(); ++i) grey[i] = static_cast<std::uint8_t>(i * 7);
  const auto labels = write(d / "y.npy", labels_of(n, 3), {n});
  const Dataset g = load_npy_dataset(write(d / "g.npy", grey, {n, h, w}), labels);
  EXPECT_EQ(g.shape, (Shape{1, 2, 5}));
  EXPECT_EQ(g.num_classes, 3);
  EXPECT_FLOAT_EQ(g.x(2, 7), grey[2 * 10 + 7] / 255.0f);
  EXPECT_EQ(g.y, (std::vector<int>{0, 1, 2, 0}));

  // The same RGB images stored as N×H×W×3 (float32) and N×3×H×W (float64): pixel (y, x) of channel ch
  // lands at ch·h·w + y·w + x in both.
  auto value = [](std::size_t i, std::size_t ch, std::size_t y, std::size_t x) { return double(i * 100 + ch * 10 + y * 5 + x) / 400.0; };
  std::vector<float> hwc(n * h * w * 3);
  std::vector<double> chw(n * 3 * h * w);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t ch = 0; ch < 3; ++ch)
      for (std::size_t y = 0; y < h; ++y)
        for (std::size_t x = 0; x < w; ++x) {
          hwc[((i * h + y) * w + x) * 3 + ch] = static_cast<float>(value(i, ch, y, x));
          chw[((i * 3 + ch) * h + y) * w + x] = value(i, ch, y, x);
        }
  const Dataset a = load_npy_dataset(write(d / "hwc.npy", hwc, {n, h, w, 3}), labels);
  const Dataset b = load_npy_dataset(write(d / "chw.npy", chw, {n, 3, h, w}), labels);
  EXPECT_EQ(a.shape, (Shape{3, 2, 5}));
  EXPECT_EQ(b.shape, (Shape{3, 2, 5}));
  EXPECT_FLOAT_EQ(a.x(3, 2 * 10 + 1 * 5 + 2), static_cast<float>(value(3, 2, 1, 2)));
  EXPECT_TRUE(a.x.isApprox(b.x, 1e-6f));
  fs::remove_all(d);
}

TEST(NpyDataset, BrokenFilesNameTheFileAndTheRule) {
  const fs::path d = fresh_dir("broken");
  const std::vector<std::uint8_t> im(4 * 2 * 2, 10);
  const auto images = write(d / "x.npy", im, {4, 2, 2});
  const auto labels = write(d / "y.npy", labels_of(4, 2), {4});
  expect_error([&] { load_npy_dataset(d / "none.npy", labels); }, {"none.npy", "not found"});
  { std::ofstream(d / "junk.npy") << "not an array"; }
  expect_error([&] { load_npy_dataset(d / "junk.npy", labels); }, {"junk.npy", "not a readable .npy"});
  expect_error([&] { load_npy_dataset(write(d / "i32.npy", std::vector<std::int32_t>(16, 1), {4, 2, 2}), labels); },
               {"i32.npy", "uint8", "float32", "<i4"});
  expect_error([&] { load_npy_dataset(write(d / "two.npy", im, {4, 2, 1, 2}), labels); }, {"two.npy", "N x H x W", "(4, 2, 1, 2)"});
  expect_error([&] { load_npy_dataset(write(d / "flat.npy", im, {16}), labels); }, {"flat.npy", "(16,)"});
  expect_error([&] { load_npy_dataset(write(d / "hot.npy", std::vector<float>(16, 1.5f), {4, 2, 2}), labels); },
               {"hot.npy", "[0, 1]", "1.5"});
  expect_error([&] { load_npy_dataset(images, write(d / "y3.npy", labels_of(3, 2), {3})); }, {"y3.npy", "3 labels for 4 images", "x.npy"});
  expect_error([&] { load_npy_dataset(images, write(d / "yf.npy", std::vector<float>(4, 0.f), {4})); }, {"yf.npy", "integer dtype"});
  expect_error([&] { load_npy_dataset(images, write(d / "y2.npy", labels_of(4, 2), {2, 2})); }, {"y2.npy", "1-D"});
  expect_error([&] { load_npy_dataset(images, write(d / "yneg.npy", std::vector<std::int64_t>{0, 1, -1, 0}, {4})); },
               {"yneg.npy", "out of range", "-1"});
  expect_error([&] { load_npy_dataset(images, write(d / "ybig.npy", std::vector<std::int64_t>{0, 1, 5, 0}, {4}), 3); },
               {"ybig.npy", "[0, 2]", "5"});
  expect_error([&] { load_npy_dataset(images, write(d / "yone.npy", std::vector<std::int64_t>(4, 0), {4})); }, {"yone.npy", "2 classes"});
  fs::remove_all(d);
}

namespace {
// CIFAR-10 records: label i % 10, pixel bytes (i + channel·7 + q) % 256.
fs::path write_cifar(const fs::path& p, int records, int first, std::size_t truncate_by = 0) {
  std::string b;
  for (int i = first; i < first + records; ++i) {
    b.push_back(static_cast<char>(i % 10));
    for (int ch = 0; ch < 3; ++ch)
      for (int q = 0; q < 1024; ++q) b.push_back(static_cast<char>((i + ch * 7 + q) % 256));
  }
  b.resize(b.size() - truncate_by);
  std::ofstream(p, std::ios::binary) << b;
  return p;
}
}  // namespace

TEST(Cifar10Bin, RecordsBecomeRgbPlanesAndSplitsKeepTheTestBatch) {
  const fs::path d = fresh_dir("cifar");
  write_cifar(d / "data_batch_1.bin", 30, 0);
  write_cifar(d / "data_batch_2.bin", 20, 30);
  write_cifar(d / "test_batch.bin", 12, 100);
  const Dataset all = load_cifar10_bin(cifar10_train_files(d));
  ASSERT_EQ(all.size(), 50u);
  EXPECT_EQ(all.shape, (Shape{3, 32, 32}));
  EXPECT_EQ(all.y[37], 7);
  // Record 37, channel G (1), pixel (row 2, col 5): byte (37 + 7 + 2·32 + 5) % 256.
  EXPECT_FLOAT_EQ(all.x(37, 1024 + 2 * 32 + 5), static_cast<float>((37 + 7 + 69) % 256) / 255.0f);

  DataOptions o;
  o.name = "cifar10-bin";
  o.dir = d.string();
  o.val_size = 5;
  o.color = "rgb";
  const Splits s = load_splits(o);
  EXPECT_EQ(s.test.size(), 12u);
  EXPECT_EQ(s.val.size(), 5u);
  EXPECT_EQ(s.train.size(), 45u);
  EXPECT_EQ(s.train.shape.c, 3);
  o.color = "luminance";
  const Splits g = load_splits(o);
  ASSERT_EQ(g.test.shape, (Shape{1, 32, 32}));
  // Luminance = 0.299 R + 0.587 G + 0.114 B of the same pixel.
  const auto& t = s.test.x;
  EXPECT_NEAR(g.test.x(3, 40), 0.299f * t(3, 40) + 0.587f * t(3, 1024 + 40) + 0.114f * t(3, 2048 + 40), 1e-6f);
  fs::remove_all(d);
}

TEST(Cifar10Bin, TruncatedRecordsBadLabelsAndMissingFilesAreRefused) {
  const fs::path d = fresh_dir("cifar_broken");
  expect_error([&] { cifar10_train_files(d / "nowhere"); }, {"nowhere", "not found"});
  expect_error([&] { cifar10_train_files(d); }, {"data_batch_*.bin"});
  const auto cut = write_cifar(d / "data_batch_1.bin", 3, 0, 100);
  expect_error([&] { load_cifar10_bin({cut}); }, {"data_batch_1.bin", "truncated", "9119 bytes", "record 2 is incomplete"});
  std::string bad = "\x0b" + std::string(3072, '\0');
  std::ofstream(d / "bad.bin", std::ios::binary) << bad;
  expect_error([&] { load_cifar10_bin({d / "bad.bin"}); }, {"bad.bin", "label out of range", "record 0", "(11)"});
  write_cifar(d / "data_batch_1.bin", 20, 0);
  DataOptions o;
  o.name = "cifar10-bin";
  o.dir = d.string();
  expect_error([&] { load_splits(o); }, {"test_batch.bin", "not found"});
  fs::remove_all(d);
}

TEST(ImageFolder, SortedClassFoldersGiveLabelsAndNames) {
  const fs::path d = fresh_dir("folder");
  // The injected decoder reads a tiny text stand-in: "rows cols channels value".
  const ImageDecoder decode = [](const fs::path& p) {
    std::ifstream in(p);
    DecodedImage im;
    int v = 0;
    if (!(in >> im.rows >> im.cols >> im.channels >> v)) throw std::runtime_error("not an image");
    im.pixels.assign(static_cast<std::size_t>(im.rows * im.cols * im.channels), static_cast<std::uint8_t>(v));
    if (im.channels == 3) im.pixels[0] = 255;  // R of pixel (0, 0)
    return im;
  };
  auto put = [&](const std::string& cls, const std::string& f, const std::string& text) {
    fs::create_directories(d / cls);
    std::ofstream(d / cls / f) << text;
  };
  put("zebra", "a.png", "4 4 1 51");
  put("cat", "b.png", "4 4 3 102");
  put("cat", "notes.txt", "ignored");
  put("dog", "c.png", "4 4 1 0");
  put("dog", "d.png", "4 4 1 255");
  const Dataset s = load_image_folder(d, decode);
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"cat", "dog", "zebra"}));
  EXPECT_EQ(s.y, (std::vector<int>{0, 1, 1, 2}));
  EXPECT_EQ(s.shape, (Shape{3, 4, 4}));  // one RGB image makes the set RGB; grey ones repeat in R, G, B
  EXPECT_FLOAT_EQ(s.x(0, 0), 1.0f);
  EXPECT_FLOAT_EQ(s.x(0, 16), 102 / 255.0f);
  EXPECT_FLOAT_EQ(s.x(3, 2 * 16 + 5), 51 / 255.0f);

  expect_error([&] { load_image_folder(d, {}); }, {"png-folder", "decoder"});
  put("dog", "e.png", "5 4 1 9");
  expect_error([&] { load_image_folder(d, decode); }, {"e.png", "5x4", "4x4", "one size"});
  fs::remove(d / "dog" / "e.png");
  put("dog", "f.png", "garbage");
  expect_error([&] { load_image_folder(d, decode); }, {"f.png", "cannot decode", "not an image"});
  fs::remove(d / "dog" / "f.png");
  fs::create_directories(d / "empty");
  expect_error([&] { load_image_folder(d, decode); }, {"empty", "no .png"});
  expect_error([&] { load_image_folder(d / "zebra", decode); }, {"zebra", "at least 2"});
  fs::remove_all(d);
}

TEST(FileSplits, SeededSplitsTestFilesAndOptionRules) {
  const fs::path d = fresh_dir("splits");
  std::vector<std::uint8_t> im(100 * 4 * 4);
  for (std::size_t i = 0; i < im.size(); ++i) im[i] = static_cast<std::uint8_t>(i / 16);  // image i holds level i
  write(d / "x.npy", im, {100, 4, 4});
  write(d / "y.npy", labels_of(100, 4), {100});
  DataOptions o;
  o.name = "npy";
  o.images = (d / "x.npy").string();
  o.labels = (d / "y.npy").string();
  const Splits a = load_splits(o), b = load_splits(o);
  EXPECT_EQ(a.test.size(), 20u);  // 20 % held out
  EXPECT_EQ(a.val.size(), 8u);    // 10 % of the rest
  EXPECT_EQ(a.train.size(), 72u);
  EXPECT_EQ(a.test.y, b.test.y);
  EXPECT_TRUE(a.train.x.isApprox(b.train.x));
  std::set<int> seen;  // every image in exactly one split
  for (const Dataset* s : {&a.train, &a.val, &a.test})
    for (Eigen::Index i = 0; i < s->x.rows(); ++i) seen.insert(static_cast<int>(std::lround(s->x(i, 0) * 255)));
  EXPECT_EQ(seen.size(), 100u);

  o.test_images = o.images;
  o.test_labels = o.labels;
  o.train_limit = 30;
  const Splits c = load_splits(o);
  EXPECT_EQ(c.test.size(), 100u);
  EXPECT_EQ(c.train.size(), 30u);
  write(d / "xt.npy", std::vector<std::uint8_t>(5 * 16 * 3), {5, 4, 4, 3});
  write(d / "yt.npy", labels_of(5, 4), {5});
  o.test_images = (d / "xt.npy").string();
  o.test_labels = (d / "yt.npy").string();
  expect_error([&] { load_splits(o); }, {"xt.npy", "3x4x4", "1x4x4", "must match"});
  o.test_images.clear();
  o.test_labels.clear();
  o.test_size = 100;
  expect_error([&] { load_splits(o); }, {"x.npy", "no training image", "100 test"});

  DataOptions v;
  v.name = "npy";
  EXPECT_NE(v.validate().find("data.images and data.labels"), std::string::npos);
  v.images = "x.npy";
  v.labels = "y.npy";
  v.test_images = "t.npy";
  EXPECT_NE(v.validate().find("both or neither"), std::string::npos);
  v.test_images.clear();
  EXPECT_EQ(v.validate(), "");
  v.color = "grey";
  EXPECT_NE(v.validate().find("data.color"), std::string::npos);
  v.color = "rgb";
  v.dir = "somewhere";
  EXPECT_NE(v.validate().find("data.dir applies"), std::string::npos);
  DataOptions c10;
  c10.name = "cifar10-bin";
  EXPECT_NE(c10.validate().find("data.dir (the dataset folder) is required"), std::string::npos);
  DataOptions m;
  m.name = "mnist";
  m.images = "x.npy";
  EXPECT_NE(m.validate().find("file sources"), std::string::npos);
  m.images.clear();
  m.name = "imagenet";
  EXPECT_NE(m.validate().find("\"png-folder\", got \"imagenet\""), std::string::npos);
  fs::remove_all(d);
}
