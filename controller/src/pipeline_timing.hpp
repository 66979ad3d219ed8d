#pragma once
// Where a pipeline job's time goes: wall and CPU seconds of its stages and of the parts of each bench
// stage, kept in the run (bench/<p>/timings.json; report.json "timings") so a lab sees them as well.
// CPU = user + system time of the whole process (CLOCK_PROCESS_CPUTIME_ID: every thread, so with
// `threads` > 1 it exceeds the wall time, and a daemon running another job at the same time counts both).
// A part timed twice (e.g. once per fraction) accumulates: {"wall_s", "cpu_s", "count"}.
#include <chrono>
#include <ctime>
#include <string>

#include <nlohmann/json.hpp>

namespace hilo::controller {

class PartTimer {
 public:
  PartTimer(nlohmann::json& into, std::string part) : into_(into), part_(std::move(part)), wall0_(Clock::now()), cpu0_(cpu_s()) {}
  PartTimer(const PartTimer&) = delete;
  PartTimer& operator=(const PartTimer&) = delete;
  ~PartTimer() { stop(); }
  // Ends the part (later calls do nothing) and adds it to into[part].
  void stop() {
    if (done_) return;
    done_ = true;
    const double wall = std::chrono::duration<double>(Clock::now() - wall0_).count(), cpu = cpu_s() - cpu0_;
    auto& e = into_[part_];
    if (!e.is_object()) e = nlohmann::json::object();
    e["wall_s"] = e.value("wall_s", 0.0) + wall;
    e["cpu_s"] = e.value("cpu_s", 0.0) + cpu;
    e["count"] = e.value("count", 0) + 1;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double cpu_s() {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
  }
  nlohmann::json& into_;
  std::string part_;
  Clock::time_point wall0_;
  double cpu0_;
  bool done_ = false;
};

}  // namespace hilo::controller
