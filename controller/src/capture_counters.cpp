// The counters a capture keeps (frames, re-grabs, rejected frames, device retries) and their totals on
// the daemon's Devices (devices.status, daemon.stats).
#include "hilo/controller/capture.hpp"

namespace hilo::controller {

using nlohmann::json;

namespace {
void add_retry(drivers::RetryCounters& a, const drivers::RetryCounters& b) {
  a.attempts += b.attempts;
  a.retries += b.retries;
  a.failures += b.failures;
  a.reconnects += b.reconnects;
}
json retry_json(const drivers::RetryCounters& r) {
  return {{"attempts", r.attempts}, {"retries", r.retries}, {"failures", r.failures}, {"reconnects", r.reconnects}};
}
}  // namespace

void CaptureCounters::add(const CaptureCounters& o) {
  frames_stored += o.frames_stored;
  show_errors += o.show_errors;
  grab_errors += o.grab_errors;
  timeouts += o.timeouts;
  corrupt_frames += o.corrupt_frames;
  disconnects += o.disconnects;
  write_failures += o.write_failures;
  frames_dropped += o.frames_dropped;
  gap_frames += o.gap_frames;
  out_of_order += o.out_of_order;
  early_frames += o.early_frames;
  content_rejects += o.content_rejects;
  content_undecidable += o.content_undecidable;
  regrabs += o.regrabs;
  add_retry(slm_driver, o.slm_driver);
  add_retry(camera_driver, o.camera_driver);
}

json CaptureCounters::to_json() const {
  return {{"frames_stored", frames_stored},   {"regrabs", regrabs},
          {"show_errors", show_errors},       {"grab_errors", grab_errors},
          {"timeouts", timeouts},             {"corrupt_frames", corrupt_frames},
          {"disconnects", disconnects},       {"write_failures", write_failures},
          {"frames_dropped", frames_dropped}, {"gap_frames", gap_frames},
          {"out_of_order", out_of_order},     {"early_frames", early_frames},
          {"content_rejects", content_rejects}, {"content_undecidable", content_undecidable},
          {"slm_driver", retry_json(slm_driver)},
          {"camera_driver", retry_json(camera_driver)}};
}

json Devices::counters_json() const {
  std::lock_guard lk(counters_mu_);
  CaptureCounters sum = totals_;
  sum.add(job_);
  return sum.to_json();
}

void Devices::set_job_counters(const CaptureCounters& so_far) {
  std::lock_guard lk(counters_mu_);
  job_ = so_far;
}

void Devices::end_job_counters() {
  std::lock_guard lk(counters_mu_);
  totals_.add(job_);
  job_ = {};
}

}  // namespace hilo::controller
