#pragma once
// Command handling: handle(request, context) → reply. No socket I/O happens here; the context carries
// the devices, job manager, catalog and datasets, so tests drive it with test doubles.
// Every failure becomes an error reply with a stable code; handle() never throws (an unexpected
// exception becomes "internal").
//
// Commands (docs/protocol.md has an example exchange for each):
//   ping, version, devices.list, devices.status, devices.configure, slm.show, camera.grab, capture,
//   jobs.list, jobs.status, jobs.cancel, runs.list, runs.get, shutdown
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "hilo/controller/capture.hpp"
#include "hilo/controller/dataset.hpp"
#include "hilo/controller/jobs.hpp"
#include "hilo/controller/protocol.hpp"
#include "hilo/controller/storage.hpp"

namespace hilo::controller {

struct Context {
  Devices& devices;
  JobManager& jobs;
  Catalog& catalog;
  DatasetLibrary& datasets;
  std::filesystem::path data_dir;
  Limits limits;
  CaptureOptions capture_defaults;
  std::function<double()> monotonic_s;  // for chunk timing in jobs
  std::string daemon_version = "0.1.0";
  bool shutting_down = false;  // set by the daemon; new jobs are refused with shutting_down
};

std::vector<std::string_view> command_names();

Reply handle(const Request& req, Context& ctx);
// parse() then handle(); the reply to anything a client can send.
Reply handle_frames(std::span<const std::string> frames, Context& ctx);

}  // namespace hilo::controller
