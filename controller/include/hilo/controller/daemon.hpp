#pragma once
// The daemon's event loop: one boost::asio::io_context owns the ZeroMQ sockets, timers and signals.
//
// ZeroMQ ⇄ Asio: each socket's ZMQ_FD is wrapped (not owned) in a posix::stream_descriptor. That fd is
// edge-triggered: it signals "the socket's state may have changed", not "a message is waiting". So on
// every wake-up the daemon reads ZMQ_EVENTS and receives non-blocking while ZMQ_POLLIN is set, checking
// ZMQ_EVENTS again after every receive and every send (a send can consume the edge that announced the
// next request), and only then waits on the fd again. With one thread running the io_context no edge
// is lost between the last check and re-arming: the wait is queued before epoll is polled again.
//
// Commands: ROUTER socket; a client is a REQ socket or a DEALER that sends an empty delimiter frame.
// Each wake-up first reads every waiting request into a bounded FIFO (limits.max_pending_requests; a
// request beyond it is answered at once with overloaded), then a posted task answers them one at a
// time, in order, by handle() on the I/O thread (device commands run there; they are short), so
// heartbeats and events interleave with a long queue.
//
// Security (docs/protocol.md): without CurveZMQ keys only loopback endpoints are accepted and every
// client has the control role. With keys, both sockets are CURVE servers and a ZapHandler (its own
// thread, see security.hpp) admits only allow-listed client keys; each request carries its client's
// role. A non-loopback endpoint requires keys and an allow-list. Jobs run on the JobManager's worker; their events reach the PUB socket through
// EventPublisher, which posts them to the io_context.
// Events: PUB socket, two frames per event: topic ("job.progress", "job.state", "device.state",
// "heartbeat"), then a JSON object carrying "seq" (per-daemon counter), "time_s" and the payload.
//
// Log: every error reply, whoever made it (parse, a command, the overloaded answer), is logged once here,
// at warning (internal: error), with cmd, id, client (ZAP name, else the peer address), role, code and
// message; every request is logged at debug. Overloaded answers are logged at most once per second with
// the running count, as ZAP denials are.
//
// SIGHUP re-reads --client-keys (reload_client_keys()); other signals are unaffected.
//
// Shutdown (SIGINT/SIGTERM or the shutdown command): refuse new jobs, stop the running job (it commits
// its frames and ends interrupted), then close the sockets and let io_context::run() return.
#include <atomic>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <zmq.hpp>

#include "hilo/controller/handler.hpp"
#include "hilo/controller/log.hpp"
#include "hilo/controller/security.hpp"

namespace CLI {
class App;
}

namespace hilo::controller {

// tcp://127.x.y.z:..., tcp://localhost:..., tcp://[::1]:..., ipc://..., inproc://...
bool is_loopback_endpoint(std::string_view endpoint);

struct DaemonOptions {
  std::string command_endpoint = "tcp://127.0.0.1:5555";
  std::string event_endpoint = "tcp://127.0.0.1:5556";
  double heartbeat_s = 1.0;
  bool handle_signals = true;  // SIGINT/SIGTERM start a shutdown, SIGHUP reloads the allow-list (off in in-process tests)
  // CurveZMQ server keys (Z85, 40 characters each). Without them only loopback endpoints are allowed.
  std::string curve_secret_key;
  std::string curve_public_key;
  // Client allow-list (security.hpp, parse_client_keys); required with CurveZMQ keys. start() loads
  // the file and adds its keys to client_keys.
  std::filesystem::path client_keys_file;
  std::vector<ClientKey> client_keys;
  // Protocol and queue limits; run_hilod copies them into the handler Context, which the daemon uses.
  Limits limits;

  bool curve() const { return !curve_secret_key.empty(); }
  [[nodiscard]] std::string validate() const;
};

// Registers the security and limit options (--client-keys, --max-*) on `app`.
void add_daemon_options(CLI::App& app, DaemonOptions& o);

struct DaemonStats {
  std::uint64_t requests = 0;         // requests answered by handle()
  std::uint64_t overloaded = 0;       // requests answered with overloaded
  std::uint64_t replies_dropped = 0;  // replies the client's full queue (or its disconnection) lost
  std::uint64_t zap_allowed = 0, zap_denied = 0;
  std::size_t max_queue_depth = 0;    // the deepest the pending-request queue got
  std::size_t queue_depth = 0;        // requests waiting now (stats() fills it in)
  std::size_t computing = 0;          // requests on the compute thread now (runs_off_io_thread)
  double uptime_s = 0;                // since start() (stats() fills it in)

  nlohmann::json to_json() const;  // the keys daemon.stats reports (docs/protocol.md)
};

class EventPublisher {
 public:
  EventPublisher(boost::asio::io_context& io, zmq::context_t& zmq);
  std::string bind(const std::string& endpoint, const DaemonOptions& opt);  // returns the resolved endpoint
  // Thread-safe: posts the event to the io_context, which sends it.
  void publish(const std::string& topic, nlohmann::json body);
  // Also hands every event (with its seq and time_s) to `listener`, on the io thread, whether or not a
  // subscriber is connected (the live view). Call before the first publish; the listener must not block.
  void add_listener(EventSink listener) { listeners_.push_back(std::move(listener)); }
  EventSink sink() {
    return [this](const std::string& t, const nlohmann::json& b) { publish(t, b); };
  }
  void close();

 private:
  void send_now(const std::string& topic, nlohmann::json& body);
  boost::asio::io_context& io_;
  zmq::socket_t pub_;
  std::atomic<bool> open_{false};
  std::uint64_t seq_ = 0;
  std::vector<EventSink> listeners_;
};

class Daemon {
 public:
  Daemon(boost::asio::io_context& io, zmq::context_t& zmq, DaemonOptions opt, Context& ctx, EventPublisher& events,
         Log log = Log());
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Binds both sockets and starts serving; throws std::runtime_error (invalid options, bind failure).
  void start();
  const std::string& command_endpoint() const { return cmd_endpoint_; }
  const std::string& event_endpoint() const { return evt_endpoint_; }
  // Starts the shutdown sequence; callable from the io thread (any other thread: post it).
  void begin_shutdown(const std::string& reason);
  bool stopped() const { return stopped_; }
  // Re-reads opt.client_keys_file (what SIGHUP does): on success the ZAP handler admits exactly the keys of
  // opt.client_keys plus the file's from the next handshake on (connections already made stay up); on
  // failure (unreadable file, a bad line, an empty list) the previous allow-list stays and the error is
  // logged. Returns "" on success, else the error; without --client-keys, an error saying so.
  // Thread-safe with the ZAP handler; call on the io thread.
  std::string reload_client_keys();
  // Counters; call on the io thread (or after it has stopped). The daemon.stats command reports them
  // (the Daemon installs itself as the Context's daemon_counters for its lifetime).
  DaemonStats stats() const;

 private:
  struct Pending {
    std::vector<zmq::message_t> msgs;
    Role role;
  };
  void arm();
  void drain();
  void process_next();
  void process(Pending& p);
  // The reply's way out (I/O thread): counted, sent, logged, its events published.
  void complete(std::vector<zmq::message_t>& msgs, Role role, const std::string& cmd, const Reply& reply);
  void send_reply(std::vector<zmq::message_t>& msgs, const Reply& reply);
  Role role_of(std::vector<zmq::message_t>& msgs) const;
  void heartbeat();
  void finish_shutdown();
  void wait_signal();
  void log_reply(const std::vector<zmq::message_t>& msgs, Role role, const std::string& cmd, const Reply& reply);

  boost::asio::io_context& io_;
  zmq::context_t& zmq_;
  DaemonOptions opt_;
  Context& ctx_;
  EventPublisher& events_;
  zmq::socket_t cmd_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> cmd_fd_;
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::signal_set signals_;
  std::string cmd_endpoint_, evt_endpoint_;
  std::thread stopper_;
  std::unique_ptr<ZapHandler> zap_;
  std::vector<ClientKey> option_keys_;  // opt.client_keys as given, before the file's keys were added
  Log log_;
  double last_overload_log_s_ = -1e300;
  std::deque<Pending> queue_;
  bool process_posted_ = false;
  DaemonStats stats_;
  bool shutting_down_ = false;
  bool stopped_ = false;
  double started_s_ = 0;
  // One thread for the commands that compute (runs_off_io_thread); begin_shutdown's stopper joins it
  // after the jobs, so their replies go out before the sockets close. Declared last: destroyed first.
  boost::asio::thread_pool compute_{1};
};

}  // namespace hilo::controller
