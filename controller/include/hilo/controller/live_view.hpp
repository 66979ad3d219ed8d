#pragma once
// The live view: a read-only web page of the bench, served by hilod over HTTP (docs/live_view.md).
//
// Endpoint: "HOST:PORT" (port 0: the system picks one; url() tells which). A non-loopback HOST needs a
// token file (same rule as the ZeroMQ endpoints, which need CurveZMQ keys off loopback); with a token,
// every request must carry it as `?token=...` or `Authorization: Bearer ...`, else 401.
// Only GET and HEAD are served (405 otherwise, with Allow); nothing here writes to a device or a file.
//
// Routes (respond() answers all but /events, which streams):
//   /                     the page (HTML + JS, embedded; no external resources)
//   /api/state            JSON: job, devices, drift readings, heartbeat, preview versions and frame stats, report
//   /preview/<source>.png the latest frame / input_slm / element_slm image (404 before the first one)
//   /report/<run_id>/<figure>.png  a figure of a pipeline report, confined to the data directory
//   /events               server-sent events: "state" (the /api/state object) on connect, then every
//                         daemon event by its topic (job.progress, job.state, device.state, bench.drift,
//                         heartbeat, ...), "devices" when the polled device status changes, "preview"
//                         {source, version, stats} when a new preview image is available, and "report"
//                         when a newer pipeline report appears. At most max_event_clients streams (503 beyond).
//
// Threading: the server runs on its own thread and io_context, not the daemon's: PNG encoding, report
// parsing and slow browsers then never delay a command reply, a heartbeat or an event on the ZeroMQ
// sockets. on_event() (called by the daemon's EventPublisher on its I/O thread) only posts to this
// thread. Device status is read through a callback on this thread, once per device_poll_s.
// Bounds: max_connections sockets (beyond: closed at accept), request headers <= 8 KiB, bodies <=
// 4 KiB, 30 s to send a request; an event stream whose client falls 256 messages behind is closed
// (browsers reconnect on their own).
//
// Last report: the newest `<data_dir>/<run>/report.json` (by modification time) that parses; its
// accuracy table (report_accuracy_rows, pipeline.hpp) and the PNG figures it lists.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "hilo/controller/preview.hpp"

namespace CLI {
class App;
}

namespace hilo::controller {

struct LiveViewOptions {
  std::string endpoint;                 // "HOST:PORT"; empty: no live view
  std::filesystem::path token_file;     // first line: the token (>= 16 characters)
  std::size_t max_event_clients = 8;    // concurrent /events streams, in [1, 1000]
  std::size_t max_connections = 64;     // concurrent sockets, in [max_event_clients + 1, 10000]
  double device_poll_s = 1.0;           // in [0.05, 60]
  PreviewOptions preview;

  bool enabled() const { return !endpoint.empty(); }
  [[nodiscard]] std::string validate() const;  // "" when valid; checks the loopback/token rule too
};

// Registers --http-endpoint, --http-token-file, --http-max-clients, --preview-max-per-s on `app`.
void add_live_view_options(CLI::App& app, LiveViewOptions& o);

// An HTTP answer of the live view, before serialisation.
struct LiveAnswer {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  bool event_stream = false;  // /events: the caller switches the connection to server-sent events
};

class LiveView {
 public:
  struct Sources {
    PreviewTap& tap;
    std::filesystem::path data_dir;             // reports are read from its subdirectories
    std::function<nlohmann::json()> devices;    // device status; called on the live view's thread
  };

  LiveView(LiveViewOptions opt, Sources src);
  ~LiveView();  // stop()
  LiveView(const LiveView&) = delete;
  LiveView& operator=(const LiveView&) = delete;

  // Reads the token, binds and starts serving; throws std::runtime_error naming the cause (invalid
  // options, unreadable or short token file, bind failure).
  void start();
  // "http://HOST:PORT/" once started (the bound port).
  std::string url() const;
  // Any thread: a daemon event, forwarded to every stream and folded into the state.
  void on_event(const std::string& topic, const nlohmann::json& body);
  // Closes every connection and joins the thread; idempotent.
  void stop();

  // The answer to one request (no I/O, no state change; call on the live view's thread or before
  // start()). method: "GET", "POST", ...; target: path and query; authorization: the header or "".
  LiveAnswer respond(std::string_view method, std::string_view target, std::string_view authorization);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;  // its handlers point to it; stop() drains them before it goes
};

}  // namespace hilo::controller
