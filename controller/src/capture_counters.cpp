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
  drivers::GrabCounters::add(o);
  calibration::ContentCounters::add(o);
  frames_stored += o.frames_stored;
  add_retry(slm_driver, o.slm_driver);
  add_retry(camera_driver, o.camera_driver);
}

json CaptureCounters::to_json() const {
  json j = drivers::GrabCounters::to_json();
  j["frames_stored"] = frames_stored;
  calibration::ContentCounters::add_to(j);
  j["slm_driver"] = retry_json(slm_driver);
  j["camera_driver"] = retry_json(camera_driver);
  return j;
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
