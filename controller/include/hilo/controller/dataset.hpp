#pragma once
// Gzipped IDX image/label files (the MNIST family's format, e.g. Fashion-MNIST as Debian ships it in
// /usr/share/datasets/fashion-mnist): "<split>-images-idx3-ubyte.gz" and "<split>-labels-idx1-ubyte.gz"
// with split "train" or "t10k" (the protocol's "test").
//
// Reading is the learning core's loader (hilo::distill::load_idx_gz: magic numbers, counts, payload sizes
// and labels 0..9 checked); violations throw DatasetError (= hilo::distill::DatasetError) naming the file.
// The controller keeps the images as the 8-bit levels the files hold, for placement on the SLM.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "hilo/distill/data.hpp"

namespace hilo::controller {

using DatasetError = distill::DatasetError;

struct ImageSet {
  std::size_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> images;  // count × rows × cols, row-major
  std::vector<std::uint8_t> labels;  // count
};

// Reads a whole split. split: "train" or "test".
ImageSet read_idx_split(const std::filesystem::path& dir, const std::string& split);

// Known datasets by name ("fashion-mnist" → its directory); loads each split once and keeps it.
// Thread-safe.
class DatasetLibrary {
 public:
  void add(std::string name, std::filesystem::path dir) { dirs_[std::move(name)] = std::move(dir); }
  bool knows(const std::string& name) const { return dirs_.count(name) != 0; }
  std::vector<std::string> names() const;
  // Throws DatasetError (unknown name, unreadable or malformed files).
  std::shared_ptr<const ImageSet> get(const std::string& name, const std::string& split);

 private:
  std::map<std::string, std::filesystem::path> dirs_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const ImageSet>> cache_;
};

}  // namespace hilo::controller
