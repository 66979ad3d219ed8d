#include "hilo/controller/daemon.hpp"

#include <chrono>
#include <csignal>
#include <iterator>

#include <CLI/CLI.hpp>
#include <boost/asio/post.hpp>
#include <zmq_addon.hpp>

namespace hilo::controller {

using nlohmann::json;
namespace asio = boost::asio;

namespace {
double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void apply_curve(zmq::socket_t& s, const DaemonOptions& opt) {
  if (opt.curve_secret_key.empty()) return;
  s.set(zmq::sockopt::zap_domain, "hilo");
  s.set(zmq::sockopt::curve_server, 1);
  s.set(zmq::sockopt::curve_secretkey, opt.curve_secret_key);
  s.set(zmq::sockopt::curve_publickey, opt.curve_public_key);
}
}  // namespace

bool is_loopback_endpoint(std::string_view ep) {
  if (ep.starts_with("ipc://") || ep.starts_with("inproc://")) return true;
  if (!ep.starts_with("tcp://")) return false;
  const std::string_view rest = ep.substr(6);
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == rest.size()) return false;
  const std::string_view host = rest.substr(0, colon);
  if (host == "localhost" || host == "[::1]") return true;
  // 127.0.0.0/8: four decimal octets, the first 127.
  int parts = 0;
  std::size_t i = 0;
  while (i <= host.size()) {
    const auto dot = std::min(host.find('.', i), host.size());
    const auto octet = host.substr(i, dot - i);
    if (octet.empty() || octet.size() > 3 || octet.find_first_not_of("0123456789") != std::string_view::npos) return false;
    if (std::stoi(std::string(octet)) > 255 || (parts == 0 && octet != "127")) return false;
    ++parts;
    i = dot + 1;
  }
  return parts == 4;
}

std::string DaemonOptions::validate() const {
  if (!(heartbeat_s > 0 && heartbeat_s <= 3600)) return "daemon.heartbeat_s must be in (0, 3600], got " + std::to_string(heartbeat_s);
  if (curve_secret_key.empty() != curve_public_key.empty()) {
    return "daemon.curve_secret_key and daemon.curve_public_key must be given together";
  }
  if (curve() && (!is_z85_key(curve_secret_key) || !is_z85_key(curve_public_key))) {
    return "daemon.curve keys must be 40-character Z85 strings";
  }
  if (curve() && client_keys.empty() && client_keys_file.empty()) {
    return "CurveZMQ keys need a client allow-list (--client-keys): without one any client could connect";
  }
  if (!curve() && (!client_keys.empty() || !client_keys_file.empty())) {
    return "a client allow-list needs CurveZMQ server keys (--curve-key-file)";
  }
  for (const auto* ep : {&command_endpoint, &event_endpoint}) {
    if (!is_loopback_endpoint(*ep) && !curve()) {
      return "daemon endpoint '" + *ep + "' is not loopback; a non-loopback bind requires CurveZMQ keys (--curve-key-file) and a client allow-list (--client-keys)";
    }
  }
  if (command_endpoint == event_endpoint && !command_endpoint.ends_with(":*")) return "daemon.command_endpoint and daemon.event_endpoint must differ";
  return limits.validate();
}

void add_daemon_options(CLI::App& app, DaemonOptions& o) {
  app.add_option("--client-keys", o.client_keys_file,
                 "client allow-list for CurveZMQ: lines \"<read_only|control> <z85 public key> [name]\" "
                 "(required with --curve-key-file)");
  app.add_option("--max-json-bytes", o.limits.max_json_bytes, "largest request JSON frame")->capture_default_str();
  app.add_option("--max-message-bytes", o.limits.max_message_bytes, "largest request, all frames")->capture_default_str();
  app.add_option("--max-pending-requests", o.limits.max_pending_requests,
                 "requests waiting to be handled, all clients; beyond: overloaded")
      ->capture_default_str();
  app.add_option("--max-pending-replies", o.limits.max_pending_replies,
                 "unread replies kept per client; beyond: dropped")
      ->capture_default_str();
  app.add_option("--max-jobs", o.limits.max_jobs, "jobs queued + running; beyond: too_many_jobs")->capture_default_str();
}

// ------------------------------------------------------------------------------------- EventPublisher

EventPublisher::EventPublisher(asio::io_context& io, zmq::context_t& zmq) : io_(io), pub_(zmq, zmq::socket_type::pub) {
  pub_.set(zmq::sockopt::linger, 500);
  pub_.set(zmq::sockopt::sndhwm, 10000);
}

std::string EventPublisher::bind(const std::string& endpoint, const DaemonOptions& opt) {
  apply_curve(pub_, opt);
  pub_.bind(endpoint);
  open_ = true;
  return pub_.get(zmq::sockopt::last_endpoint);
}

void EventPublisher::publish(const std::string& topic, json body) {
  asio::post(io_, [this, topic, body = std::move(body)]() mutable { send_now(topic, body); });
}

void EventPublisher::send_now(const std::string& topic, json& body) {
  if (!open_) return;
  body["seq"] = seq_++;
  if (!body.contains("time_s")) body["time_s"] = unix_now();
  for (const auto& l : listeners_) l(topic, body);
  const std::string payload = body.dump(-1, ' ', false, json::error_handler_t::replace);
  // PUB never blocks: with no subscriber, or at the high-water mark, the event is dropped.
  pub_.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  pub_.send(zmq::buffer(payload), zmq::send_flags::dontwait);
}

void EventPublisher::close() {
  if (open_.exchange(false)) pub_.close();
}

// --------------------------------------------------------------------------------------------- Daemon

Daemon::Daemon(asio::io_context& io, zmq::context_t& zmq, DaemonOptions opt, Context& ctx, EventPublisher& events, Log log)
    : io_(io),
      zmq_(zmq),
      opt_(std::move(opt)),
      ctx_(ctx),
      events_(events),
      cmd_(zmq, zmq::socket_type::router),
      heartbeat_timer_(io),
      signals_(io),
      log_(std::move(log)) {
  ctx_.daemon_counters = [this] { return stats().to_json(); };
}

Daemon::~Daemon() {
  ctx_.daemon_counters = nullptr;
  if (stopper_.joinable()) stopper_.join();
  if (cmd_fd_) cmd_fd_->release();  // the fd belongs to the zmq socket
}

void Daemon::start() {
  if (auto e = opt_.validate(); !e.empty()) throw std::runtime_error(e);
  if (auto e = ctx_.limits.validate(); !e.empty()) throw std::runtime_error(e);
  option_keys_ = opt_.client_keys;
  if (!opt_.client_keys_file.empty()) {
    auto keys = load_client_keys(opt_.client_keys_file);
    if (auto* e = std::get_if<std::string>(&keys)) throw std::runtime_error(*e);
    for (auto& k : std::get<std::vector<ClientKey>>(keys)) opt_.client_keys.push_back(std::move(k));
  }
  if (opt_.curve()) {
    // Bound before the sockets, so that no handshake can happen without it.
    zap_ = std::make_unique<ZapHandler>(zmq_, opt_.client_keys, [log = log_](const std::string& m) {
      log.warn(m, {{"component", "zap"}});
    });
  }
  cmd_.set(zmq::sockopt::linger, 1000);
  cmd_.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(ctx_.limits.max_message_bytes));
  cmd_.set(zmq::sockopt::sndhwm, static_cast<int>(ctx_.limits.max_pending_replies));
  // A reply that cannot be queued fails visibly (counted) instead of vanishing.
  cmd_.set(zmq::sockopt::router_mandatory, 1);
  apply_curve(cmd_, opt_);
  cmd_.bind(opt_.command_endpoint);
  cmd_endpoint_ = cmd_.get(zmq::sockopt::last_endpoint);
  evt_endpoint_ = events_.bind(opt_.event_endpoint, opt_);
  started_s_ = unix_now();

  cmd_fd_ = std::make_unique<asio::posix::stream_descriptor>(io_, cmd_.get(zmq::sockopt::fd));
  if (opt_.handle_signals) {
    signals_.add(SIGINT);
    signals_.add(SIGTERM);
    signals_.add(SIGHUP);
    wait_signal();
  }
  heartbeat();
  drain();
  arm();
}

void Daemon::wait_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      log_.info("SIGHUP: reloading the client allow-list", {{"signal", "SIGHUP"}});
      reload_client_keys();
    } else {
      const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
      log_.info("shutting down", {{"signal", name}});
      begin_shutdown(name);
    }
    wait_signal();
  });
}

std::string Daemon::reload_client_keys() {
  const json where = {{"file", opt_.client_keys_file.string()}};
  if (opt_.client_keys_file.empty() || !zap_) {
    const std::string e = "no client allow-list to reload (hilod runs without --curve-key-file/--client-keys)";
    log_.warn(e);
    return e;
  }
  auto loaded = load_client_keys(opt_.client_keys_file);
  if (auto* e = std::get_if<std::string>(&loaded)) {
    json f = where;
    f["kept_keys"] = zap_->key_count();
    log_.error("client allow-list not reloaded, keeping the previous one: " + *e, f);
    return *e;
  }
  std::vector<ClientKey> keys = option_keys_;
  for (auto& k : std::get<std::vector<ClientKey>>(loaded)) keys.push_back(std::move(k));
  const std::size_t before = zap_->key_count();
  zap_->set_keys(keys);
  json f = where;
  f["keys"] = zap_->key_count();
  f["previous_keys"] = before;
  log_.info("client allow-list reloaded", f);
  return {};
}

void Daemon::arm() {
  if (stopped_ || !cmd_fd_) return;
  cmd_fd_->async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    drain();
    arm();
  });
}

void Daemon::drain() {
  while (!stopped_) {
    // Reading ZMQ_EVENTS also processes the socket's pending commands; the answer is current.
    if (!(cmd_.get(zmq::sockopt::events) & ZMQ_POLLIN)) break;
    std::vector<zmq::message_t> msgs;
    const auto got = zmq::recv_multipart(cmd_, std::back_inserter(msgs), zmq::recv_flags::dontwait);
    if (!got) break;
    if (msgs.empty()) continue;
    if (queue_.size() >= ctx_.limits.max_pending_requests) {
      ++stats_.overloaded;
      std::vector<std::string> frames;
      const std::size_t body = msgs.size() > 1 && msgs[1].size() == 0 ? 2 : 1;
      if (body < msgs.size()) frames.emplace_back(msgs[body].to_string());
      nlohmann::json id = nullptr;
      std::string cmd;
      if (auto p = parse(frames, ctx_.limits); auto* r = std::get_if<Request>(&p)) {
        id = r->id;
        cmd = r->cmd;
      }
      const Reply reply = error_reply(id, ErrorCode::overloaded,
                                      std::to_string(queue_.size()) + " requests are waiting, the limit is " +
                                          std::to_string(ctx_.limits.max_pending_requests) + "; retry later");
      send_reply(msgs, reply);
      const double now = unix_now();
      if (now - last_overload_log_s_ >= 1.0) {
        last_overload_log_s_ = now;
        log_reply(msgs, role_of(msgs), cmd, reply);
      }
      continue;
    }
    const Role role = role_of(msgs);
    queue_.push_back(Pending{std::move(msgs), role});
    stats_.max_queue_depth = std::max(stats_.max_queue_depth, queue_.size());
  }
  if (!queue_.empty() && !process_posted_ && !stopped_) {
    process_posted_ = true;
    asio::post(io_, [this] { process_next(); });
  }
}

void Daemon::process_next() {
  process_posted_ = false;
  if (stopped_ || queue_.empty()) return;
  Pending p = std::move(queue_.front());
  queue_.pop_front();
  process(p);
  drain();  // the send may have consumed the edge that announced the next request; also re-posts
}

Role Daemon::role_of(std::vector<zmq::message_t>& msgs) const {
  if (!opt_.curve()) return Role::control;  // loopback only (validate()), no authentication
  // The ZAP user id rides on every frame the peer sent; the last one is never the router's own.
  const char* uid = zmq_msg_gets(msgs.back().handle(), "User-Id");
  const auto r = uid ? role_from_user_id(uid) : std::nullopt;
  return r.value_or(Role::read_only);
}

void Daemon::send_reply(std::vector<zmq::message_t>& msgs, const Reply& reply) {
  // Envelope: [identity, (empty delimiter), frames...]
  const bool delimited = msgs.size() > 1 && msgs[1].size() == 0;
  std::vector<zmq::message_t> out;
  out.emplace_back(msgs[0].data(), msgs[0].size());
  if (delimited) out.emplace_back();
  for (auto& f : serialize(reply)) out.emplace_back(f.data(), f.size());
  // dontwait: a peer that vanished or stopped reading loses its reply instead of blocking the loop.
  try {
    if (!zmq::send_multipart(cmd_, out, zmq::send_flags::dontwait)) ++stats_.replies_dropped;
  } catch (const zmq::error_t&) {
    ++stats_.replies_dropped;  // EHOSTUNREACH: the peer disconnected
  }
}

void Daemon::process(Pending& p) {
  auto& msgs = p.msgs;
  const std::size_t body = msgs.size() > 1 && msgs[1].size() == 0 ? 2 : 1;
  std::vector<std::string> frames;
  frames.reserve(msgs.size() - std::min(body, msgs.size()));
  for (std::size_t i = body; i < msgs.size(); ++i) frames.emplace_back(msgs[i].to_string());
  auto parsed = parse(frames, ctx_.limits);
  std::string cmd;
  Reply reply;
  if (auto* e = std::get_if<ProtocolError>(&parsed)) {
    reply = error_reply(*e);
  } else {
    auto& req = std::get<Request>(parsed);
    cmd = req.cmd;
    if (runs_off_io_thread(cmd) && !shutting_down_) {
      // Computed on compute_, answered here; during a shutdown (the stopper joins compute_) inline instead.
      if (stats_.computing >= ctx_.limits.max_pending_requests) {
        ++stats_.overloaded;
        complete(msgs, p.role, cmd,
                 error_reply(req.id, ErrorCode::overloaded,
                             std::to_string(stats_.computing) + " " + cmd + " requests are being computed, the limit is " +
                                 std::to_string(ctx_.limits.max_pending_requests) + "; retry later"));
        return;
      }
      struct Work {
        std::vector<zmq::message_t> msgs;
        Role role;
        Request req;
        Reply reply;
      };
      auto w = std::make_shared<Work>(Work{std::move(msgs), p.role, std::move(req), {}});
      ++stats_.computing;
      asio::post(compute_, [this, w] {
        w->reply = handle(w->req, ctx_, w->role);
        asio::post(io_, [this, w] {
          --stats_.computing;
          if (!stopped_) complete(w->msgs, w->role, w->req.cmd, w->reply);
        });
      });
      return;
    }
    reply = handle(req, ctx_, p.role);
  }
  complete(msgs, p.role, cmd, reply);
}

void Daemon::complete(std::vector<zmq::message_t>& msgs, Role role, const std::string& cmd, const Reply& reply) {
  ++stats_.requests;
  send_reply(msgs, reply);
  log_reply(msgs, role, cmd, reply);
  for (auto& [topic, ev] : reply.events) events_.publish(topic, ev);
  if (reply.shutdown_after) begin_shutdown("shutdown command");
}

void Daemon::log_reply(const std::vector<zmq::message_t>& msgs, Role role, const std::string& cmd, const Reply& reply) {
  const bool ok = reply.body.value("ok", false);
  if (ok && !log_.enabled(LogLevel::debug)) return;
  // The client: its allow-list name with CurveZMQ, else the peer's address (loopback).
  std::string client = "?";
  auto& last = const_cast<zmq::message_t&>(msgs.back());
  if (const char* uid = opt_.curve() ? zmq_msg_gets(last.handle(), "User-Id") : nullptr) {
    const std::string_view u(uid);
    client = std::string(u.substr(std::min(u.find(':') + 1, u.size())));
  } else if (const char* peer = zmq_msg_gets(last.handle(), "Peer-Address")) {
    client = peer;
  }
  json f = {{"cmd", cmd}, {"id", reply.body.value("id", json())}, {"client", client}, {"role", std::string(to_string(role))}};
  if (ok) {
    log_.debug("request", f);
    return;
  }
  const auto& err = reply.body["error"];
  f["code"] = err.value("code", "");
  f["error"] = err.value("message", "");
  log_.log(f["code"] == "internal" ? LogLevel::error : LogLevel::warn, "error reply", f);
}

json DaemonStats::to_json() const {
  return {{"uptime_s", uptime_s},         {"requests", requests},       {"overloaded", overloaded},
          {"replies_dropped", replies_dropped}, {"zap_allowed", zap_allowed}, {"zap_denied", zap_denied},
          {"max_queue_depth", max_queue_depth}, {"queue_depth", queue_depth}, {"computing", computing}};
}

DaemonStats Daemon::stats() const {
  DaemonStats s = stats_;
  s.queue_depth = queue_.size();
  s.uptime_s = started_s_ > 0 ? unix_now() - started_s_ : 0.0;
  if (zap_) {
    s.zap_allowed = zap_->allowed();
    s.zap_denied = zap_->denied();
  }
  return s;
}

void Daemon::heartbeat() {
  if (shutting_down_) return;
  events_.publish("heartbeat", {{"uptime_s", unix_now() - started_s_},
                                {"protocol_version", kProtocolVersion},
                                {"jobs_active", ctx_.jobs.busy()}});
  heartbeat_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(opt_.heartbeat_s)));
  heartbeat_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) heartbeat();
  });
}

void Daemon::begin_shutdown(const std::string& reason) {
  if (shutting_down_) return;
  shutting_down_ = true;
  ctx_.shutting_down = true;
  heartbeat_timer_.cancel();
  events_.publish("daemon.state", {{"state", "stopping"}, {"reason", reason}});
  // JobManager::shutdown() waits for the running job to commit its frames; it runs off the I/O thread
  // so that the loop keeps answering (and refusing new jobs) meanwhile.
  stopper_ = std::thread([this] {
    ctx_.jobs.shutdown();
    compute_.join();  // the computing requests finish; their replies are posted before finish_shutdown
    asio::post(io_, [this] { finish_shutdown(); });
  });
}

void Daemon::finish_shutdown() {
  if (stopped_) return;
  events_.publish("daemon.state", {{"state", "stopped"}});
  // Let the queued events (final job.state, daemon.state) go out before the sockets close.
  asio::post(io_, [this] {
    stopped_ = true;
    signals_.cancel();
    if (cmd_fd_) {
      cmd_fd_->cancel();
      cmd_fd_->release();
      cmd_fd_.reset();
    }
    cmd_.close();
    events_.close();
  });
}

}  // namespace hilo::controller
