// The live view's HTTP server: one Impl owning the io_context, its thread, the acceptor, the state the
// page shows, the sessions (HTTP requests) and the event streams (server-sent events) and the router
// that answers them. It is kept in one file (about 500 lines) because Session, Stream and respond()
// all work on Impl's private state on the live view's own thread; splitting them would put Impl in a
// header only for this file's sake. The parts that stand alone live elsewhere: the options and their
// validation (live_view_options.cpp), the HTTP helpers (live_view_http.hpp) and the page
// (live_view_page.cpp).
#include "hilo/controller/live_view.hpp"

#include <atomic>
#include <chrono>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "hilo/controller/daemon.hpp"
#include "hilo/controller/pipeline.hpp"
#include "hilo/controller/security.hpp"
#include "live_view_http.hpp"

namespace hilo::controller {

using nlohmann::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;

extern const char* const kLiveViewPage;  // live_view_page.cpp

using namespace live_http;

namespace {

constexpr std::size_t kMaxStreamBacklog = 256;
constexpr std::size_t kMaxDriftReadings = 20;

LiveAnswer text(int status, std::string body) {
  LiveAnswer a;
  a.status = status;
  a.body = std::move(body) + "\n";
  return a;
}

json preview_json(const PreviewSnapshot& s, PreviewSource src) {
  json j = {{"source", std::string(to_string(src))}, {"version", s.version}, {"rows", s.rows}, {"cols", s.cols},
            {"bit_depth", s.bit_depth}};
  if (src == PreviewSource::frame && s.version > 0) {
    j["histogram"] = s.histogram;
    j["saturated"] = s.saturated;
    j["min"] = s.min;
    j["max"] = s.max;
    j["mean"] = s.mean;
  }
  return j;
}

}  // namespace

// ------------------------------------------------------------------------------------------------ Impl

struct LiveView::Impl {
  struct Stream;
  struct Session;

  asio::io_context io;  // first: destroyed last
  LiveViewOptions opt;
  Sources src;
  std::string token;
  tcp::acceptor acceptor{io};
  asio::steady_timer tick{io};
  std::thread thread;
  std::string url;
  std::atomic<bool> running{false};

  // State, touched only on the live view's thread.
  json job = nullptr;       // the latest job.state merged with its job.progress
  json devices = nullptr;   // the latest polled device status
  json device_events = json::object();  // the latest device.state event per device
  std::deque<json> drift;   // the newest bench.drift events
  json heartbeat = nullptr;
  std::uint64_t preview_sent[kPreviewSources] = {0, 0, 0};
  json report = nullptr;    // {run_id, rows, figures, time}
  fs::file_time_type report_mtime{};
  double next_device_poll_s = 0, next_report_scan_s = 0;
  std::set<std::shared_ptr<Stream>> streams;
  std::vector<std::weak_ptr<Session>> sessions;  // to close them at stop()
  std::size_t connections = 0;

  Impl(LiveViewOptions o, Sources s) : opt(std::move(o)), src(std::move(s)) {}

  static double steady_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }

  bool authorised(std::string_view query, std::string_view authorization) const {
    if (token.empty()) return true;
    if (authorization.starts_with("Bearer ") && same_secret(authorization.substr(7), token)) return true;
    const auto t = query_param(query, "token");
    return t && same_secret(*t, token);
  }

  json state_json() {
    json pv = json::object();
    for (int i = 0; i < kPreviewSources; ++i) {
      const auto s = static_cast<PreviewSource>(i);
      pv[std::string(to_string(s))] = preview_json(src.tap.snapshot(s), s);
    }
    json d = json::array();
    for (const auto& x : drift) d.push_back(x);
    return {{"job", job}, {"devices", devices}, {"device_events", device_events}, {"drift", d}, {"heartbeat", heartbeat},
            {"preview", pv}, {"report", report}, {"read_only", true}};
  }

  // Newest parseable report.json below data_dir (one level: the run directories).
  void scan_report() {
    std::error_code ec;
    fs::path best;
    fs::file_time_type best_t{};
    for (const auto& e : fs::directory_iterator(src.data_dir, ec)) {
      const auto f = e.path() / "report.json";
      const auto t = fs::last_write_time(f, ec);
      if (ec) {
        ec.clear();
        continue;
      }
      if (best.empty() || t > best_t) {
        best = f;
        best_t = t;
      }
    }
    if (best.empty() || (!report.is_null() && best_t == report_mtime)) return;
    try {
      std::ifstream in(best);
      const json r = json::parse(in);
      json figs = json::array();
      for (const auto& f : r.value("figures", json::array())) {
        // Only figures inside the run directory (a report can be edited).
        if (f.is_string() && f.get<std::string>().ends_with(".png") &&
            std::holds_alternative<fs::path>(confine_path(best.parent_path(), f.get<std::string>()))) {
          figs.push_back(f);
        }
      }
      report = {{"run_id", best.parent_path().filename().string()}, {"rows", report_accuracy_rows(r)}, {"figures", figs}};
      report_mtime = best_t;
      broadcast("report", report);
    } catch (const std::exception&) {
      // Being written, or not a pipeline report: the previous one stays.
    }
  }

  void on_tick() {
    const double now = steady_s();
    for (int i = 0; i < kPreviewSources; ++i) {
      const auto s = static_cast<PreviewSource>(i);
      if (src.tap.version(s) != preview_sent[i]) {
        const auto snap = src.tap.snapshot(s);
        preview_sent[i] = snap.version;
        if (!streams.empty()) broadcast("preview", preview_json(snap, s));
      }
    }
    if (now >= next_device_poll_s) {
      next_device_poll_s = now + opt.device_poll_s;
      if (src.devices) {
        json d = src.devices();
        if (d != devices) {
          devices = std::move(d);
          broadcast("devices", devices);
        }
      }
    }
    if (now >= next_report_scan_s) {
      next_report_scan_s = now + 5.0;
      scan_report();
    }
    tick.expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(
        std::chrono::duration<double>(1.0 / opt.preview.max_per_s)));
    tick.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) on_tick();
    });
  }

  void fold_event(const std::string& topic, const json& body) {
    if (topic == "job.state") {
      job = body;
      if (body.value("kind", "") == "pipeline" && body.value("state", "") == "done") next_report_scan_s = 0;
    } else if (topic == "job.progress") {
      if (!job.is_object() || job.value("job_id", -1) != body.value("job_id", -2)) job = json::object();
      for (const auto& k : {"job_id", "run_id", "done", "total", "fraction", "stats"}) {
        if (body.contains(k)) job[k] = body[k];
      }
    } else if (topic == "device.state") {
      device_events[body.value("device", "device")] = body;
    } else if (topic == "bench.drift") {
      drift.push_back(body);
      while (drift.size() > kMaxDriftReadings) drift.pop_front();
    } else if (topic == "heartbeat") {
      heartbeat = body;
    }
  }

  void broadcast(const std::string& topic, const json& body);
  void accept();
  void close_all();
  LiveAnswer respond(std::string_view method, std::string_view target, std::string_view authorization);
};

// A server-sent-events stream: the response header, then "event: T\ndata: J\n\n" messages.
struct LiveView::Impl::Stream : std::enable_shared_from_this<Stream> {
  beast::tcp_stream sock;
  Impl* owner;
  std::deque<std::string> out;
  bool writing = false, closed = false;

  Stream(beast::tcp_stream s, Impl* o) : sock(std::move(s)), owner(o) {}

  void send(std::string msg) {
    if (closed) return;
    if (out.size() >= kMaxStreamBacklog) {
      close();
      return;
    }
    out.push_back(std::move(msg));
    if (!writing) write_next();
  }
  void write_next() {
    if (out.empty() || closed) {
      writing = false;
      return;
    }
    writing = true;
    asio::async_write(sock, asio::buffer(out.front()), [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
      if (ec) {
        self->close();
        return;
      }
      self->out.pop_front();
      self->write_next();
    });
  }
  void close() {
    if (closed) return;
    closed = true;
    beast::error_code ec;
    sock.socket().shutdown(tcp::socket::shutdown_both, ec);
    sock.close();
    owner->streams.erase(shared_from_this());
    --owner->connections;
  }
};

void LiveView::Impl::broadcast(const std::string& topic, const json& body) {
  if (streams.empty()) return;
  const std::string msg = "event: " + topic + "\ndata: " + body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
  for (const auto& s : std::vector<std::shared_ptr<Stream>>(streams.begin(), streams.end())) s->send(msg);
}

// One HTTP/1.1 connection: requests answered in turn (keep-alive) until it closes or turns into a stream.
struct LiveView::Impl::Session : std::enable_shared_from_this<Session> {
  beast::tcp_stream sock;
  Impl* owner;
  beast::flat_buffer buf;
  std::optional<http::request_parser<http::string_body>> parser;
  http::response<http::string_body> res;
  bool done = false;

  Session(tcp::socket s, Impl* o) : sock(std::move(s)), owner(o) {}
  ~Session() {
    if (!done) --owner->connections;
  }

  void read() {
    parser.emplace();
    parser->header_limit(8 * 1024);
    parser->body_limit(4 * 1024);
    sock.expires_after(std::chrono::seconds(30));
    http::async_read(sock, buf, *parser, [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      // A malformed or oversized request (an HTTP parse error, not a closed or timed-out socket).
      if (ec != http::error::end_of_stream && &ec.category() == &http::make_error_code(http::error::bad_target).category()) {
        res = {};
        res.result(ec == http::error::header_limit  ? http::status::request_header_fields_too_large
                   : ec == http::error::body_limit ? http::status::payload_too_large
                                                   : http::status::bad_request);
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.body() = "bad request: " + ec.message() + "\n";
        res.keep_alive(false);
        res.prepare_payload();
        write();
        return;
      }
      beast::error_code ig;
      sock.socket().shutdown(tcp::socket::shutdown_both, ig);
      return;
    }
    const auto& req = parser->get();
    const std::string method(req.method_string());
    const std::string target(req.target());
    const std::string auth(req[http::field::authorization]);
    LiveAnswer a = owner->respond(method, target, auth);
    if (a.event_stream) {
      if (owner->streams.size() >= owner->opt.max_event_clients) {
        a = text(503, "too many live view streams (limit " + std::to_string(owner->opt.max_event_clients) + ")");
      } else {
        start_stream();
        return;
      }
    }
    res = {};
    res.version(req.version());
    res.result(static_cast<http::status>(a.status));
    res.set(http::field::server, "hilod");
    res.set(http::field::content_type, a.content_type);
    res.set(http::field::cache_control, "no-store");
    res.set("X-Content-Type-Options", "nosniff");
    if (a.status == 405) res.set(http::field::allow, "GET, HEAD");
    if (a.status == 401) res.set(http::field::www_authenticate, "Bearer realm=\"hilod\"");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(a.body);
    res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();  // Content-Length stays that of GET
    write();
  }

  void write() {
    sock.expires_after(std::chrono::seconds(30));
    http::async_write(sock, res, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec || !self->res.keep_alive()) {
        beast::error_code ig;
        self->sock.socket().shutdown(tcp::socket::shutdown_both, ig);
        return;
      }
      self->read();
    });
  }

  void start_stream() {
    done = true;  // the stream owns the connection count from here
    sock.expires_never();
    auto st = std::make_shared<Stream>(std::move(sock), owner);
    owner->streams.insert(st);
    st->send(
        "HTTP/1.1 200 OK\r\nServer: hilod\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
        "X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 1000\n\n");
    st->send("event: state\ndata: " + owner->state_json().dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n");
  }
};

void LiveView::Impl::close_all() {
  beast::error_code ec;
  acceptor.close(ec);
  tick.cancel();
  for (const auto& s : std::vector<std::shared_ptr<Stream>>(streams.begin(), streams.end())) s->close();
  for (const auto& w : sessions) {
    if (auto s = w.lock()) {
      beast::error_code ig;
      s->sock.socket().shutdown(tcp::socket::shutdown_both, ig);
      s->sock.close();
    }
  }
  sessions.clear();
}

// ------------------------------------------------------------------------------------------- LiveView

LiveView::LiveView(LiveViewOptions opt, Sources src) : impl_(std::make_unique<Impl>(std::move(opt), std::move(src))) {}

LiveView::~LiveView() { stop(); }

std::string LiveView::url() const { return impl_->url; }

void LiveView::start() {
  auto& im = *impl_;
  if (auto e = im.opt.validate(); !e.empty()) throw std::runtime_error(e);
  if (!im.opt.token_file.empty()) {
    std::ifstream in(im.opt.token_file);
    std::string line;
    if (!in || !std::getline(in, line)) throw std::runtime_error("--http-token-file " + im.opt.token_file.string() + ": cannot read it");
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (line.size() < 16) {
      throw std::runtime_error("--http-token-file " + im.opt.token_file.string() + ": the token (first line) must have at least 16 characters");
    }
    im.token = line;
  }
  std::string why;
  const auto hp = split_endpoint(im.opt.endpoint, &why);
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(hp->host == "localhost" ? "127.0.0.1" : hp->host, ec);
  if (ec) throw std::runtime_error("--http-endpoint '" + im.opt.endpoint + "': '" + hp->host + "' is not an IP address");
  const tcp::endpoint ep(addr, hp->port);
  im.acceptor.open(ep.protocol(), ec);
  if (!ec) im.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) im.acceptor.bind(ep, ec);
  if (!ec) im.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("--http-endpoint '" + im.opt.endpoint + "': cannot listen: " + ec.message());
  const auto bound = im.acceptor.local_endpoint();
  const std::string host = bound.address().is_v6() ? "[" + bound.address().to_string() + "]" : bound.address().to_string();
  im.url = "http://" + host + ":" + std::to_string(bound.port()) + "/";
  im.accept();
  im.on_tick();
  im.running = true;
  im.thread = std::thread([&im] { im.io.run(); });
}

void LiveView::Impl::accept() {
  acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      if (connections >= opt.max_connections) {
        boost::system::error_code ig;
        s.close(ig);
      } else {
        ++connections;
        std::erase_if(sessions, [](const std::weak_ptr<Session>& w) { return w.expired(); });
        auto sess = std::make_shared<Session>(std::move(s), this);
        sessions.push_back(sess);
        sess->read();
      }
    }
    accept();
  });
}

void LiveView::on_event(const std::string& topic, const json& body) {
  if (!impl_->running) return;
  asio::post(impl_->io, [impl = impl_.get(), topic, body] {
    impl->fold_event(topic, body);
    impl->broadcast(topic, body);
  });
}

void LiveView::stop() {
  auto& im = *impl_;
  if (!im.running.exchange(false)) return;
  // With every socket, the acceptor and the timer closed, the handlers finish and run() returns.
  asio::post(im.io, [&im] { im.close_all(); });
  if (im.thread.joinable()) im.thread.join();
}

LiveAnswer LiveView::respond(std::string_view method, std::string_view target, std::string_view authorization) {
  return impl_->respond(method, target, authorization);
}

LiveAnswer LiveView::Impl::respond(std::string_view method, std::string_view target, std::string_view authorization) {
  auto& im = *this;
  if (method != "GET" && method != "HEAD") return text(405, "the live view is read-only: only GET and HEAD are served");
  const auto q = target.find('?');
  const std::string path = percent_decode(target.substr(0, q));
  const std::string_view query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  if (!im.authorised(query, authorization)) {
    return text(401, "a token is required: ?token=... or an Authorization: Bearer header");
  }
  if (path == "/" || path == "/index.html") {
    LiveAnswer a;
    a.content_type = "text/html; charset=utf-8";
    a.body = kLiveViewPage;
    return a;
  }
  if (path == "/api/state") {
    LiveAnswer a;
    a.content_type = "application/json";
    a.body = im.state_json().dump(-1, ' ', false, json::error_handler_t::replace);
    return a;
  }
  if (path == "/events") {
    LiveAnswer a;
    a.content_type = "text/event-stream";
    a.event_stream = method == "GET";  // HEAD: the headers only
    return a;
  }
  if (path.starts_with("/preview/") && path.ends_with(".png")) {
    const std::string name = path.substr(9, path.size() - 9 - 4);
    for (int i = 0; i < kPreviewSources; ++i) {
      const auto s = static_cast<PreviewSource>(i);
      if (name != to_string(s)) continue;
      auto snap = im.src.tap.snapshot(s);
      if (snap.version == 0) return text(404, "no " + name + " image yet");
      LiveAnswer a;
      a.content_type = "image/png";
      a.body = std::move(snap.png);
      return a;
    }
    return text(404, "no preview '" + name + "' (frame, input_slm, element_slm)");
  }
  if (path.starts_with("/report/")) {
    const std::string rel = path.substr(8);
    if (!rel.ends_with(".png")) return text(404, "only the report's PNG figures are served");
    auto p = confine_path(im.src.data_dir, rel);
    if (auto* why = std::get_if<std::string>(&p)) return text(403, "forbidden: " + *why);
    const auto& file = std::get<fs::path>(p);
    // Only files a report.json lists beside the run: <run>/<figure>.
    const fs::path relp(rel);
    const fs::path report = im.src.data_dir / *relp.begin() / "report.json";
    std::error_code ec;
    if (!fs::is_regular_file(report, ec) || !fs::is_regular_file(file, ec)) return text(404, "no figure '" + rel + "'");
    std::ifstream in(file, std::ios::binary);
    LiveAnswer a;
    a.content_type = "image/png";
    a.body.assign(std::istreambuf_iterator<char>(in), {});
    return a;
  }
  return text(404, "not found: " + path);
}

}  // namespace hilo::controller
