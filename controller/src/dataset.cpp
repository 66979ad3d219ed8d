#include "hilo/controller/dataset.hpp"

#include <cmath>

#include "hilo/distill/data.hpp"

namespace hilo::controller {

ImageSet read_idx_split(const std::filesystem::path& dir, const std::string& split) {
  if (split != "train" && split != "test") throw DatasetError("dataset split must be 'train' or 'test', got '" + split + "'");
  const std::string stem = split == "train" ? "train" : "t10k";
  const distill::Dataset d =
      distill::load_idx_gz(dir / (stem + "-images-idx3-ubyte.gz"), dir / (stem + "-labels-idx1-ubyte.gz"));
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

std::vector<std::string> DatasetLibrary::names() const {
  std::vector<std::string> out;
  for (const auto& [k, _] : dirs_) out.push_back(k);
  return out;
}

std::shared_ptr<const ImageSet> DatasetLibrary::get(const std::string& name, const std::string& split) {
  auto it = dirs_.find(name);
  if (it == dirs_.end()) throw DatasetError("unknown dataset '" + name + "'");
  if (auto c = cached(name, split)) return c;
  std::lock_guard load(load_mu_);
  if (auto c = cached(name, split)) return c;  // loaded by the caller we waited for
  auto s = std::make_shared<const ImageSet>(reader_(it->second, split));
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
