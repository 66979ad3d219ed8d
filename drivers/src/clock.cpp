#include "hilo/drivers/clock.hpp"

#include <thread>

namespace hilo::drivers {

double SteadyClock::now_s() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - origin_).count(); }

void SteadyClock::sleep_for(std::chrono::microseconds d) {
  if (d.count() > 0) std::this_thread::sleep_for(d);
}

void ManualClock::sleep_for(std::chrono::microseconds d) {
  if (d.count() <= 0) return;
  const double s = static_cast<double>(d.count()) * 1e-6;
  now_s_ += s;
  slept_s_ += s;
  ++sleeps_;
}

}  // namespace hilo::drivers
