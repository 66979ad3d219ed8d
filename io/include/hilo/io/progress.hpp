#pragma once
// Progress and cancellation of long work, one shape in every layer: training (distill), measuring
// through the bench (calibration), the capture and the pipeline (controller).
//
// The owner of the work (a daemon job, an executable's main, a test) fills a WorkControl and passes
// it down by const reference. The work:
//   - calls report(done, total, stage) as units finish: `done` of `total` units of the named stage
//     ("train-teacher", "bench/moderate: measure"); units are the work's own (steps, frames, images);
//     report may run the owner's callback on the working thread, so it must be quick;
//   - polls stop_requested() between units and, once true, returns promptly (within one unit) in its
//     own way of saying "stopped" (History::cancelled, JobState::cancelled, a Stopped exception);
//     everything finished before stays valid.
// A default WorkControl reports nothing and never stops.
#include <cstdint>
#include <functional>
#include <stop_token>
#include <string_view>

namespace hilo::io {

struct WorkControl {
  std::function<void(std::int64_t done, std::int64_t total, std::string_view stage)> progress;
  std::stop_token stop;

  void report(std::int64_t done, std::int64_t total, std::string_view stage) const {
    if (progress) progress(done, total, stage);
  }
  bool stop_requested() const { return stop.stop_requested(); }
};

}  // namespace hilo::io
