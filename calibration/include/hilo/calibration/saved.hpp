#pragma once
// A bench calibration as a named, saved object (DESIGN §6; STYLE "Calibrations are named objects"):
// everything an Experiment needs to measure through the bench without calibrating it again — the
// dark and flat frames, the registration pose and its fitted blur, the gain, the kernel-tile layout and
// shifts, and the drift reference taken right after the calibration — plus the numbers the report shows.
//
// On disk, a directory:
//   calibration.json   {"format": "hilo-calibration", "version": 1, "pose": {...}, "gain", "blur_px",
//                       "calibrated_at_s", "dark": {level, sigma, temporal_noise, hot_count},
//                       "flat": {brightness, pixels} | null, "layout": {...}, "tiles": [{shift, correlation,
//                       energy}], "drift_reference": {"pose", "t0_s"}, "summary": {...}}
//   dark.npy, hot.npy                    camera rows × cols, float64
//   flat.npy, flat_measured.npy          (when there is a flat correction)
//   drift_probes.npy, drift_frames.npy   n × input rows × cols, n × camera rows × cols, float64
// Every file is written atomically and calibration.json last, so a directory with calibration.json holds
// a complete calibration. Arrays round-trip bit-exactly; numpy reads every file.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "hilo/calibration/drift.hpp"
#include "hilo/calibration/features.hpp"

namespace hilo::calibration {

struct SavedCalibration {
  BenchCalibration calibration;    // as calibrated (before any drift update)
  double blur_px = 0.0;            // the registration's fitted blur (the content check's model)
  DriftReference drift_reference;  // probes and dark-corrected frames at calibration time
  double calibrated_at_s = 0.0;    // the devices' time when calibrate_bench ended
  nlohmann::json summary = nlohmann::json::object();  // the report's numbers (BenchCalibrationResult::summary)
};

// Writes `saved` into `dir` (created if needed; files there of the same names are replaced).
void save_calibration(const std::filesystem::path& dir, const SavedCalibration& saved);

// Reads a calibration saved by save_calibration. Throws std::runtime_error naming the file and the
// problem for a missing or unreadable file, a wrong format or version, or arrays whose shapes disagree.
SavedCalibration load_calibration(const std::filesystem::path& dir);

}  // namespace hilo::calibration
