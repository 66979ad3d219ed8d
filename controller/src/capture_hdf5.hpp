#pragma once
// Internal to the capture job (capture.cpp): the run's HDF5 copy while the .npy run is written.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/controller/hdf5_run.hpp"
#include "hilo/controller/storage.hpp"

namespace hilo::controller {

// The run's HDF5 copy during a capture (CaptureOptions::hdf5). The first failure ends the copy, never
// the capture: the .npy run is the record, status() says how far the copy got and why it stopped.
class Hdf5Copy {
 public:
  // Rebuilds run.h5 from every record `w` already holds (none for a new run).
  Hdf5Copy(bool enabled, const RunWriter& w) : enabled_(enabled) {
    if (!enabled_) return;
    attempt([&] { file_.emplace(hdf5_from_run(w.dir() / "run.h5", w.dir(), w.manifest())); });
  }
  // `manifest`: the run's manifest when this is the first chunk of the file (it now knows the frame
  // format); written before the append starts SWMR mode, so early readers see it.
  void append(const std::vector<RunWriter::Array>& arrays, std::size_t n, const nlohmann::json* manifest) {
    if (!file_) return;
    attempt([&] {
      if (manifest && !file_->swmr()) file_->update_metadata(*manifest);
      file_->append(arrays, n);
    });
  }
  // Refreshes the file's metadata from the run's final manifest and closes it.
  void finish(const nlohmann::json& manifest) {
    if (file_) attempt([&] { file_->finish(manifest); });
    file_.reset();
  }
  bool enabled() const { return enabled_; }
  bool complete() const { return error_.empty(); }
  nlohmann::json status() const { return {{"file", "run.h5"}, {"complete", complete()}, {"records", records_}, {"error", error_}}; }

 private:
  template <typename F>
  void attempt(F&& f) {
    try {
      f();
      records_ = file_ ? file_->records() : records_;
    } catch (const std::exception& e) {
      error_ = e.what();
      file_.reset();
    }
  }
  bool enabled_;
  std::optional<Hdf5RunWriter> file_;
  std::string error_;
  std::size_t records_ = 0;
};

}  // namespace hilo::controller
