#include "hilo/controller/run_documents.hpp"

#include <cassert>
#include <cstdio>

namespace hilo::controller {

using nlohmann::json;

std::string_view exit_status_of(JobState s) {
  switch (s) {
    case JobState::done: return "success";
    case JobState::cancelled:
    case JobState::interrupted: return "abort";
    default: return "fail";
  }
}

RunDocuments::RunDocuments(JobControl& ctl) : ctl_(ctl), rng_(std::random_device{}()) {}

RunDocuments::~RunDocuments() {
  try {
    stop("fail", "the job ended without a stop document", last_records_);
  } catch (...) {
    // A destructor must not throw; the job's state still says how it ended.
  }
}

std::string RunDocuments::new_uid() {
  const std::uint64_t a = rng_(), b = rng_();
  // UUID version 4, variant 1 (RFC 4122).
  const std::uint64_t hi = (a & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;
  const std::uint64_t lo = (b & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  return buf;
}

void RunDocuments::publish(const char* topic, json body) {
  body["time"] = ctl_.now_s();
  ctl_.event(topic, std::move(body));
}

void RunDocuments::start(const json& bench, const json& config, bool resumed, std::uint64_t first_record) {
  std::lock_guard lk(mu_);
  assert(start_uid_.empty() && "one start per RunDocuments");
  start_uid_ = new_uid();
  last_records_ = first_record;
  publish("run.start", {{"uid", start_uid_},
                        {"kind", ctl_.record().kind},
                        {"bench", bench},
                        {"config", config},
                        {"resumed", resumed},
                        {"first_record", first_record}});
}

void RunDocuments::descriptor(const json& data_keys) {
  std::lock_guard lk(mu_);
  assert(!start_uid_.empty() && !stopped_ && descriptor_uid_.empty() && "descriptor: once, between start and stop");
  descriptor_uid_ = new_uid();
  publish("run.descriptor", {{"uid", descriptor_uid_}, {"run_start", start_uid_}, {"data_keys", data_keys}});
}

bool RunDocuments::has_descriptor() const {
  std::lock_guard lk(mu_);
  return !descriptor_uid_.empty();
}

void RunDocuments::event(std::uint64_t first_record, std::uint64_t records, const json& files) {
  std::lock_guard lk(mu_);
  assert(!descriptor_uid_.empty() && !stopped_ && "event: after the descriptor, before the stop");
  ++num_events_;
  last_records_ = first_record + records;
  publish("run.event", {{"uid", new_uid()},
                        {"descriptor", descriptor_uid_},
                        {"seq_num", num_events_},
                        {"first_record", first_record},
                        {"records", records},
                        {"file", files}});
}

void RunDocuments::stop(std::string_view exit_status, const std::string& reason, std::uint64_t records) {
  std::lock_guard lk(mu_);
  if (start_uid_.empty() || stopped_) return;
  stopped_ = true;
  publish("run.stop", {{"uid", new_uid()},
                       {"run_start", start_uid_},
                       {"exit_status", exit_status},
                       {"reason", reason},
                       {"num_events", num_events_},
                       {"records", records}});
}

}  // namespace hilo::controller
