#pragma once
// Internal to the capture job: the pieces capture.cpp (fresh captures, the show + grab loop) and
// capture_resume.cpp (continuing a run) share. Contracts as in hilo/controller/capture.hpp.
#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>
#include <opencv2/core/mat.hpp>

#include "hilo/controller/capture.hpp"
#include "hilo/controller/storage.hpp"

namespace hilo::controller::capture_detail {

// The run manifest's "placement" and "devices" sections; a resumed run must find them unchanged.
nlohmann::json placement_json(const drivers::Slm& slm, int scale);
nlohmann::json devices_json(const drivers::Slm& slm, const drivers::Camera& cam);
// opt.scale, or the largest that fits when it is 0.
int resolved_scale(const CaptureInputs& in, const CaptureOptions& opt, const drivers::Slm& slm);
// Input k of the capture (the set's image in.start + k): its first byte, and as a CV_8UC1 view (no copy).
const std::uint8_t* image_of(const CaptureInputs& in, std::size_t k);
cv::Mat input_mat(const CaptureInputs& in, std::size_t k);

// The show + grab loop over inputs [w.records(), in.count) into `w`; base_stats start the job's stats.
JobOutcome capture_loop(const CaptureInputs& in, const CaptureOptions& opt, Devices& devices, RunWriter& w, int scale,
                        JobControl& ctl, const std::function<double()>& monotonic_s, nlohmann::json base_stats);
// A new run in run_dir from manifest_base, then capture_loop.
JobOutcome fresh_capture(const CaptureInputs& in, const CaptureOptions& opt, Devices& devices,
                         const std::filesystem::path& run_dir, nlohmann::json manifest_base, JobControl& ctl,
                         const std::function<double()>& monotonic_s);

}  // namespace hilo::controller::capture_detail
