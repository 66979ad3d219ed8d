// Protocol parsing and command handling, without sockets.
#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include <cstring>
#include <random>

#include "harness.hpp"
#include "hilo/drivers/placed_slm.hpp"
#include "hilo/sim/npy.hpp"

using namespace hilo::controller;
using namespace hilo::controller::testing;
using nlohmann::json;

namespace {

std::vector<std::string> frames_of(const json& j, std::vector<std::string> parts = {}) {
  std::vector<std::string> f{j.dump()};
  f.insert(f.end(), parts.begin(), parts.end());
  return f;
}

// Handles and returns the reply; checks the envelope every reply must have.
Reply call(Harness& h, const std::vector<std::string>& frames) {
  Reply r = handle_frames(frames, *h.ctx);
  EXPECT_TRUE(r.body.contains("id"));
  EXPECT_TRUE(r.body["ok"].is_boolean());
  if (r.body["ok"] == true) {
    EXPECT_TRUE(r.body.contains("result"));
  } else {
    EXPECT_TRUE(r.body["error"]["code"].is_string());
    EXPECT_TRUE(r.body["error"]["message"].is_string());
    EXPECT_FALSE(r.body["error"]["message"].get<std::string>().empty());
  }
  return r;
}

Reply call(Harness& h, const std::string& cmd, json args = json::object(), std::vector<std::string> parts = {}) {
  if (args.is_null()) args = json::object();  // `{}` in a call converts to null
  return call(h, frames_of({{"id", 1}, {"cmd", cmd}, {"args", args}}, std::move(parts)));
}

std::string code(const Reply& r) { return r.body["ok"] == true ? "ok" : r.body["error"]["code"].get<std::string>(); }

std::string parse_code(const std::vector<std::string>& frames, const Limits& lim = {}) {
  auto p = parse(frames, lim);
  if (auto* e = std::get_if<ProtocolError>(&p)) return std::string(to_string(e->code));
  return "ok";
}

json pattern_desc(std::size_t rows, std::size_t cols, const char* dtype = "|u1", int part = 1) {
  return {{"dtype", dtype}, {"shape", {rows, cols}}, {"part", part}};
}

}  // namespace

TEST(Protocol, ParseRejectsEveryMalformedEnvelopeWithItsCode) {
  EXPECT_EQ(parse_code({}), "bad_parts");
  EXPECT_EQ(parse_code({"{\"id\": 1, \"cmd\": \"ping\""}), "malformed_json");
  EXPECT_EQ(parse_code({""}), "malformed_json");
  EXPECT_EQ(parse_code({"[1, 2]"}), "not_an_object");
  EXPECT_EQ(parse_code({"42"}), "not_an_object");
  EXPECT_EQ(parse_code({"\"ping\""}), "not_an_object");
  EXPECT_EQ(parse_code({R"({"cmd": "ping"})"}), "missing_field");
  EXPECT_EQ(parse_code({R"({"id": 1})"}), "missing_field");
  EXPECT_EQ(parse_code({R"({"id": 1, "cmd": 5})"}), "wrong_type");
  EXPECT_EQ(parse_code({R"({"id": 1, "cmd": "ping", "args": [1]})"}), "wrong_type");
  EXPECT_EQ(parse_code({R"({"id": 1, "cmd": "ping", "v": 2})"}), "unsupported_version");
  EXPECT_EQ(parse_code({R"({"id": 1, "cmd": "ping", "v": "1"})"}), "wrong_type");
  EXPECT_EQ(parse_code({R"({"id": 1, "cmd": "ping", "v": 1})"}), "ok");
  EXPECT_EQ(parse_code({"{\"id\": 1, \"cmd\": \"p\xff\xfeing\"}"}), "malformed_json");  // invalid UTF-8

  Limits lim;
  lim.max_json_bytes = 100;
  lim.max_message_bytes = 1000;
  lim.max_parts = 2;
  EXPECT_EQ(parse_code({R"({"id": 1, "cmd": "ping", "args": {"pad": ")" + std::string(200, 'x') + "\"}}"}, lim), "too_large");
  EXPECT_EQ(parse_code({R"({"id": 1, "cmd": "ping"})", std::string(2000, 'x')}, lim), "too_large");
  EXPECT_EQ(parse_code({R"({"id": 1, "cmd": "ping"})", "a", "b", "c"}, lim), "bad_parts");
}

TEST(Protocol, BinaryGarbageNeverCrashesAndAlwaysGetsAnErrorReply) {
  Harness h("garbage");
  std::mt19937_64 rng(42);
  for (int i = 0; i < 300; ++i) {
    std::string g(rng() % 200, '\0');
    for (auto& c : g) c = static_cast<char>(rng());
    const Reply r = call(h, std::vector<std::string>{g});
    EXPECT_EQ(r.body["ok"], false);
    EXPECT_TRUE(r.body["id"].is_null());
  }
  EXPECT_EQ(code(call(h, "ping")), "ok");
}

TEST(Protocol, RepliesEchoTheRequestIdOfAnyJsonType) {
  Harness h("ids");
  for (const json id : {json(7), json("abc"), json({{"a", 1}}), json(nullptr), json::array({1, 2})}) {
    const Reply r = call(h, frames_of({{"id", id}, {"cmd", "ping"}}));
    EXPECT_EQ(r.body["id"], id);
    EXPECT_EQ(r.body["result"]["pong"], true);
  }
  const Reply bad = call(h, frames_of({{"id", "x9"}, {"cmd", "nope"}}));
  EXPECT_EQ(bad.body["id"], "x9");
  EXPECT_EQ(code(bad), "unknown_command");
}

TEST(Protocol, VersionReportsTheProtocolVersionAndCommands) {
  Harness h("version");
  const Reply r = call(h, "version");
  EXPECT_EQ(r.body["result"]["protocol_version"], kProtocolVersion);
  const auto cmds = r.body["result"]["commands"];
  for (const char* c : {"ping", "capture", "camera.grab", "slm.show", "runs.get", "jobs.cancel", "shutdown"}) {
    EXPECT_NE(std::find(cmds.begin(), cmds.end(), c), cmds.end()) << c;
  }
}

TEST(Protocol, ArgumentErrorsHaveStableCodes) {
  Harness h("args");
  EXPECT_EQ(code(call(h, "ping", {{"extra", 1}})), "bad_argument");
  EXPECT_EQ(code(call(h, "ping", {}, {"stray part"})), "bad_parts");
  EXPECT_EQ(code(call(h, "jobs.status")), "missing_field");
  EXPECT_EQ(code(call(h, "jobs.status", {{"job_id", "one"}})), "wrong_type");
  EXPECT_EQ(code(call(h, "jobs.status", {{"job_id", 1.5}})), "wrong_type");
  EXPECT_EQ(code(call(h, "jobs.status", {{"job_id", 999}})), "not_found");
  EXPECT_EQ(code(call(h, "jobs.cancel", {{"job_id", 999}})), "not_found");
  EXPECT_EQ(code(call(h, "jobs.list", {{"limit", 0}})), "bad_argument");
  EXPECT_EQ(code(call(h, "runs.get", {{"run_id", 3}})), "wrong_type");
  EXPECT_EQ(code(call(h, "runs.get", {{"run_id", "nope"}})), "not_found");
  EXPECT_EQ(code(call(h, "runs.get", {{"run_id", "nope"}, {"arrays", "frames"}})), "wrong_type");
  EXPECT_EQ(code(call(h, "camera.grab", {{"timeout_ms", "fast"}})), "wrong_type");
  EXPECT_EQ(code(call(h, "camera.grab", {{"timeout_ms", 0}})), "bad_argument");
  EXPECT_EQ(code(call(h, "devices.configure")), "missing_field");
  EXPECT_EQ(code(call(h, "devices.configure", {{"exposure_ms", "long"}})), "wrong_type");
  EXPECT_EQ(code(call(h, "devices.configure", {{"exposure_ms", -1}})), "bad_argument");
  EXPECT_EQ(code(call(h, "devices.configure", {{"pixel_format", "rgb"}})), "bad_argument");
  EXPECT_EQ(code(call(h, "devices.configure", {{"colour", "red"}})), "bad_argument");
  EXPECT_EQ(code(call(h, "capture")), "missing_field");
  EXPECT_EQ(code(call(h, "capture", {{"dataset", "fashion-mnist"}, {"start", 0}})), "missing_field");
  EXPECT_EQ(code(call(h, "capture", {{"dataset", "fashion-mnist"}, {"start", "0"}, {"count", 1}})), "wrong_type");
  EXPECT_EQ(code(call(h, "capture", {{"dataset", "fashion-mnist"}, {"start", -1}, {"count", 1}})), "bad_argument");
  // Range and placement against a split are checked at once when it is loaded (a first capture leaves
  // them to its job, test_daemon_defects.cpp).
  (void)h.datasets.get("fashion-mnist", "train");
  EXPECT_EQ(code(call(h, "capture", {{"dataset", "fashion-mnist"}, {"start", 59999}, {"count", 2}})), "bad_argument");
  EXPECT_EQ(code(call(h, "capture", {{"dataset", "fashion-mnist"}, {"start", 0}, {"count", 0}})), "bad_argument");
  EXPECT_EQ(code(call(h, "capture", {{"dataset", "fashion-mnist"}, {"split", "val"}, {"start", 0}, {"count", 1}})),
            "bad_argument");
  EXPECT_EQ(code(call(h, "capture", {{"dataset", "cifar"}, {"start", 0}, {"count", 1}})), "not_found");
  EXPECT_EQ(code(call(h, "capture", {{"dataset", "fashion-mnist"}, {"start", 0}, {"count", 1}, {"scale", 2}})),
            "bad_argument");  // 28·2 > 32
  EXPECT_EQ(code(call(h, "capture", {{"dataset", "fashion-mnist"}, {"start", 0}, {"count", 1}}, {"x"})), "bad_parts");
  // The content check's options: each bad value named with its rule.
  auto content = [&](json cc) {
    return call(h, "capture", {{"dataset", "fashion-mnist"}, {"start", 0}, {"count", 1}, {"content_check", cc}});
  };
  const Reply corr = content({{"min_correlation", 2}});
  EXPECT_EQ(code(corr), "bad_argument");
  EXPECT_EQ(corr.body["error"]["message"], "args.content_check.min_correlation must be in (0, 1), got 2.000000");
  const Reply regrabs = content({{"max_regrabs", -1}});
  EXPECT_EQ(regrabs.body["error"]["message"], "args.content_check.max_regrabs must be in [0, 100], got -1");
  const Reply typo = content({{"min_corelation", 0.5}});
  EXPECT_EQ(code(typo), "bad_argument");
  EXPECT_NE(typo.body["error"]["message"].get<std::string>().find("min_correlation"), std::string::npos)
      << typo.body.dump();
  EXPECT_EQ(code(content({{"enabled", "yes"}})), "bad_argument");
  // Nothing above may have touched a device or started a job.
  EXPECT_EQ(h.slm.shows, 0);
  EXPECT_EQ(code(call(h, "jobs.list")), "ok");
  EXPECT_TRUE(call(h, "jobs.list").body["result"]["jobs"].empty());
}

TEST(Protocol, SlmShowChecksItsBinaryPart) {
  Harness h("show");
  std::string px(32 * 32, '\x05');
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", pattern_desc(32, 32)}})), "bad_parts");            // no part
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", pattern_desc(32, 32)}}, {px, px})), "bad_parts");  // extra part
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", pattern_desc(32, 32)}}, {px.substr(1)})), "bad_parts");
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", pattern_desc(32, 32, "|u1", 2)}}, {px})), "bad_parts");
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", pattern_desc(16, 64)}}, {px})), "bad_argument");
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", pattern_desc(32, 32, "<f4")}}, {px + px + px + px})), "bad_argument");
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", pattern_desc(32, 32, "<c8")}}, {px})), "bad_argument");
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", {{"dtype", "|u1"}, {"shape", {32, 32}}}}}, {px})), "missing_field");
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", {{"dtype", "|u1"}, {"shape", "32x32"}, {"part", 1}}}}, {px})), "wrong_type");
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", 5}}, {px})), "wrong_type");
  EXPECT_EQ(h.slm.shows, 0);
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", pattern_desc(32, 32)}}, {px})), "ok");
  ASSERT_EQ(h.slm.shows, 1);
  EXPECT_EQ(h.slm.last.at<std::uint8_t>(31, 31), 5);
}

TEST(Protocol, CameraGrabReturnsTheFrameAsADescribedPart) {
  Harness h("grab");
  h.slm.last = cv::Mat(32, 32, CV_8UC1, cv::Scalar(10));
  h.slm.last.at<std::uint8_t>(3, 4) = 200;
  const Reply r = call(h, "camera.grab");
  ASSERT_EQ(code(r), "ok");
  const auto d = r.body["result"]["frame"];
  EXPECT_EQ(d["dtype"], "<u2");
  EXPECT_EQ(d["shape"], json({32, 32}));
  ASSERT_EQ(d["part"], 1);
  ASSERT_EQ(r.parts.size(), 1u);
  ASSERT_EQ(r.parts[0].size(), 32u * 32u * 2u);
  std::uint16_t v = 0;
  std::memcpy(&v, r.parts[0].data() + 2 * (3 * 32 + 4), 2);
  EXPECT_EQ(v, 3 * 200 + 7);
  // The wire frames: JSON first, then the part.
  const auto wire = serialize(r);
  ASSERT_EQ(wire.size(), 2u);
  EXPECT_EQ(json::parse(wire[0])["result"]["sequence"], 0);
}

TEST(Protocol, DeviceFailuresBecomeDeviceErrorsAndTheCallerMistakesBadArguments) {
  Harness h("devfail");
  h.camera.fail = DeviceError{DeviceErrc::timeout, "camera 'fake-camera': grab timed out after 5 ms"};
  const Reply r = call(h, "camera.grab", {{"timeout_ms", 5}});
  EXPECT_EQ(code(r), "device_error");
  EXPECT_NE(r.body["error"]["message"].get<std::string>().find("timed out"), std::string::npos);
  h.camera.fail.reset();
  EXPECT_EQ(code(call(h, "devices.configure", {{"exposure_ms", 5000}})), "bad_argument");  // device refuses
  h.slm.fail = DeviceError{DeviceErrc::disconnected, "slm 'fake-slm': gone"};
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", pattern_desc(32, 32)}}, {std::string(1024, '\0')})), "device_error");
}

TEST(Protocol, ConfigureAppliesSettingsAndAnnouncesTheDeviceState) {
  Harness h("configure");
  const Reply r = call(h, "devices.configure", {{"exposure_ms", 2.5}, {"gain_db", 3}, {"pixel_format", "mono12"},
                                                 {"trigger_mode", "free_run"}});
  ASSERT_EQ(code(r), "ok");
  EXPECT_EQ(h.camera.exposure, 2.5);
  EXPECT_EQ(h.camera.gain, 3.0);
  EXPECT_EQ(h.camera.format, hilo::drivers::PixelFormat::mono12);
  EXPECT_EQ(h.camera.trigger, hilo::drivers::TriggerMode::free_run);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].first, "device.state");
  EXPECT_EQ(r.events[0].second["status"]["exposure_ms"], 2.5);
  const Reply st = call(h, "devices.status");
  EXPECT_EQ(st.body["result"]["camera"]["pixel_format"], "mono12");
  const Reply ls = call(h, "devices.list");
  ASSERT_EQ(ls.body["result"]["devices"].size(), 2u);
  EXPECT_EQ(ls.body["result"]["devices"][0]["width_px"], 32);
}

TEST(Protocol, DeviceCommandsAnswerBusyWhileTheDevicesAreHeld) {
  Harness h("busy");
  std::lock_guard held(h.devices.mutex);  // as a running capture holds it
  EXPECT_EQ(code(call(h, "camera.grab")), "busy");
  EXPECT_EQ(code(call(h, "devices.configure", {{"gain_db", 1}})), "busy");
  EXPECT_EQ(code(call(h, "slm.show", {{"pattern", pattern_desc(32, 32)}}, {std::string(1024, '\0')})), "busy");
  EXPECT_EQ(call(h, "devices.status").body["result"]["in_use"], true);
  EXPECT_EQ(code(call(h, "ping")), "ok");
}

TEST(Protocol, CaptureOfInlineInputsStoresEveryFrameAndRunsGetReturnsThem) {
  Harness h("inline");
  const std::size_t n = 5, rows = 8, cols = 10;
  std::string inputs(n * rows * cols, '\0');
  for (std::size_t i = 0; i < inputs.size(); ++i) inputs[i] = static_cast<char>(i % 251);
  const Reply r = call(h, "capture", {{"inputs", {{"dtype", "|u1"}, {"shape", {n, rows, cols}}, {"part", 1}}}, {"chunk_records", 2}},
                       {inputs});
  ASSERT_EQ(code(r), "ok") << r.body.dump();
  h.jobs->wait_idle();
  const auto job_id = r.body["result"]["job_id"].get<std::int64_t>();
  const Reply st = call(h, "jobs.status", {{"job_id", job_id}});
  EXPECT_EQ(st.body["result"]["job"]["state"], "done");
  EXPECT_EQ(st.body["result"]["job"]["done"], n);

  const std::string run_id = r.body["result"]["run_id"];
  const Reply g = call(h, "runs.get", {{"run_id", run_id}, {"arrays", {"frames", "inputs", "indices"}}});
  ASSERT_EQ(code(g), "ok") << g.body.dump();
  const auto& res = g.body["result"];
  EXPECT_EQ(res["manifest"]["state"], "done");
  EXPECT_EQ(res["manifest"]["records"], n);
  EXPECT_EQ(res["manifest"]["placement"]["scale"], 3);  // 8·3 <= 32, 10·3 <= 32
  EXPECT_EQ(res["arrays"]["frames"]["shape"], json({n, 32, 32}));
  EXPECT_EQ(res["arrays"]["inputs"]["shape"], json({n, rows, cols}));
  ASSERT_EQ(g.parts.size(), 3u);
  EXPECT_EQ(g.parts[1], inputs);
  // Every frame is the fake camera's function of the placed input.
  for (std::size_t k = 0; k < n; ++k) {
    const cv::Mat placed = hilo::drivers::place_pattern(cv::Mat(rows, cols, CV_8UC1, const_cast<char*>(inputs.data()) + k * rows * cols), 32, 32, 8);
    const cv::Mat expect = FakeCamera::expected_frame(placed);
    const cv::Mat got(32, 32, CV_16UC1, const_cast<char*>(g.parts[0].data()) + k * 32 * 32 * 2);
    EXPECT_EQ(cv::norm(expect, got, cv::NORM_INF), 0.0) << "frame " << k;
  }
  // Events: state changes queued → running → done and a final progress of n/n.
  std::vector<std::string> states;
  for (const auto& [t, b] : h.events_of("job.state")) states.push_back(b["state"]);
  EXPECT_EQ(states, (std::vector<std::string>{"queued", "running", "done"}));
  ASSERT_FALSE(h.events_of("job.progress").empty());
  EXPECT_EQ(h.events_of("job.progress").back().second["done"], n);
  const Reply runs = call(h, "runs.list");
  ASSERT_EQ(runs.body["result"]["runs"].size(), 1u);
  EXPECT_EQ(runs.body["result"]["runs"][0]["state"], "done");
  EXPECT_EQ(code(call(h, "runs.get", {{"run_id", run_id}, {"arrays", {"labels"}}})), "not_found");
}

TEST(Protocol, CaptureOfAFashionMnistSliceStoresLabelsAndIndices) {
  Harness h("fmnist");
  const Reply r = call(h, "capture", {{"dataset", "fashion-mnist"}, {"start", 100}, {"count", 7}});
  ASSERT_EQ(code(r), "ok") << r.body.dump();
  h.jobs->wait_idle();
  const auto set = read_idx_split("/usr/share/datasets/fashion-mnist", "train");
  const Reply g = call(h, "runs.get", {{"run_id", r.body["result"]["run_id"]}, {"arrays", {"inputs", "labels", "indices"}}});
  ASSERT_EQ(code(g), "ok");
  EXPECT_EQ(g.parts[0], std::string(reinterpret_cast<const char*>(set.images.data()) + 100 * 784, 7 * 784));
  EXPECT_EQ(g.parts[1], std::string(reinterpret_cast<const char*>(set.labels.data()) + 100, 7));
  std::int64_t idx[7];
  std::memcpy(idx, g.parts[2].data(), sizeof idx);
  EXPECT_EQ(idx[0], 100);
  EXPECT_EQ(idx[6], 106);
}

TEST(Protocol, CancellingARunningCaptureKeepsTheFramesGrabbedBeforeIt) {
  Harness h("cancel");
  std::int64_t job_id = -1;
  // The camera drives the test: at its 4th frame it cancels the job that is grabbing it.
  h.camera.on_grab = [&](std::uint64_t seq) {
    if (seq == 3) {
      const Reply c = call(h, "jobs.cancel", {{"job_id", job_id}});
      EXPECT_EQ(c.body["result"]["job"]["stop_requested"], true);
    }
  };
  std::unique_lock hold(h.devices.mutex);  // keep the job from starting until job_id is known
  const Reply r = call(h, "capture", {{"dataset", "fashion-mnist"}, {"start", 0}, {"count", 50}});
  ASSERT_EQ(code(r), "ok");
  job_id = r.body["result"]["job_id"];
  hold.unlock();
  h.jobs->wait_idle();
  const Reply st = call(h, "jobs.status", {{"job_id", job_id}});
  EXPECT_EQ(st.body["result"]["job"]["state"], "cancelled");
  EXPECT_EQ(st.body["result"]["job"]["done"], 4);
  const Reply g = call(h, "runs.get", {{"run_id", r.body["result"]["run_id"]}, {"arrays", {"frames"}}});
  EXPECT_EQ(g.body["result"]["manifest"]["state"], "cancelled");
  EXPECT_EQ(g.body["result"]["arrays"]["frames"]["shape"][0], 4);
  EXPECT_EQ(code(call(h, "jobs.cancel", {{"job_id", job_id}})), "ok");  // already final: unchanged
}

// jobs.cancel reaches a job's work through the one progress-and-stop shape (io::WorkControl): work
// polling it stops before its next unit, and the job ends cancelled.
TEST(Protocol, CancelReachesTheJobsWorkControlBeforeItsNextUnit) {
  Harness h("workcontrol");
  std::atomic<std::int64_t> job_id{-1};
  std::atomic<int> units{0};
  std::promise<void> known;
  auto known_f = known.get_future().share();
  auto rec = h.jobs->submit("units", json::object(), 1000, [&](const JobRecord&) {
    return JobManager::Work([&, known_f](JobControl& ctl) {
      known_f.wait();
      const hilo::io::WorkControl work = ctl.work();
      for (int i = 0; i < 1000; ++i) {
        if (work.stop_requested()) return JobOutcome{JobState::cancelled, {}};
        ++units;
        work.report(i + 1, 1000, "units");
        if (i + 1 == 5) h.jobs->cancel(job_id);
      }
      return JobOutcome{};
    });
  });
  ASSERT_TRUE(rec);
  job_id = rec->id;
  known.set_value();
  h.jobs->wait_idle();
  EXPECT_EQ(units, 5);
  const Reply st = call(h, "jobs.status", {{"job_id", job_id.load()}});
  EXPECT_EQ(st.body["result"]["job"]["state"], "cancelled");
  EXPECT_EQ(st.body["result"]["job"]["done"], 5);
}

TEST(Protocol, ADeviceFailureMidCaptureFailsTheJobButKeepsEarlierFrames) {
  Harness h("midfail");
  h.camera.on_grab = [&](std::uint64_t seq) {
    if (seq == 6) h.camera.fail = DeviceError{DeviceErrc::disconnected, "camera 'fake-camera': cable pulled"};
  };
  const Reply r = call(h, "capture", {{"dataset", "fashion-mnist"}, {"start", 0}, {"count", 20}});
  ASSERT_EQ(code(r), "ok");
  h.jobs->wait_idle();
  const auto job = call(h, "jobs.status", {{"job_id", r.body["result"]["job_id"]}}).body["result"]["job"];
  EXPECT_EQ(job["state"], "failed");
  EXPECT_NE(job["error"].get<std::string>().find("cable pulled"), std::string::npos);
  const Reply g = call(h, "runs.get", {{"run_id", r.body["result"]["run_id"]}, {"arrays", {"frames"}}});
  EXPECT_EQ(g.body["result"]["arrays"]["frames"]["shape"][0], 6);
}

TEST(Protocol, ShutdownRepliesThenAsksTheDaemonToStopAndLaterJobsAreRefused) {
  Harness h("shutdown");
  const Reply r = call(h, "shutdown");
  EXPECT_EQ(code(r), "ok");
  EXPECT_TRUE(r.shutdown_after);
  h.ctx->shutting_down = true;
  EXPECT_EQ(code(call(h, "capture", {{"dataset", "fashion-mnist"}, {"start", 0}, {"count", 1}})), "shutting_down");
  EXPECT_EQ(code(call(h, "ping")), "ok");
}
