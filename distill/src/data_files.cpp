// A lab's own datasets: .npy pairs, CIFAR-10 binary batches, folders of PNG images per class
// (data.hpp), and the splits of these sources.
#include "data_files.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <numeric>
#include <random>

#include "hilo/sim/npy.hpp"

namespace hilo::distill {
namespace fs = std::filesystem;

namespace {

sim::NpyArray read_npy_file(const fs::path& p, const std::string& what) {
  if (!fs::exists(p)) throw DatasetError(what + " file not found: " + p.string());
  try {
    return sim::read_npy(p);
  } catch (const std::exception& e) {
    throw DatasetError(what + " file " + p.string() + " is not a readable .npy file: " + e.what());
  }
}

std::string shape_text(const std::vector<std::size_t>& s) {
  std::string t = "(";
  for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + (s.size() == 1 ? ",)" : ")");
}

template <typename T>
T element(const sim::NpyArray& a, std::size_t i) {
  T v;
  std::memcpy(&v, a.bytes.data() + i * sizeof(T), sizeof(T));
  return v;
}

// Labels: any integer dtype, 1-D of length n, values in [0, classes) (classes 0: largest + 1).
std::vector<int> read_labels(const sim::NpyArray& a, const fs::path& p, std::size_t n, const fs::path& images,
                             int& classes) {
  using sim::Dtype;
  if (a.dtype == Dtype::f4 || a.dtype == Dtype::f8 || a.dtype == Dtype::c8 || a.dtype == Dtype::c16)
    throw DatasetError(p.string() + ": labels must have an integer dtype (uint8/16/32, int32/64), got " +
                       sim::dtype_descr(a.dtype));
  if (a.shape.size() != 1) throw DatasetError(p.string() + ": labels must be 1-D (N,), got shape " + shape_text(a.shape));
  if (a.shape[0] != n)
    throw DatasetError(p.string() + ": " + std::to_string(a.shape[0]) + " labels for " + std::to_string(n) +
                       " images in " + images.string() + " (the counts must match)");
  std::vector<long long> v(n);
  for (std::size_t i = 0; i < n; ++i) switch (a.dtype) {
      case Dtype::u1: v[i] = element<std::uint8_t>(a, i); break;
      case Dtype::u2: v[i] = element<std::uint16_t>(a, i); break;
      case Dtype::u4: v[i] = element<std::uint32_t>(a, i); break;
      case Dtype::i4: v[i] = element<std::int32_t>(a, i); break;
      default: v[i] = element<std::int64_t>(a, i); break;
    }
  const long long lo = n ? *std::min_element(v.begin(), v.end()) : 0, hi = n ? *std::max_element(v.begin(), v.end()) : 0;
  if (classes == 0) classes = static_cast<int>(std::min<long long>(hi + 1, 1 << 20));
  if (lo < 0 || hi >= classes)
    throw DatasetError(p.string() + ": label out of range: labels must be in [0, " + std::to_string(classes - 1) +
                       "], found " + std::to_string(lo < 0 ? lo : hi));
  if (classes < 2) throw DatasetError(p.string() + ": at least 2 classes are needed, the labels name " + std::to_string(classes));
  return {v.begin(), v.end()};
}

}  // namespace

Dataset load_npy_dataset(const fs::path& images, const fs::path& labels, int classes) {
  using sim::Dtype;
  const sim::NpyArray im = read_npy_file(images, "images"), lb = read_npy_file(labels, "labels");
  if (im.dtype != Dtype::u1 && im.dtype != Dtype::f4 && im.dtype != Dtype::f8)
    throw DatasetError(images.string() + ": images must be uint8 (0-255) or float32/float64 (0-1), got dtype " +
                       sim::dtype_descr(im.dtype));
  const auto& s = im.shape;
  // Layout → (n, c, h, w) and whether the channel is the last axis.
  std::size_t n = 0, c = 1, h = 0, w = 0;
  bool hwc = false;
  if (s.size() == 3) {
    n = s[0], h = s[1], w = s[2];
  } else if (s.size() == 4 && s[3] == 3) {
    n = s[0], h = s[1], w = s[2], c = 3, hwc = true;
  } else if (s.size() == 4 && s[1] == 3) {
    n = s[0], c = 3, h = s[2], w = s[3];
  } else {
    throw DatasetError(images.string() + ": images must be N x H x W (grey), N x H x W x 3 or N x 3 x H x W (RGB), got shape " +
                       shape_text(s));
  }
  if (n == 0 || h == 0 || w == 0) throw DatasetError(images.string() + ": no images (shape " + shape_text(s) + ")");
  Dataset d;
  d.shape = {static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)};
  d.y = read_labels(lb, labels, n, images, classes);
  d.num_classes = classes;
  const std::size_t per = c * h * w;
  d.x.resize(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(per));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t q = 0; q < per; ++q) {
      // Destination q = ch·h·w + y·w + x; the source index follows the file's layout.
      const std::size_t ch = q / (h * w), yx = q % (h * w);
      const std::size_t src = i * per + (hwc ? yx * 3 + ch : q);
      double v = im.dtype == Dtype::u1 ? element<std::uint8_t>(im, src) / 255.0
                 : im.dtype == Dtype::f4 ? double(element<float>(im, src))
                                         : element<double>(im, src);
      if (im.dtype != Dtype::u1 && !(v >= 0.0 && v <= 1.0))
        throw DatasetError(images.string() + ": float images must lie in [0, 1], image " + std::to_string(i) + " holds " +
                           std::to_string(v));
      d.x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(q)) = static_cast<float>(v);
    }
  return d;
}

Dataset load_cifar10_bin(const std::vector<fs::path>& files) {
  constexpr std::size_t kRecord = 1 + 3 * 32 * 32;
  std::vector<std::vector<unsigned char>> blobs;
  std::size_t n = 0;
  for (const auto& p : files) {
    std::ifstream in(p, std::ios::binary);
    if (!fs::exists(p) || !in) throw DatasetError("CIFAR-10 batch file not found or unreadable: " + p.string());
    blobs.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    const std::size_t size = blobs.back().size();
    if (size == 0 || size % kRecord != 0)
      throw DatasetError(p.string() + ": truncated CIFAR-10 record: " + std::to_string(size) + " bytes is not a whole number of " +
                         std::to_string(kRecord) + "-byte records (1 label + 3072 image bytes); record " +
                         std::to_string(size / kRecord) + " is incomplete");
    n += size / kRecord;
  }
  Dataset d;
  d.shape = {3, 32, 32};
  d.x.resize(static_cast<Eigen::Index>(n), 3072);
  d.y.resize(n);
  std::size_t row = 0;
  for (std::size_t f = 0; f < blobs.size(); ++f)
    for (std::size_t r = 0; r < blobs[f].size() / kRecord; ++r, ++row) {
      const unsigned char* rec = blobs[f].data() + r * kRecord;
      if (rec[0] > 9)
        throw DatasetError(files[f].string() + ": label out of range 0..9 in record " + std::to_string(r) + " (" +
                           std::to_string(rec[0]) + ")");
      d.y[row] = rec[0];
      // The record's R, G, B planes are already the c·h·w order of a Dataset row.
      for (int q = 0; q < 3072; ++q) d.x(static_cast<Eigen::Index>(row), q) = static_cast<float>(rec[1 + q]) / 255.0f;
    }
  return d;
}

std::vector<fs::path> cifar10_train_files(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw DatasetError("CIFAR-10 folder not found: " + dir.string());
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.rfind("data_batch_", 0) == 0 && e.path().extension() == ".bin") out.push_back(e.path());
  }
  if (out.empty()) throw DatasetError(dir.string() + ": no CIFAR-10 training batch (data_batch_*.bin)");
  std::sort(out.begin(), out.end());
  return out;
}

Dataset load_image_folder(const fs::path& dir, const ImageDecoder& decode) {
  if (!decode)
    throw DatasetError("data.name \"png-folder\" needs an image decoder, which this program does not provide (hilod, hilo-pipeline and hilo-train do)");
  if (!fs::is_directory(dir)) throw DatasetError("image folder not found: " + dir.string());
  std::vector<std::string> classes;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) classes.push_back(e.path().filename().string());
  std::sort(classes.begin(), classes.end());
  if (classes.size() < 2)
    throw DatasetError(dir.string() + ": needs one sub-folder per class (at least 2), found " + std::to_string(classes.size()));
  struct Item {
    DecodedImage im;
    int label;
    fs::path path;
  };
  std::vector<Item> items;
  for (std::size_t k = 0; k < classes.size(); ++k) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir / classes[k]))
      if (e.is_regular_file() && e.path().extension() == ".png") files.push_back(e.path());
    if (files.empty()) throw DatasetError((dir / classes[k]).string() + ": class folder holds no .png image");
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      DecodedImage im;
      try {
        im = decode(f);
      } catch (const std::exception& e) {
        throw DatasetError(f.string() + ": cannot decode the image: " + e.what());
      }
      if (im.channels != 1 && im.channels != 3)
        throw DatasetError(f.string() + ": images must be grey or RGB, got " + std::to_string(im.channels) + " channels");
      if (!items.empty() && (im.rows != items.front().im.rows || im.cols != items.front().im.cols))
        throw DatasetError(f.string() + ": image is " + std::to_string(im.rows) + "x" + std::to_string(im.cols) + ", but " +
                           items.front().path.string() + " is " + std::to_string(items.front().im.rows) + "x" +
                           std::to_string(items.front().im.cols) + " (all images must have one size)");
      items.push_back({std::move(im), static_cast<int>(k), f});
    }
  }
  const bool rgb = std::any_of(items.begin(), items.end(), [](const Item& i) { return i.im.channels == 3; });
  const int c = rgb ? 3 : 1, h = items.front().im.rows, w = items.front().im.cols;
  Dataset d;
  d.shape = {c, h, w};
  d.num_classes = static_cast<int>(classes.size());
  d.class_names = classes;
  d.x.resize(static_cast<Eigen::Index>(items.size()), c * h * w);
  d.y.resize(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& im = items[i].im;
    d.y[i] = items[i].label;
    for (int ch = 0; ch < c; ++ch)
      for (int p = 0; p < h * w; ++p) {
        const int src = p * im.channels + (im.channels == 3 ? ch : 0);  // grey in an RGB set: R = G = B
        d.x(static_cast<Eigen::Index>(i), ch * h * w + p) = static_cast<float>(im.pixels[static_cast<std::size_t>(src)]) / 255.0f;
      }
  }
  return d;
}

Dataset to_luminance(const Dataset& d) {
  if (d.shape.c == 1) return d;
  if (d.shape.c != 3) throw DatasetError("luminance conversion needs 1 or 3 channels, got " + std::to_string(d.shape.c));
  const Eigen::Index hw = d.shape.h * d.shape.w;
  Dataset o = d;
  o.shape.c = 1;
  o.x = 0.299f * d.x.leftCols(hw) + 0.587f * d.x.middleCols(hw, hw) + 0.114f * d.x.rightCols(hw);
  return o;
}

namespace {

// Seeded shuffle of `all` into test (n_test, may be 0) / val / train (train_limit applied).
Splits shuffle_split(const Dataset& all, int n_test, int val_size, const DataOptions& o, const std::string& what) {
  std::mt19937_64 rng(o.split_seed);
  std::vector<int> idx(all.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::shuffle(idx.begin(), idx.end(), rng);
  const int n = static_cast<int>(all.size());
  const int nv = val_size >= 0 ? val_size : (n - n_test) / 10;
  if (n_test + nv >= n)
    throw DatasetError(what + ": " + std::to_string(n) + " images leave no training image after " + std::to_string(n_test) +
                       " test and " + std::to_string(nv) + " validation images (data.test_size, data.val_size)");
  Splits s;
  s.test = take(all, {idx.begin(), idx.begin() + n_test});
  s.val = take(all, {idx.begin() + n_test, idx.begin() + n_test + nv});
  std::vector<int> tr(idx.begin() + n_test + nv, idx.end());
  if (o.train_limit > 0 && static_cast<std::size_t>(o.train_limit) < tr.size()) tr.resize(static_cast<std::size_t>(o.train_limit));
  s.train = take(all, tr);
  return s;
}

int held_out(const DataOptions& o, std::size_t n) { return o.test_size >= 0 ? o.test_size : static_cast<int>(n / 5); }

}  // namespace

Splits load_file_splits(const DataOptions& o, const ImageDecoder& decode) {
  Splits s;
  if (o.name == "cifar10-bin") {
    const fs::path dir = o.dir;
    s = shuffle_split(load_cifar10_bin(cifar10_train_files(dir)), 0, o.val_size, o, dir.string());
    s.test = load_cifar10_bin({dir / "test_batch.bin"});
  } else if (o.name == "npy" && !o.test_images.empty()) {
    const Dataset train = load_npy_dataset(o.images, o.labels, o.classes);
    Dataset test = load_npy_dataset(o.test_images, o.test_labels, train.num_classes);
    if (!(test.shape == train.shape))
      throw DatasetError(o.test_images + ": test images are " + std::to_string(test.shape.c) + "x" + std::to_string(test.shape.h) +
                         "x" + std::to_string(test.shape.w) + ", training images " + std::to_string(train.shape.c) + "x" +
                         std::to_string(train.shape.h) + "x" + std::to_string(train.shape.w) + " (they must match)");
    s = shuffle_split(train, 0, o.val_size, o, o.images);
    s.test = std::move(test);
  } else {
    const Dataset all = o.name == "npy" ? load_npy_dataset(o.images, o.labels, o.classes) : load_image_folder(o.dir, decode);
    const std::string what = o.name == "npy" ? o.images : o.dir;
    s = shuffle_split(all, held_out(o, all.size()), o.val_size, o, what);
    if (s.test.size() == 0) throw DatasetError(what + ": data.test_size 0 leaves no test image (give test files or a size >= 1)");
  }
  if (o.color == "luminance") {
    s.train = to_luminance(s.train);
    s.val = to_luminance(s.val);
    s.test = to_luminance(s.test);
  }
  return s;
}

}  // namespace hilo::distill
