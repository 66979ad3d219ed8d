// hilo-bench-log: what hilod's log (hilo::controller::Log over spdlog) costs per line, against the
// logger we would otherwise write ourselves, measured in the same run.
//
//   hilo-bench-log [--lines N] [--threads T] [--reps R] [--dir DIR]
//
// Both write the same structured JSON line ("error reply" with five context fields, as the daemon logs
// a bad request) to a file in DIR, flushed after every line (hilod's policy), from T threads:
//   reference  std::mutex + std::FILE* (fwrite, fflush), UTC time by gmtime_r/strftime + milliseconds,
//              the fields dumped by nlohmann::json, a byte counter that would trigger rotation;
//   spdlog     hilo::controller::Log with --log-format json and a rotating file (large enough not to rotate).
// Also the cost of a call below the level (debug at level info), where both only compare a level.
// The best of R repetitions is reported (other load only adds time), and the ratio spdlog / reference.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "hilo/controller/log.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ReferenceLog {
 public:
  explicit ReferenceLog(const fs::path& p) : f_(std::fopen(p.c_str(), "a")) {}
  ~ReferenceLog() { std::fclose(f_); }
  bool enabled(int level) const { return level >= level_; }
  void log(int level, const char* lvl, std::string_view msg, const json& fields) {
    if (!enabled(level)) return;
    json obj = {{"msg", msg}};
    for (const auto& [k, v] : fields.items()) obj[k] = v;
    const std::string body = obj.dump(-1, ' ', false, json::error_handler_t::replace);
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char ts[40];
    const std::size_t n = std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(ts + n, sizeof ts - n, ".%03dZ", static_cast<int>(ms));
    std::string line = std::string(R"({"time":")") + ts + R"(","level":")" + lvl + R"(","logger":"hilod",)" +
                       body.substr(1) + "\n";
    std::lock_guard lk(mu_);
    bytes_ += line.size();  // where a rotation would be triggered
    std::fwrite(line.data(), 1, line.size(), f_);
    std::fflush(f_);
  }

 private:
  std::mutex mu_;
  std::FILE* f_;
  std::size_t bytes_ = 0;
  int level_ = 2;
};

const json kFields = {{"cmd", "devices.configure"}, {"id", 17}, {"client", "127.0.0.1"}, {"role", "control"},
                      {"code", "wrong_type"}, {"error", "args.exposure_ms must be a number"}};

template <typename F>
double best_seconds(int reps, int threads, long lines, F&& one) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&] {
        for (long i = 0; i < lines / threads; ++i) one(i);
      });
    }
    for (auto& t : ts) t.join();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hilo-bench-log — hilod's spdlog log against a hand-written logger"};
  long lines = 20000;
  int threads = 1, reps = 3;
  std::string dir = fs::temp_directory_path() / ("hilo-bench-log-" + std::to_string(::getpid()));
  app.add_option("--lines", lines, "lines per repetition")->capture_default_str();
  app.add_option("--threads", threads, "threads writing at once")->capture_default_str();
  app.add_option("--reps", reps, "repetitions (best counts)")->capture_default_str();
  app.add_option("--dir", dir, "directory of the log files (removed at the end)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  fs::create_directories(dir);

  ReferenceLog ref(fs::path(dir) / "reference.log");
  hilo::controller::LogOptions o;
  o.format = "json";
  o.to_stderr = false;
  o.file = fs::path(dir) / "spdlog.log";
  o.file_max_bytes = 1u << 30;
  hilo::controller::Log log(o);

  const double t_ref = best_seconds(reps, threads, lines, [&](long i) {
    (void)i;
    ref.log(3, "warning", "error reply", kFields);
  });
  const double t_spd = best_seconds(reps, threads, lines, [&](long) { log.warn("error reply", kFields); });
  const long quiet = lines * 100;
  const double q_ref = best_seconds(reps, threads, quiet, [&](long) { ref.log(1, "debug", "request", kFields); });
  const double q_spd = best_seconds(reps, threads, quiet, [&](long) { log.debug("request", kFields); });

  const auto ns = [&](double s, long n) { return 1e9 * s / static_cast<double>(n); };
  std::printf("hilo-bench-log: %ld lines x %d thread(s), best of %d, JSON lines flushed per line\n", lines, threads, reps);
  std::printf("  logged line      reference %8.0f ns/line   spdlog %8.0f ns/line   spdlog/reference %.2f\n",
              ns(t_ref, lines), ns(t_spd, lines), t_spd / t_ref);
  std::printf("  below the level  reference %8.1f ns/call   spdlog %8.1f ns/call   spdlog/reference %.2f\n",
              ns(q_ref, quiet), ns(q_spd, quiet), q_spd / q_ref);
  fs::remove_all(dir);
  return 0;
}
