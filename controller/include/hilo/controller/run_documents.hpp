#pragma once
// Run documents (docs/protocol.md "Run documents"): what a job records, published on the event socket
// in the shape of Bluesky's event model, so that other lab software can follow hilo's runs.
//
// One RunDocuments object covers one execution of a job over its run (a resumed run gets a new one):
//   run.start      {uid, run_id, time, kind, job_id, bench, config, resumed, first_record}
//   run.descriptor {uid, run_start, run_id, data_keys: {name: {dtype, shape, units, source}}}
//   run.event      {uid, descriptor, run_id, seq_num, first_record, records, file: {name: path}, time}
//   run.stop       {uid, run_start, run_id, exit_status, reason, num_events, records, time}
// `time` is Unix seconds from the job manager's clock; uids are random UUIDs (version 4). seq_num counts
// from 1 within one start; first_record counts from 0 within the run, across resumes. File paths are
// relative to the run directory.
//
// Order: start, then at most one descriptor, then events, then exactly one stop. The calls enforce it:
// descriptor() and event() before start() or after stop(), event() before descriptor(), and a second
// start() or descriptor() are programmer errors (assert); stop() after stop() does nothing, so a job can
// call it on every exit path. The destructor of a started, unstopped object publishes a "fail" stop
// ("the job ended without a stop document"), so an exception that escapes the job still closes the run.
// Thread-safe: event() may come from a storage task while the job thread calls the others.
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "hilo/controller/jobs.hpp"

namespace hilo::controller {

// The stop document's exit_status for a job's final state: done → "success", failed → "fail",
// cancelled and interrupted → "abort" (queued and running are not final: "fail").
std::string_view exit_status_of(JobState s);

class RunDocuments {
 public:
  // Publishes through ctl.event() (which adds job_id and run_id) with ctl.now_s() as the time.
  explicit RunDocuments(JobControl& ctl);
  ~RunDocuments();
  RunDocuments(const RunDocuments&) = delete;
  RunDocuments& operator=(const RunDocuments&) = delete;

  // bench: which bench recorded (config path, device names); config: the job's parameters.
  // first_record: records the run already held (0 unless resumed).
  void start(const nlohmann::json& bench, const nlohmann::json& config, bool resumed, std::uint64_t first_record);
  // data_keys: {name: {"dtype": numpy descr, "shape": [per-record dims], "units", "source"}}.
  void descriptor(const nlohmann::json& data_keys);
  bool has_descriptor() const;
  // One stored chunk: records [first_record, first_record + records) of the run, files = {name: path}.
  void event(std::uint64_t first_record, std::uint64_t records, const nlohmann::json& files);
  // records: records the run holds at the end (all starts together).
  void stop(std::string_view exit_status, const std::string& reason, std::uint64_t records);

 private:
  std::string new_uid();
  void publish(const char* topic, nlohmann::json body);

  JobControl& ctl_;
  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  std::string start_uid_, descriptor_uid_;
  std::uint64_t num_events_ = 0, last_records_ = 0;
  bool stopped_ = false;
};

}  // namespace hilo::controller
