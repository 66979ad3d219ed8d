#pragma once
// The one error type of the simulator's options and config files.
//
// Every Options::validate() and every config loader throws ConfigError; its message names the full
// field path and the rule broken, e.g. "camera.bit_depth must be in [8, 16], got 20", and, when it
// comes from a file, starts with the file name.
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

namespace hilo::sim {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
// Formats a number the way a user wrote it (no trailing zeros): 20, 0.5, 1e-05.
inline std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
// Throws ConfigError("<path> must be in [lo, hi], got v") unless lo <= v <= hi (NaN fails).
inline void require_range(const std::string& path, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi))
    throw ConfigError(path + " must be in [" + fmt(lo) + ", " + fmt(hi) + "], got " + fmt(v));
}
// Throws unless v > lo (NaN fails).
inline void require_above(const std::string& path, double v, double lo) {
  if (!(v > lo)) throw ConfigError(path + " must be > " + fmt(lo) + ", got " + fmt(v));
}
inline void require_at_least(const std::string& path, double v, double lo) {
  if (!(v >= lo)) throw ConfigError(path + " must be >= " + fmt(lo) + ", got " + fmt(v));
}
inline void require_finite(const std::string& path, double v) {
  if (!std::isfinite(v)) throw ConfigError(path + " must be a finite number, got " + fmt(v));
}
}  // namespace detail

}  // namespace hilo::sim
