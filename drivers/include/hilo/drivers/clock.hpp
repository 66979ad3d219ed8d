#pragma once
// Time source of the drivers. Backends that model device timing (SLM settle time, exposure, frame
// period) and the retry helper wait through a Clock, so tests inject a ManualClock and run without
// sleeping while the daemon passes a SteadyClock.
#include <chrono>

namespace hilo::drivers {

class Clock {
 public:
  virtual ~Clock() = default;
  // Seconds since an arbitrary, fixed origin; never decreases.
  virtual double now_s() const = 0;
  // Returns after at least `d` has elapsed on this clock (d <= 0 returns at once).
  virtual void sleep_for(std::chrono::microseconds d) = 0;
};

// Wall time: std::chrono::steady_clock and std::this_thread::sleep_for, in seconds since the clock was
// constructed. (Not since steady_clock's epoch, the machine's boot: the simulator's drift is a function
// of device time, and a machine up for hours made a freshly started simulated bench hours old — drifted
// off the sensor and dark.)
class SteadyClock final : public Clock {
 public:
  double now_s() const override;
  void sleep_for(std::chrono::microseconds d) override;

 private:
  std::chrono::steady_clock::time_point origin_ = std::chrono::steady_clock::now();
};

// Test clock: time advances only by sleep_for() and advance(); sleeping never blocks. Records the total
// time slept so tests can check what a timing model asked for.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(double start_s = 0.0) : now_s_(start_s) {}
  double now_s() const override { return now_s_; }
  void sleep_for(std::chrono::microseconds d) override;
  void advance(std::chrono::microseconds d) { sleep_for(d); }
  // Sets the time, backwards too: a simulation that must reproduce a stage exactly (the pipeline's
  // profile stages) restarts its clock. Breaks "never decreases" for readings taken before; callers
  // own that (tests and the simulator-mode daemon, whose devices are the clock's only readers).
  void rewind_to(double t_s) { now_s_ = t_s; }
  double slept_s() const { return slept_s_; }
  int sleeps() const { return sleeps_; }

 private:
  double now_s_;
  double slept_s_ = 0.0;
  int sleeps_ = 0;
};

}  // namespace hilo::drivers
