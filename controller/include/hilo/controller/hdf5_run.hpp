#pragma once
// HDF5 run files: one NeXus-style file `run.h5` holding a run's arrays and metadata (docs/storage.md,
// "HDF5 run file"), written live by a capture in SWMR mode or exported from a run's .npy files.
//
// Layout (contract shared with the Python client):
//   /                 NX_class=NXroot, creator="hilod <version>", file_name, default="entry"
//   /entry            NX_class=NXentry, default="data", run_id, kind, state, start_time (ISO 8601 UTC),
//                     manifest (the run's manifest.json as a JSON string, as last written)
//   /entry/data       NX_class=NXdata, signal="frames"; one dataset per array (.npy stem), same dtype
//                     and shape, first axis = record (unlimited), one record per chunk; attrs units,
//                     long_name
//   /entry/instrument NX_class=NXinstrument; camera (NXdetector), input_slm and element_slm
//                     (NXcollection) with the device descriptions the manifest holds, when it holds them
//   /entry/calibration NX_class=NXcollection, when the manifest has a "calibration" object
// Strings are variable-length UTF-8 (h5py reads them as str); numbers are float64 or int64.
//
// SWMR: the file is created with the latest file format. The first append() creates the datasets and
// switches the file to SWMR write mode; from then on another process may open it with SWMR read and
// refresh the datasets. Each append() extends and writes every array other than "frames" first and
// "frames" last, flushing each, so a reader that sees n frames sees at least n records of every other
// array, and never a partial record. SWMR covers dataset data only: metadata written after the first
// append() (update_metadata(), finish()) reaches the file, but a reader that opened it earlier may read
// stale or unreadable attributes until it opens the file again.
//
// Errors: every HDF5 failure throws Hdf5Error whose message names the file, the operation and HDF5's
// own error stack (innermost cause last); HDF5's automatic printing of errors to stderr is turned off.
// Not thread-safe: one thread at a time per writer (libhdf5 serial serialises the library anyway).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/controller/storage.hpp"

namespace hilo::controller {

class Hdf5Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "hilod <project version>", the creator attribute of files hilo writes.
std::string hdf5_creator();

class Hdf5RunWriter {
 public:
  // Creates `path` (replacing any file there) and writes the metadata of `manifest` (a run manifest,
  // docs/storage.md; missing keys are left out). No dataset exists until the first append().
  static Hdf5RunWriter create(const std::filesystem::path& path, const nlohmann::json& manifest);

  // Appends `records` records of each array (RunWriter::Array: dtype "|u1", "<u1", "<u2", "<u4",
  // "<i4", "<i8", "<f4" or "<f8"; shape[0] == records). The first call defines the datasets (names,
  // dtypes, per-record shapes) and starts SWMR writing; later calls must bring exactly those arrays,
  // else Hdf5Error and nothing is written. records == 0 does nothing.
  void append(const std::vector<RunWriter::Array>& arrays, std::size_t records);

  // Rewrites the metadata from `manifest` (attributes, instrument, calibration) and flushes. Best
  // called before the first append(), while no SWMR reader can have the file open (see SWMR above).
  void update_metadata(const nlohmann::json& manifest);

  // update_metadata(manifest), then closes the file and fsyncs it. The writer holds no file afterwards.
  // An SWMR reader may keep the file open meanwhile (it reopens to see the final metadata).
  void finish(const nlohmann::json& manifest);

  std::size_t records() const { return records_; }
  bool swmr() const { return swmr_; }  // true from the first append() until finish()
  const std::filesystem::path& path() const { return path_; }

  Hdf5RunWriter(Hdf5RunWriter&& o) noexcept;
  Hdf5RunWriter& operator=(Hdf5RunWriter&& o) noexcept;
  Hdf5RunWriter(const Hdf5RunWriter&) = delete;
  Hdf5RunWriter& operator=(const Hdf5RunWriter&) = delete;
  ~Hdf5RunWriter();  // closes the file without rewriting the metadata

 private:
  Hdf5RunWriter() = default;
  void close() noexcept;
  struct Dataset {
    std::string name, dtype;
    std::vector<std::size_t> record_shape;
    std::int64_t id = -1;  // hid_t
  };
  std::filesystem::path path_;
  std::int64_t file_ = -1;  // hid_t
  std::vector<Dataset> datasets_;  // in write order: "frames" last
  std::size_t records_ = 0;
  bool swmr_ = false;
};

// Creates `path` and writes every record the run directory holds (its consolidated arrays, or the
// chunks its manifest lists) into it, in SWMR mode, and returns the open writer: a capture continues
// appending to it, an export calls finish(). Throws Hdf5Error, or StorageError when an array of the
// run cannot be read.
Hdf5RunWriter hdf5_from_run(const std::filesystem::path& path, const std::filesystem::path& run_dir,
                            const nlohmann::json& manifest);

}  // namespace hilo::controller
