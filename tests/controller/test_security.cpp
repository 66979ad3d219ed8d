// Security and limits of the daemon: CurveZMQ with a client allow-list (ZAP), roles, path confinement,
// message/queue/job limits. Socket tests run an in-process Daemon over the test doubles on
// tcp://127.0.0.1:* (CURVE on loopback stands in for a non-loopback bind, which is never made here).
#include <array>
#include <future>
#include <thread>

#include <boost/asio/post.hpp>
#include <gtest/gtest.h>
#include <zmq_addon.hpp>

#include "harness.hpp"
#include "hilo/controller/daemon.hpp"
#include "hilo/controller/security.hpp"
#include "hilo/sim/npy.hpp"

namespace hilo::controller {
namespace {

using nlohmann::json;
using testing::Harness;
namespace fs = std::filesystem;

struct KeyPair {
  std::string pub, sec;
};
KeyPair keypair() {
  std::array<char, 41> p{}, s{};
  EXPECT_EQ(zmq_curve_keypair(p.data(), s.data()), 0);
  return {p.data(), s.data()};
}

// A daemon over the fakes, served on its own io thread.
struct Served {
  Harness h;
  zmq::context_t zctx{1};
  boost::asio::io_context io;
  EventPublisher events{io, zctx};
  std::unique_ptr<Daemon> daemon;
  std::thread thread;

  Served(const std::string& name, DaemonOptions opt) : h(name) {
    opt.command_endpoint = "tcp://127.0.0.1:*";
    opt.event_endpoint = "tcp://127.0.0.1:*";
    opt.handle_signals = false;
    opt.heartbeat_s = 0.05;
    h.ctx->limits = opt.limits;
    daemon = std::make_unique<Daemon>(io, zctx, opt, *h.ctx, events);
    daemon->start();
    thread = std::thread([this] { io.run(); });
  }
  ~Served() {
    boost::asio::post(io, [this] { daemon->begin_shutdown("test over"); });
    thread.join();
    daemon.reset();
  }
  DaemonStats stats() {
    std::promise<DaemonStats> p;
    boost::asio::post(io, [&] { p.set_value(daemon->stats()); });
    return p.get_future().get();
  }
};

// A DEALER client (empty delimiter, like REQ) with an optional CURVE key pair.
struct Client {
  zmq::context_t ctx{1};
  zmq::socket_t s{ctx, zmq::socket_type::dealer};
  Client(const std::string& endpoint, const KeyPair* mine = nullptr, const std::string& server_pub = "") {
    s.set(zmq::sockopt::linger, 0);
    if (mine) {
      s.set(zmq::sockopt::curve_serverkey, server_pub);
      s.set(zmq::sockopt::curve_publickey, mine->pub);
      s.set(zmq::sockopt::curve_secretkey, mine->sec);
    }
    s.connect(endpoint);
  }
  void send(const json& req, const std::vector<std::string>& parts = {}) {
    s.send(zmq::message_t(), zmq::send_flags::sndmore);
    const auto j = req.dump();
    s.send(zmq::buffer(j), parts.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore);
    for (std::size_t i = 0; i < parts.size(); ++i) {
      s.send(zmq::buffer(parts[i]), i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
  // The reply's JSON, or nullopt when none comes within timeout_ms.
  std::optional<json> recv(int timeout_ms = 5000) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) == 0) return std::nullopt;
    std::vector<zmq::message_t> msgs;
    if (!zmq::recv_multipart(s, std::back_inserter(msgs)) || msgs.size() < 2) {
      ADD_FAILURE() << "reply without an envelope and a JSON part";
      return std::nullopt;
    }
    return json::parse(msgs[1].to_string());
  }
  std::optional<json> call(const json& req, const std::vector<std::string>& parts = {}, int timeout_ms = 5000) {
    send(req, parts);
    return recv(timeout_ms);
  }
};

std::string code_of(const std::optional<json>& r) {
  if (!r || (*r)["ok"].get<bool>()) return "";
  return (*r)["error"]["code"].get<std::string>();
}

json inputs_capture(int n, int id = 1) {
  return {{"id", id}, {"cmd", "capture"}, {"args", {{"inputs", {{"dtype", "|u1"}, {"shape", {n, 8, 8}}, {"part", 1}}}}}};
}

// ------------------------------------------------------------------------------ options and endpoints

TEST(Endpoints, LoopbackIsRecognisedStrictly) {
  for (const char* ep : {"tcp://127.0.0.1:5555", "tcp://127.0.0.2:*", "tcp://127.255.0.9:1", "tcp://localhost:1",
                         "tcp://[::1]:5", "ipc:///tmp/x", "inproc://a"}) {
    EXPECT_TRUE(is_loopback_endpoint(ep)) << ep;
  }
  for (const char* ep : {"tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.168.1.10:5555", "tcp://127.0.0.1.evil.org:1",
                         "tcp://1270.0.0.1:1", "tcp://128.0.0.1:1", "tcp://eth0:5555", "tcp://127.0.0.1:", "udp://127.0.0.1:1",
                         "tcp://127.0.0:1"}) {
    EXPECT_FALSE(is_loopback_endpoint(ep)) << ep;
  }
}

TEST(DaemonOptions, NonLoopbackNeedsKeysAndAnAllowList) {
  DaemonOptions o;
  o.command_endpoint = "tcp://0.0.0.0:5555";
  EXPECT_NE(o.validate().find("requires CurveZMQ keys"), std::string::npos) << o.validate();
  const auto server = keypair();
  o.curve_public_key = server.pub;
  o.curve_secret_key = server.sec;
  o.event_endpoint = "tcp://192.168.1.10:5556";
  EXPECT_NE(o.validate().find("allow-list"), std::string::npos) << o.validate();
  o.client_keys.push_back({keypair().pub, Role::control, "a"});
  EXPECT_EQ(o.validate(), "");
  o.curve_secret_key = "not a key";
  EXPECT_NE(o.validate().find("Z85"), std::string::npos);
}

TEST(DaemonOptions, AllowListWithoutServerKeysIsRefused) {
  DaemonOptions o;
  o.client_keys_file = "keys.txt";
  EXPECT_NE(o.validate().find("needs CurveZMQ server keys"), std::string::npos);
}

TEST(DaemonOptions, StartRefusesAWildcardBindWithoutKeysBeforeBinding) {
  Harness h("wildcard");
  zmq::context_t zctx(1);
  boost::asio::io_context io;
  EventPublisher events(io, zctx);
  DaemonOptions o;
  o.command_endpoint = "tcp://0.0.0.0:*";
  o.handle_signals = false;
  Daemon d(io, zctx, o, *h.ctx, events);
  EXPECT_THROW(d.start(), std::runtime_error);
  EXPECT_EQ(d.command_endpoint(), "");  // nothing was bound
}

TEST(DaemonOptions, LimitsAreValidated) {
  DaemonOptions o;
  o.limits.max_jobs = 0;
  EXPECT_NE(o.validate().find("limits.max_jobs"), std::string::npos);
  o.limits.max_jobs = 1;
  o.limits.max_pending_requests = 0;
  EXPECT_NE(o.validate().find("limits.max_pending_requests"), std::string::npos);
}

// ---------------------------------------------------------------------------------------- allow-list

TEST(ClientKeys, ParsesRolesNamesAndComments) {
  const auto a = keypair(), b = keypair();
  const std::string text = "# hilo clients\n\ncontrol " + a.pub + " alice   # the operator\nread_only " + b.pub + "\n";
  auto r = parse_client_keys(text, "keys.txt");
  ASSERT_TRUE(std::holds_alternative<std::vector<ClientKey>>(r)) << std::get<std::string>(r);
  const auto& k = std::get<std::vector<ClientKey>>(r);
  ASSERT_EQ(k.size(), 2u);
  EXPECT_EQ(k[0].role, Role::control);
  EXPECT_EQ(k[0].name, "alice");
  EXPECT_EQ(k[1].role, Role::read_only);
  EXPECT_EQ(k[1].name, b.pub.substr(0, 8));
}

TEST(ClientKeys, KeyContainingHashIsNotCutAsAComment) {
  // Regression: '#' is a Z85 character; the parser once cut keys at it.
  KeyPair k = keypair();
  for (int i = 0; i < 200 && k.pub.find('#') == std::string::npos; ++i) k = keypair();
  ASSERT_NE(k.pub.find('#'), std::string::npos);
  auto r = parse_client_keys("control " + k.pub + " # no name\n", "keys.txt");
  ASSERT_TRUE(std::holds_alternative<std::vector<ClientKey>>(r)) << std::get<std::string>(r);
  EXPECT_EQ(std::get<std::vector<ClientKey>>(r)[0].public_key, k.pub);
  EXPECT_EQ(std::get<std::vector<ClientKey>>(r)[0].name, k.pub.substr(0, 8));
}

TEST(ClientKeys, RejectsBadLinesNamingTheLine) {
  const auto a = keypair();
  auto err = [](const std::string& text) {
    auto r = parse_client_keys(text, "keys.txt");
    return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : std::string("accepted");
  };
  EXPECT_NE(err("admin " + a.pub).find("keys.txt:1: role must be"), std::string::npos);
  EXPECT_NE(err("# c\ncontrol abc").find("keys.txt:2: public key must be 40 Z85"), std::string::npos);
  EXPECT_NE(err("control " + a.pub + "\nread_only " + a.pub).find("listed twice"), std::string::npos);
  EXPECT_NE(err("control " + a.pub + " n extra").find("unexpected text"), std::string::npos);
  EXPECT_NE(err("# nothing\n").find("names no client key"), std::string::npos);
  EXPECT_NE(err("control").find("expected"), std::string::npos);
}

TEST(Roles, ReadOnlyObservesControlChangesTheBench) {
  for (auto c : {"ping", "version", "devices.list", "devices.status", "jobs.list", "jobs.status", "runs.list", "runs.get",
                 "daemon.stats"}) {
    EXPECT_EQ(required_role(c), Role::read_only) << c;
  }
  for (auto c : command_names()) {
    if (required_role(c) == Role::read_only) continue;
    Harness h("roles");
    const auto r = handle(Request{1, std::string(c), json::object(), {}}, *h.ctx, Role::read_only);
    EXPECT_EQ(r.body["error"]["code"], "forbidden") << c;
  }
  EXPECT_EQ(required_role("some.future.command"), Role::control);
}

// --------------------------------------------------------------------------------------- CURVE + ZAP

struct CurveDaemon : ::testing::Test {
  KeyPair server = keypair(), operator_ = keypair(), observer = keypair(), stranger = keypair();
  std::unique_ptr<Served> d;
  void SetUp() override {
    DaemonOptions o;
    o.curve_public_key = server.pub;
    o.curve_secret_key = server.sec;
    o.client_keys = {{operator_.pub, Role::control, "operator"}, {observer.pub, Role::read_only, "observer"}};
    d = std::make_unique<Served>("curve", o);
  }
};

TEST_F(CurveDaemon, UnlistedKeyGetsNoReplyAndTheDenialIsCounted) {
  Client c(d->daemon->command_endpoint(), &stranger, server.pub);
  EXPECT_EQ(c.call({{"id", 1}, {"cmd", "ping"}}, {}, 1500), std::nullopt);
  EXPECT_GE(d->stats().zap_denied, 1u);
  EXPECT_EQ(d->stats().requests, 0u);
}

TEST_F(CurveDaemon, PlainClientWithoutCurveGetsNoReply) {
  Client c(d->daemon->command_endpoint());
  EXPECT_EQ(c.call({{"id", 1}, {"cmd", "ping"}}, {}, 1500), std::nullopt);
  EXPECT_EQ(d->stats().requests, 0u);
}

TEST_F(CurveDaemon, ClientWithTheWrongServerKeyGetsNoReply) {
  Client c(d->daemon->command_endpoint(), &operator_, keypair().pub);
  EXPECT_EQ(c.call({{"id", 1}, {"cmd", "ping"}}, {}, 1500), std::nullopt);
}

TEST_F(CurveDaemon, ReadOnlyKeyObservesButCannotStartAJobOrDriveDevices) {
  Client c(d->daemon->command_endpoint(), &observer, server.pub);
  auto r = c.call({{"id", 1}, {"cmd", "ping"}});
  ASSERT_TRUE(r);
  EXPECT_TRUE((*r)["ok"].get<bool>());
  EXPECT_TRUE((*c.call({{"id", 2}, {"cmd", "devices.status"}}))["ok"].get<bool>());
  EXPECT_TRUE((*c.call({{"id", 3}, {"cmd", "jobs.list"}}))["ok"].get<bool>());
  r = c.call(inputs_capture(1, 4), {std::string(64, '\x01')});
  EXPECT_EQ(code_of(r), "forbidden");
  EXPECT_EQ((*r)["id"], 4);
  EXPECT_EQ(code_of(c.call({{"id", 5}, {"cmd", "devices.configure"}, {"args", {{"gain_db", 1}}}})), "forbidden");
  EXPECT_EQ(code_of(c.call({{"id", 6}, {"cmd", "shutdown"}})), "forbidden");
  EXPECT_EQ(d->h.slm.shows, 0);
  EXPECT_TRUE(d->h.jobs->list().empty());
}

TEST_F(CurveDaemon, ControlKeyStartsAJob) {
  Client c(d->daemon->command_endpoint(), &operator_, server.pub);
  auto r = c.call(inputs_capture(2), {std::string(128, '\x05')});
  ASSERT_TRUE(r);
  ASSERT_TRUE((*r)["ok"].get<bool>()) << r->dump();
  d->h.jobs->wait_idle();
  EXPECT_EQ(d->h.slm.shows, 2);
  EXPECT_GE(d->stats().zap_allowed, 1u);
}

TEST_F(CurveDaemon, EventsReachOnlyAllowListedSubscribers) {
  auto subscribe = [&](const KeyPair& k) {
    zmq::context_t ctx(1);
    zmq::socket_t sub(ctx, zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    sub.set(zmq::sockopt::curve_serverkey, server.pub);
    sub.set(zmq::sockopt::curve_publickey, k.pub);
    sub.set(zmq::sockopt::curve_secretkey, k.sec);
    sub.set(zmq::sockopt::subscribe, "heartbeat");
    sub.connect(d->daemon->event_endpoint());
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    return zmq::poll(&item, 1, std::chrono::milliseconds(1500)) > 0;
  };
  EXPECT_TRUE(subscribe(observer));
  EXPECT_FALSE(subscribe(stranger));
}

// ------------------------------------------------------------------------------------------- paths

// A data directory with a folder `sub` and a symbolic link `escape` to a folder outside it (returned).
fs::path with_an_escape(const Harness& h, const std::string& tag) {
  fs::create_directories(h.dir / "sub");
  const fs::path outside = h.dir.parent_path() / ("hilo_outside_" + tag + std::to_string(::getpid()));
  fs::create_directories(outside);
  fs::create_directory_symlink(outside, h.dir / "escape");
  return outside;
}

TEST(Paths, ConfinedToTheDataDirectory) {
  Harness h("paths");
  const fs::path outside = with_an_escape(h, "");
  fs::create_directory_symlink(h.dir / "sub", h.dir / "inside");
  auto bad = [&](std::string_view p) { return std::holds_alternative<std::string>(confine_path(h.dir, p)); };
  EXPECT_TRUE(bad("../x.npy"));
  EXPECT_TRUE(bad("sub/../../x.npy"));
  EXPECT_TRUE(bad("sub/.."));
  EXPECT_TRUE(bad("/etc/passwd"));
  EXPECT_TRUE(bad(""));
  EXPECT_TRUE(bad(std::string_view("a\0b", 3)));
  EXPECT_TRUE(bad("escape/x.npy"));
  EXPECT_TRUE(bad("escape"));
  EXPECT_FALSE(bad("sub/x.npy"));
  EXPECT_FALSE(bad("inside/x.npy"));
  EXPECT_FALSE(bad("not/yet/there.npy"));
  EXPECT_EQ(std::get<fs::path>(confine_path(h.dir, "./sub//x.npy")), h.dir / "sub/x.npy");
  fs::remove_all(outside);
}

TEST(Paths, StoredAbsolutePathsAreAcceptedOnlyInsideTheDataDirectory) {
  Harness h("stored_paths");
  const fs::path outside = with_an_escape(h, "stored_");
  auto bad = [&](const fs::path& p) { return std::holds_alternative<std::string>(confine_stored_path(h.dir, p.string())); };
  EXPECT_FALSE(bad(h.dir / "sub" / "x.npy"));
  EXPECT_FALSE(bad("sub/x.npy"));
  EXPECT_EQ(std::get<fs::path>(confine_stored_path(h.dir, (h.dir / "sub" / "x.npy").string())), h.dir / "sub" / "x.npy");
  EXPECT_TRUE(bad(outside / "x.npy"));
  EXPECT_TRUE(bad(h.dir / "escape" / "x.npy"));       // under the directory by name, out through a link
  EXPECT_TRUE(bad(h.dir / "sub" / ".." / ".." / "x.npy"));  // out by '..'
  EXPECT_TRUE(bad(h.dir));                              // the data directory itself is no file
  EXPECT_TRUE(bad("../x.npy"));
  const auto why = std::get<std::string>(confine_stored_path(h.dir, (outside / "x.npy").string()));
  EXPECT_NE(why.find("outside the data directory"), std::string::npos) << why;
  // A data directory given relative to the working directory (hilod --data-dir runs/data) stores
  // relative paths that start with it.
  const fs::path rel_root = fs::relative(h.dir);
  const fs::path stored = (rel_root / "sub" / "x.npy").lexically_normal();
  ASSERT_TRUE(stored.is_relative());
  EXPECT_EQ(std::get<fs::path>(confine_stored_path(rel_root, stored.string())), stored);
  EXPECT_TRUE(std::holds_alternative<std::string>(confine_stored_path(rel_root, (rel_root / "escape" / "x.npy").string())));
  EXPECT_TRUE(std::holds_alternative<std::string>(confine_stored_path(rel_root, (outside / "x.npy").string())));
  fs::remove_all(outside);
}

struct NpyCapture : ::testing::Test {
  Harness h{"npy"};
  fs::path outside = h.dir.parent_path() / ("hilo_outside_npy_" + std::to_string(::getpid()));
  void SetUp() override {
    sim::NpyArray a;
    a.dtype = sim::Dtype::u1;
    a.shape = {3, 8, 8};
    a.bytes.assign(3 * 8 * 8, std::byte{9});
    fs::create_directories(h.dir / "inputs");
    sim::write_npy(h.dir / "inputs" / "set.npy", a);
    fs::create_directories(outside);
    sim::write_npy(outside / "secret.npy", a);
    fs::create_symlink(outside / "secret.npy", h.dir / "inputs" / "link.npy");
  }
  void TearDown() override { fs::remove_all(outside); }
  Reply capture(const std::string& path) {
    return handle(Request{7, "capture", {{"inputs_npy", path}}, {}}, *h.ctx);
  }
};

TEST_F(NpyCapture, DotDotAbsoluteAndSymlinkEscapesAreForbidden) {
  const auto rel_outside = "../" + outside.filename().string() + "/secret.npy";
  for (const auto& p : {rel_outside, (outside / "secret.npy").string(), std::string("inputs/link.npy"),
                        std::string("inputs/../../x.npy")}) {
    const auto r = capture(p);
    EXPECT_EQ(r.body["error"]["code"], "forbidden_path") << p << " " << r.body.dump();
    EXPECT_EQ(r.body["id"], 7);
  }
  EXPECT_TRUE(h.jobs->list().empty());
}

TEST_F(NpyCapture, FileInsideTheDataDirectoryIsCaptured) {
  const auto r = capture("inputs/set.npy");
  ASSERT_TRUE(r.body["ok"].get<bool>()) << r.body.dump();
  h.jobs->wait_idle();
  EXPECT_EQ(h.slm.shows, 3);
  EXPECT_EQ(capture("inputs/none.npy").body["error"]["code"], "not_found");
  EXPECT_EQ(handle(Request{1, "capture", {{"inputs_npy", 5}}, {}}, *h.ctx).body["error"]["code"], "wrong_type");
}

TEST(Paths, RunsGetRefusesARunOrManifestPointingOutside) {
  Harness h("runsget");
  h.catalog->insert_run({"evil-run", "capture", "../../etc", 1.0, "done"});
  auto r = handle(Request{1, "runs.get", {{"run_id", "evil-run"}}, {}}, *h.ctx, Role::read_only);
  EXPECT_EQ(r.body["error"]["code"], "forbidden_path") << r.body.dump();
  fs::create_directories(h.dir / "tampered");
  write_json_atomic(h.dir / "tampered" / "manifest.json", {{"arrays", {{"frames", {{"file", "../../../etc/passwd"}}}}}});
  h.catalog->insert_run({"tampered-run", "capture", "tampered", 2.0, "done"});
  r = handle(Request{2, "runs.get", {{"run_id", "tampered-run"}, {"arrays", {"frames"}}}, {}}, *h.ctx, Role::read_only);
  EXPECT_EQ(r.body["error"]["code"], "forbidden_path") << r.body.dump();
}

// ------------------------------------------------------------------------------------------ limits

Served* served_with(std::unique_ptr<Served>& s, const std::string& name, Limits l) {
  DaemonOptions o;
  o.limits = l;
  s = std::make_unique<Served>(name, o);
  return s.get();
}

TEST(Limits, OversizedJsonAndMessageAreAnsweredTooLarge) {
  Limits l;
  l.max_json_bytes = 1024;
  l.max_message_bytes = 4096;
  std::unique_ptr<Served> s;
  served_with(s, "toolarge", l);
  Client c(s->daemon->command_endpoint());
  auto r = c.call({{"id", 1}, {"cmd", "ping"}, {"args", {{"pad", std::string(2000, 'x')}}}});
  EXPECT_EQ(code_of(r), "too_large");
  r = c.call({{"id", 2}, {"cmd", "ping"}}, {std::string(3000, 'a'), std::string(3000, 'b')});
  EXPECT_EQ(code_of(r), "too_large");
  // A single frame over the hard limit drops that connection; the daemon keeps serving the others.
  c.send({{"id", 3}, {"cmd", "ping"}}, {std::string(8192, 'c')});
  EXPECT_EQ(c.recv(800), std::nullopt);
  Client other(s->daemon->command_endpoint());
  r = other.call({{"id", 4}, {"cmd", "ping"}});
  ASSERT_TRUE(r);
  EXPECT_TRUE((*r)["ok"].get<bool>());
}

TEST(Limits, RequestsBeyondTheQueueAreAnsweredOverloaded) {
  Limits l;
  l.max_pending_requests = 4;
  std::unique_ptr<Served> s;
  served_with(s, "overload", l);
  // A slow grab holds the I/O thread while a second client's 40 pings pile up behind it.
  s->h.camera.on_grab = [](std::uint64_t) { std::this_thread::sleep_for(std::chrono::milliseconds(400)); };
  Client slow(s->daemon->command_endpoint()), burst(s->daemon->command_endpoint());
  ASSERT_TRUE(burst.call({{"id", -1}, {"cmd", "ping"}}));  // connected before the burst
  slow.send({{"id", 0}, {"cmd", "camera.grab"}});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (int i = 1; i <= 40; ++i) burst.send({{"id", i}, {"cmd", "ping"}});
  int ok = 0, overloaded = 0;
  std::set<int> ids;
  for (int i = 0; i < 40; ++i) {
    auto r = burst.recv();
    ASSERT_TRUE(r) << "request " << i << " unanswered";
    ids.insert((*r)["id"].get<int>());
    if ((*r)["ok"].get<bool>()) ++ok;
    else if (code_of(r) == "overloaded") ++overloaded;
  }
  EXPECT_EQ(ids.size(), 40u);  // every request answered once, each with its own id
  EXPECT_GE(overloaded, 1);
  EXPECT_GE(ok, 4);
  EXPECT_EQ(ok + overloaded, 40);
  ASSERT_TRUE(slow.recv());
  const auto st = s->stats();
  EXPECT_EQ(st.overloaded, static_cast<std::uint64_t>(overloaded));
  EXPECT_LE(st.max_queue_depth, 4u);
  auto r = burst.call({{"id", 99}, {"cmd", "ping"}});  // the queue drained: served again
  ASSERT_TRUE(r);
  EXPECT_TRUE((*r)["ok"].get<bool>());
}

TEST(Limits, JobsBeyondTheLimitAreAnsweredTooManyJobs) {
  Limits l;
  l.max_jobs = 2;
  std::unique_ptr<Served> s;
  served_with(s, "jobs", l);
  s->h.camera.on_grab = [](std::uint64_t) { std::this_thread::sleep_for(std::chrono::milliseconds(20)); };
  Client c(s->daemon->command_endpoint());
  const std::vector<std::string> part{std::string(20 * 64, '\x03')};
  EXPECT_TRUE((*c.call(inputs_capture(20, 1), part))["ok"].get<bool>());
  EXPECT_TRUE((*c.call(inputs_capture(20, 2), part))["ok"].get<bool>());
  auto r = c.call(inputs_capture(20, 3), part);
  EXPECT_EQ(code_of(r), "too_many_jobs");
  EXPECT_NE((*r)["error"]["message"].get<std::string>().find("limit is 2"), std::string::npos);
  for (int id : {1, 2}) c.call({{"id", 10 + id}, {"cmd", "jobs.cancel"}, {"args", {{"job_id", id}}}});
  s->h.jobs->wait_idle();
  EXPECT_TRUE((*c.call(inputs_capture(1, 4), {std::string(64, '\x03')}))["ok"].get<bool>());
}

}  // namespace
}  // namespace hilo::controller
