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
#include <functional>
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

// Reads one split of the dataset in `dir` (read_idx_split; tests inject slow or failing readers).
using SplitReader = std::function<ImageSet(const std::filesystem::path& dir, const std::string& split)>;

// Known datasets by name ("fashion-mnist" → its directory); loads each split once and keeps it.
// Thread-safe. add() before sharing the library between threads.
// A first load takes 1–2 s (Fashion-MNIST train): callers on the daemon's I/O thread use cached(),
// which never reads files nor waits for a load, and leave get() to a job's worker.
class DatasetLibrary {
 public:
  explicit DatasetLibrary(SplitReader reader = read_idx_split) : reader_(std::move(reader)) {}
  void add(std::string name, std::filesystem::path dir) { dirs_[std::move(name)] = std::move(dir); }
  bool knows(const std::string& name) const { return dirs_.count(name) != 0; }
  std::vector<std::string> names() const;
  // Loads the split on first use (one load at a time; a second caller of the same split waits for it).
  // Throws DatasetError (unknown name, unreadable or malformed files).
  std::shared_ptr<const ImageSet> get(const std::string& name, const std::string& split);
  // The split if it is loaded already, else null. Does not block on a load in progress.
  std::shared_ptr<const ImageSet> cached(const std::string& name, const std::string& split) const;

 private:
  SplitReader reader_;
  std::map<std::string, std::filesystem::path> dirs_;
  std::mutex load_mu_;           // held for a whole load
  mutable std::mutex cache_mu_;  // held only to read or insert into cache_
  std::map<std::string, std::shared_ptr<const ImageSet>> cache_;
};

}  // namespace hilo::controller
