// Regressions for the daemon's known defects (issue #10): a first dataset load on the I/O thread,
// resumed jobs bypassing limits.max_jobs, a disconnect on the driver's last retry counted twice, a
// failed resume leaving its manifest "running"; and daemon.stats through the handler.
#include <gtest/gtest.h>

#include <future>

#include "harness.hpp"
#include "hilo/controller/capture.hpp"
#include "hilo/drivers/retry.hpp"

namespace hilo::controller::testing {
namespace {

namespace dr = hilo::drivers;
using nlohmann::json;
using namespace std::chrono_literals;

Request req(const std::string& cmd, json args = json::object()) {
  Request r;
  r.id = 1;
  r.cmd = cmd;
  r.args = std::move(args);
  return r;
}

ImageSet tiny_set(std::size_t n) {
  ImageSet s;
  s.count = n;
  s.rows = s.cols = 8;
  s.images.resize(n * 64);
  for (std::size_t i = 0; i < s.images.size(); ++i) s.images[i] = static_cast<std::uint8_t>(i % 251);
  s.labels.assign(n, 3);
  return s;
}

// A dataset whose first load blocks until the test releases it (a slow disk, a 1-2 s decompression).
struct SlowDatasets {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> loads{0};
  DatasetLibrary lib{[this](const std::filesystem::path&, const std::string&) {
    ++loads;
    released.wait();
    return tiny_set(4);
  }};
  SlowDatasets() { lib.add("tiny", "/nonexistent"); }
};

TEST(DatasetLoading, CaptureAndPingAreAnsweredWhileTheFirstLoadRuns) {
  Harness h("dsload");
  SlowDatasets ds;
  Context ctx{h.devices, *h.jobs, *h.catalog, ds.lib, h.dir, Limits{}, CaptureOptions{}, steady_s};
  const json args = {{"dataset", "tiny"}, {"split", "train"}, {"start", 1}, {"count", 2}};
  auto capture = std::async(std::launch::async, [&] { return handle(req("capture", args), ctx); });
  // The reader never returns before release: an answer here proves the handler did not wait for it.
  const bool answered = capture.wait_for(2s) == std::future_status::ready;
  const double t0 = steady_s();
  const Reply ping = handle(req("ping"), ctx);
  const double ping_s = steady_s() - t0;
  // A second capture of the same split while the first load runs is answered too (never blocks on it).
  auto second = std::async(std::launch::async, [&] { return handle(req("capture", args), ctx); });
  const bool second_answered = second.wait_for(2s) == std::future_status::ready;
  ds.release.set_value();
  ASSERT_TRUE(answered) << "capture waited for the dataset load";
  ASSERT_TRUE(second_answered) << "a second capture waited for the dataset load";
  EXPECT_TRUE(ping.body["ok"].get<bool>());
  EXPECT_LT(ping_s, 0.1);
  const Reply r = capture.get();
  ASSERT_TRUE(r.body["ok"].get<bool>()) << r.body.dump();
  EXPECT_EQ(r.body["result"]["total"], 2);
  h.jobs->wait_idle();
  const auto rec = h.jobs->get(r.body["result"]["job_id"].get<std::int64_t>());
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->state, JobState::done) << rec->error;
  EXPECT_EQ(rec->done, 2);
  EXPECT_EQ(ds.loads.load(), 1);  // loaded once, by the job; the second capture used the cache
  const json m = read_manifest(h.dir / rec->run_id);
  EXPECT_EQ(m["state"], "done");
  EXPECT_EQ(m["records"], 2);
}

TEST(DatasetLoading, ARangeBeyondAFirstLoadedSplitFailsTheJobAndLaterCapturesAreRefusedAtOnce) {
  Harness h("dsrange");
  SlowDatasets ds;
  ds.release.set_value();
  Context ctx{h.devices, *h.jobs, *h.catalog, ds.lib, h.dir, Limits{}, CaptureOptions{}, steady_s};
  const json args = {{"dataset", "tiny"}, {"split", "test"}, {"start", 3}, {"count", 2}};
  const Reply r = handle(req("capture", args), ctx);
  ASSERT_TRUE(r.body["ok"].get<bool>()) << r.body.dump();
  h.jobs->wait_idle();
  const auto rec = h.jobs->get(r.body["result"]["job_id"].get<std::int64_t>());
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->state, JobState::failed);
  EXPECT_EQ(rec->error, "[start, start+count) = [3, 5) must be a non-empty range within [0, 4)");
  // Loaded now: the same request is refused by the handler with the same message.
  const Reply again = handle(req("capture", args), ctx);
  ASSERT_FALSE(again.body["ok"].get<bool>());
  EXPECT_EQ(again.body["error"]["code"], "bad_argument");
  EXPECT_EQ(again.body["error"]["message"], rec->error);
}

// An interrupted capture job in the catalog, as a crashed daemon leaves it.
JobRecord interrupted_capture(Catalog& c, json params, std::int64_t total) {
  JobRecord r;
  r.id = c.next_job_id();
  r.kind = "capture";
  r.run_id = "20260101T000000Z-capture-" + std::to_string(r.id);
  r.state = JobState::interrupted;
  r.total = total;
  r.params = std::move(params);
  r.created_s = unix_s();
  c.insert_run(RunRecord{r.run_id, "capture", r.run_id, r.created_s, "interrupted"});
  c.insert_job(r);
  return r;
}

TEST(ResumeAtStart, ResumedJobsCountAgainstMaxJobsAndTheExcessStayInterrupted) {
  Harness h("resumelimit");
  std::vector<JobRecord> old;
  for (int i = 0; i < 3; ++i) old.push_back(interrupted_capture(*h.catalog, {{"inputs_shape", {1, 8, 8}}}, 1));
  // A job that holds the worker, so that nothing resumed can finish while the limit is checked.
  std::promise<void> release;
  auto released = release.get_future().share();
  ASSERT_TRUE(h.jobs->submit("hold", json::object(), 1, [&](const JobRecord&) {
    return JobManager::Work([released](JobControl&) {
      released.wait();
      return JobOutcome{};
    });
  }));
  const std::size_t max_jobs = 3;
  const int queued =
      resume_interrupted_captures(*h.jobs, *h.catalog, h.datasets, h.devices, h.dir, CaptureOptions{}, steady_s, max_jobs);
  EXPECT_EQ(queued, 2);
  EXPECT_EQ(h.jobs->active(), max_jobs);
  EXPECT_EQ(h.catalog->job(old[0].id)->state, JobState::queued);
  EXPECT_EQ(h.catalog->job(old[1].id)->state, JobState::queued);
  const auto third = h.catalog->job(old[2].id);
  EXPECT_EQ(third->state, JobState::interrupted);
  EXPECT_EQ(third->error, resume_deferred_reason(max_jobs));
  // New jobs see the resumed ones too (they have the oldest ids).
  Context ctx = *h.ctx;
  ctx.limits.max_jobs = max_jobs;
  const Reply r = handle(req("capture", {{"dataset", "fashion-mnist"}, {"start", 0}, {"count", 1}}), ctx);
  EXPECT_EQ(r.body["error"]["code"], "too_many_jobs") << r.body.dump();
  release.set_value();
  h.jobs->wait_idle();
  // Their inline inputs were never stored: they end failed, with the reason.
  EXPECT_EQ(h.catalog->job(old[0].id)->state, JobState::failed);
  EXPECT_EQ(h.catalog->job(old[2].id)->state, JobState::interrupted);
}

TEST(ResumeAtStart, AResumeWithoutItsInputsMarksTheManifestFailed) {
  Harness h("resumegone");
  const json params = {{"dataset", "gone"}, {"split", "train"}, {"start", 0}, {"count", 2}};
  const JobRecord rec = interrupted_capture(*h.catalog, params, 2);
  {
    // The previous process wrote the run's first manifest, then crashed.
    RunWriter w(h.dir / rec.run_id, {{"run_id", rec.run_id}, {"kind", "capture"}, {"job_id", rec.id}, {"params", params}});
  }
  ASSERT_EQ(read_manifest(h.dir / rec.run_id)["state"], "running");
  ASSERT_EQ(resume_interrupted_captures(*h.jobs, *h.catalog, h.datasets, h.devices, h.dir, CaptureOptions{}, steady_s, 16), 1);
  h.jobs->wait_idle();
  const auto job = h.catalog->job(rec.id);
  EXPECT_EQ(job->state, JobState::failed);
  EXPECT_EQ(job->error, "cannot resume: inputs unavailable: dataset 'gone' is no longer known to the daemon");
  EXPECT_EQ(h.catalog->run(rec.run_id)->state, "failed");
  const json m = read_manifest(h.dir / rec.run_id);
  EXPECT_EQ(m["state"], "failed");
  EXPECT_EQ(m["error"], job->error);
}

// A camera whose cable comes loose on every grab it is open for: each such grab is one disconnect.
// A grab while closed (nobody reopened it) reports disconnected again without a new disconnect.
class LooseCamera final : public FakeCamera {
 public:
  using FakeCamera::FakeCamera;
  int disconnects = 0, closed_grabs = 0, opens = 0;
  DeviceState state() const override { return open_ ? DeviceState::ready : DeviceState::disconnected; }
  DeviceStatus open() override {
    ++opens;
    open_ = true;
    return std::nullopt;
  }
  void close() override { open_ = false; }
  DeviceResult<dr::Frame> grab(std::chrono::milliseconds) override {
    if (!open_) {
      ++closed_grabs;
      return DeviceError{DeviceErrc::disconnected, "camera 'loose': not open"};
    }
    open_ = false;
    ++disconnects;
    return DeviceError{DeviceErrc::disconnected, "camera 'loose': link lost"};
  }

 private:
  bool open_ = true;
};

TEST(RetryCounters, EveryDisconnectIsCountedOnceIncludingOnTheLastDriverAttempt) {
  Harness h("loose");
  auto owned = std::make_unique<LooseCamera>(h.slm);
  LooseCamera& loose = *owned;
  dr::ManualClock clock;
  dr::RetryPolicy policy;
  policy.max_attempts = 3;
  dr::RetryingCamera cam(std::move(owned), policy, clock);
  std::mutex device_mu;
  Devices devices{h.slm, cam, device_mu};
  devices.camera_retries = &cam.counters();
  CaptureOptions opt;
  opt.max_input_attempts = 2;
  CaptureInputs in;
  in.set = std::make_shared<ImageSet>(tiny_set(1));
  in.count = 1;
  auto rec = h.jobs->submit("capture", json::object(), 1, [&](const JobRecord& r) {
    return JobManager::Work([&, dir = h.dir / r.run_id, base = json{{"run_id", r.run_id}, {"params", json::object()}}](
                                JobControl& ctl) { return run_capture(in, opt, devices, dir, base, ctl, steady_s); });
  });
  ASSERT_TRUE(rec);
  h.jobs->wait_idle();
  const auto done = h.jobs->get(rec->id);
  EXPECT_EQ(done->state, JobState::failed);
  const json c = done->stats.at("capture");
  // 2 show+grab cycles x 3 driver attempts, each one a disconnect, each one reopened.
  EXPECT_EQ(loose.closed_grabs, 0) << "a grab met the device the driver left closed";
  EXPECT_EQ(loose.disconnects, 6);
  EXPECT_EQ(c["camera_driver"]["attempts"], 6);
  EXPECT_EQ(c["camera_driver"]["reconnects"], loose.disconnects);
  EXPECT_EQ(c["camera_driver"]["failures"], 2);
  EXPECT_EQ(c["disconnects"], 2);  // those that reached the capture: one per cycle
  EXPECT_EQ(c["grab_errors"], 2);
  EXPECT_EQ(cam.state(), DeviceState::ready);  // left open for the next operation
}

TEST(DaemonStatsCommand, ReportsJobsByStateAndDeviceCountersToReadOnlyClients) {
  Harness h("stats");
  std::int64_t n = 0;
  h.ctx->daemon_counters = [&n] { return json{{"requests", ++n}, {"replies_dropped", 5}}; };
  interrupted_capture(*h.catalog, json::object(), 1);
  const Reply r = handle(req("daemon.stats"), *h.ctx, Role::read_only);
  ASSERT_TRUE(r.body["ok"].get<bool>()) << r.body.dump();
  const json& s = r.body["result"];
  EXPECT_EQ(s["requests"], 1);
  EXPECT_EQ(s["replies_dropped"], 5);
  EXPECT_EQ(s["jobs"]["interrupted"], 1);
  EXPECT_EQ(s["jobs"]["done"], 0);
  EXPECT_EQ(s["jobs"]["active"], 0);
  EXPECT_EQ(s["devices"], h.devices.counters_json());
  const Reply bad = handle(req("daemon.stats", {{"verbose", true}}), *h.ctx, Role::read_only);
  EXPECT_FALSE(bad.body["ok"].get<bool>());
}

}  // namespace
}  // namespace hilo::controller::testing
