#pragma once
// The capture job: for each input image, place it on the input SLM, grab one camera frame, and store
// input, frame (and index/label for dataset inputs) in the run directory in chunks.
//
// Placement: an h×w input is magnified by an integer factor s (nearest neighbour; default the largest
// s with s·h <= H and s·w <= W for an H×W SLM) and centred on a zero background; 8-bit input levels v
// become SLM levels round(v·(2^b − 1)/255) for bit depth b (CV_8U for b <= 8, else CV_16U).
// Frames: every frame must have the first frame's size and type (CV_8U → "|u1", CV_16U → "<u2").
// A chunk is committed (durable, listed in the manifest, catalog progress updated) every
// chunk_records frames or chunk_seconds, whichever first, and when the job stops for any reason, so a
// stop or a device failure keeps every frame grabbed before it.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "hilo/controller/dataset.hpp"
#include "hilo/controller/jobs.hpp"
#include "hilo/drivers/camera.hpp"
#include "hilo/drivers/slm.hpp"

namespace hilo::controller {

// The devices the daemon drives. `mutex` is held by whoever uses them: a job for its whole run, a
// device command for its duration (commands use try_lock and answer busy).
struct Devices {
  drivers::Slm& slm;
  drivers::Camera& camera;
  std::mutex mutex;
};

struct CaptureOptions {
  std::size_t chunk_records = 100;
  double chunk_seconds = 1.0;
  std::chrono::milliseconds grab_timeout{1000};
  int scale = 0;              // 0 = largest integer factor that fits
  std::size_t previews = 16;  // frames/inputs shown in the preview PNGs (0 = none)

  std::string validate() const;
};

// Inputs: `count` images of rows×cols uint8 starting at images[0]; labels/indices optional (empty or
// one per image). Owned through shared_ptr so a dataset's cache can be shared without copying.
struct CaptureInputs {
  std::shared_ptr<const ImageSet> set;
  std::size_t start = 0;  // first image of `set` to show
  std::size_t count = 0;
  bool has_labels = false;
};

// Builds the SLM pattern for one input (see placement above). Throws std::invalid_argument when the
// input does not fit the SLM or scale is too large.
cv::Mat place_on_slm(const std::uint8_t* image, int rows, int cols, int slm_rows, int slm_cols, int bit_depth,
                     int scale);
int fitting_scale(int rows, int cols, int slm_rows, int slm_cols);

// Runs the capture into a new run directory. Locks devices.mutex for the whole run.
JobOutcome run_capture(const CaptureInputs& in, const CaptureOptions& opt, Devices& devices,
                       const std::filesystem::path& run_dir, nlohmann::json manifest_base, JobControl& ctl,
                       const std::function<double()>& monotonic_s);

}  // namespace hilo::controller
