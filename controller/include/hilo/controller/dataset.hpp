#pragma once
// Gzipped IDX image/label files (the MNIST family's format, e.g. Fashion-MNIST as Debian ships it in
// /usr/share/datasets/fashion-mnist): "<split>-images-idx3-ubyte.gz" and "<split>-labels-idx1-ubyte.gz"
// with split "train" or "t10k" (the protocol's "test").
//
// Reading is the learning core's loader (hilo::distill::load_idx_gz: magic numbers, counts, payload sizes
// and labels 0..9 checked); violations throw DatasetError (= hilo::distill::DatasetError) naming the file.
// The controller keeps the images as the 8-bit levels the files hold, for placement on the SLM.
//
// A lab's own datasets (distill::DataOptions of a file source: npy, cifar10-bin, png-folder) are
// registered at run time under a key (add_files) and read through distill::load_splits with the PNG
// decoder below; "train" is the training split as the pipeline sees it (after the seeded validation
// cut), "test" the test split. The input SLM shows one intensity channel, so RGB images arrive as their
// luminance (data.color "luminance"; "rgb" is refused) and are rounded to 8-bit levels.
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

// The PNG decoder the learning core's png-folder reader needs (hilo::io::read_image8 underneath).
distill::ImageDecoder image_decoder();

// Reads a split ("train" or "test") of a file-backed dataset as 8-bit levels. Throws DatasetError.
ImageSet read_file_split(const distill::DataOptions& o, const std::string& split);

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
  bool knows(const std::string& name) const;
  // Registers a file-backed dataset (paths already resolved) and returns its key, "files:" + the
  // options as JSON; the same options give the same key. Thread-safe, at any time.
  std::string add_files(const distill::DataOptions& o);
  // The key of a capture job's stored `dataset` parameter: a built-in name as it is, a file dataset's
  // options (an object, paths resolved) registered through add_files. Throws DatasetError for bad options.
  std::string key_of(const nlohmann::json& dataset);
  std::vector<std::string> names() const;
  // Loads the split on first use (one load at a time; a second caller of the same split waits for it).
  // Throws DatasetError (unknown name, unreadable or malformed files).
  std::shared_ptr<const ImageSet> get(const std::string& name, const std::string& split);
  // The split if it is loaded already, else null. Does not block on a load in progress.
  std::shared_ptr<const ImageSet> cached(const std::string& name, const std::string& split) const;

 private:
  SplitReader reader_;
  std::map<std::string, std::filesystem::path> dirs_;
  std::map<std::string, distill::DataOptions> files_;  // guarded by cache_mu_
  std::mutex load_mu_;           // held for a whole load
  mutable std::mutex cache_mu_;  // held only to read or insert into cache_ (and files_)
  std::map<std::string, std::shared_ptr<const ImageSet>> cache_;
};

}  // namespace hilo::controller
