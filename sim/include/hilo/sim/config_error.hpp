#pragma once
// The one error type of the simulator's options and config files.
//
// Every Options::validate() returns the first broken rule as a value ("" when valid; the convention
// of io/options_json.hpp), naming the full field path and the value, e.g. "camera.bit_depth must be
// in [8, 16], got 20". Config loaders and constructors that need valid options throw that rule as a
// ConfigError, prefixed with the file name when it comes from a file.
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
// "<path> must be in [lo, hi], got v" unless lo <= v <= hi (NaN breaks it), else "".
inline std::string range_rule(const std::string& path, double v, double lo, double hi) {
  if (v >= lo && v <= hi) return {};
  return path + " must be in [" + fmt(lo) + ", " + fmt(hi) + "], got " + fmt(v);
}
// "<path> must be a finite number, got v" unless v is finite, else "".
inline std::string finite_rule(const std::string& path, double v) {
  if (std::isfinite(v)) return {};
  return path + " must be a finite number, got " + fmt(v);
}
// Throws ConfigError(prefix + rule) when `rule` (a validate() result) is not empty.
inline void require_valid(const std::string& rule, const std::string& prefix = "") {
  if (!rule.empty()) throw ConfigError(prefix + rule);
}
}  // namespace detail

}  // namespace hilo::sim
