#include "hilo/controller/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include "hilo/distill/data.hpp"
#include "hilo/io/figures.hpp"
#include "hilo/io/options_json.hpp"

namespace hilo::controller {

namespace {
ImageSet to_levels(const distill::Dataset& d) {
  // The learning core keeps images as floats v / 255; the devices need the 8-bit levels back, which
  // round(x · 255) recovers exactly (the float error of v / 255 is far below 0.5 / 255).
  ImageSet s;
  s.count = d.size();
  s.rows = static_cast<std::size_t>(d.shape.h);
  s.cols = static_cast<std::size_t>(d.shape.w);
  s.images.resize(s.count * s.rows * s.cols);
  const float* x = d.x.data();
  for (std::size_t i = 0; i < s.images.size(); ++i) s.images[i] = static_cast<std::uint8_t>(std::lround(x[i] * 255.0f));
  s.labels.resize(s.count);
  for (std::size_t i = 0; i < s.count; ++i) s.labels[i] = static_cast<std::uint8_t>(d.y[i]);
  return s;
}
}  // namespace

distill::ImageDecoder image_decoder() { return &io::read_image8_pixels; }

ImageSet read_file_split(const distill::DataOptions& o, const std::string& split) {
  if (split != "train" && split != "test") throw DatasetError("dataset split must be 'train' or 'test', got '" + split + "'");
  if (o.color != "luminance")
    throw DatasetError("dataset color must be \"luminance\": the input SLM shows one intensity channel");
  const distill::Splits s = distill::load_splits(o, image_decoder());
  const distill::Dataset& d = split == "train" ? s.train : s.test;
  if (d.num_classes > 256) throw DatasetError("dataset has " + std::to_string(d.num_classes) + " classes; captures store labels as uint8 (at most 256)");
  return to_levels(d);
}

ImageSet read_idx_split(const std::filesystem::path& dir, const std::string& split) {
  if (split != "train" && split != "test") throw DatasetError("dataset split must be 'train' or 'test', got '" + split + "'");
  const std::string stem = split == "train" ? "train" : "t10k";
  const distill::Dataset d =
      distill::load_idx_gz(dir / (stem + "-images-idx3-ubyte.gz"), dir / (stem + "-labels-idx1-ubyte.gz"));
  return to_levels(d);
}

bool DatasetLibrary::knows(const std::string& name) const {
  if (dirs_.count(name) != 0) return true;
  std::lock_guard lk(cache_mu_);
  return files_.count(name) != 0;
}

std::string DatasetLibrary::add_files(const distill::DataOptions& o) {
  std::string key = "files:" + nlohmann::json(o).dump();
  std::lock_guard lk(cache_mu_);
  files_.emplace(key, o);
  return key;
}

std::string DatasetLibrary::key_of(const nlohmann::json& dataset) {
  if (dataset.is_string()) return dataset.get<std::string>();
  try {
    return add_files(io::read_valid_options<distill::DataOptions>(dataset, "dataset"));
  } catch (const std::exception& e) {
    throw DatasetError(std::string("stored dataset options: ") + e.what());
  }
}

std::vector<std::string> DatasetLibrary::names() const {
  std::vector<std::string> out;
  for (const auto& [k, _] : dirs_) out.push_back(k);
  return out;
}

std::shared_ptr<const ImageSet> DatasetLibrary::get(const std::string& name, const std::string& split) {
  auto it = dirs_.find(name);
  std::optional<distill::DataOptions> files;
  if (it == dirs_.end()) {
    std::lock_guard lk(cache_mu_);
    const auto f = files_.find(name);
    if (f == files_.end()) throw DatasetError("unknown dataset '" + name + "'");
    files = f->second;
  }
  if (auto c = cached(name, split)) return c;
  std::lock_guard load(load_mu_);
  if (auto c = cached(name, split)) return c;  // loaded by the caller we waited for
  auto s = std::make_shared<const ImageSet>(files ? read_file_split(*files, split) : reader_(it->second, split));
  std::lock_guard lk(cache_mu_);
  cache_[name + "/" + split] = s;
  return s;
}

std::shared_ptr<const ImageSet> DatasetLibrary::cached(const std::string& name, const std::string& split) const {
  std::lock_guard lk(cache_mu_);
  const auto c = cache_.find(name + "/" + split);
  return c == cache_.end() ? nullptr : c->second;
}

}  // namespace hilo::controller
