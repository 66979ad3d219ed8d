#include "hilo/drivers/frame_gate.hpp"

#include <algorithm>
#include <cassert>
#include <cstdio>

namespace hilo::drivers {

std::string FrameGateOptions::validate() const {
  if (!(tolerance_ms >= 0.0)) return "frame_gate.tolerance_ms must be >= 0, got " + std::to_string(tolerance_ms);
  if (offset_window < 1) return "frame_gate.offset_window must be >= 1, got " + std::to_string(offset_window);
  return {};
}

std::string_view to_string(FrameVerdict v) {
  switch (v) {
    case FrameVerdict::accepted: return "accepted";
    case FrameVerdict::gap: return "gap";
    case FrameVerdict::stale: return "stale";
    case FrameVerdict::early: return "early";
  }
  return "?";
}

FrameGate::FrameGate(FrameGateOptions options) : options_(options) {
  assert(options_.validate().empty() && "FrameGateOptions must validate()");
}

double FrameGate::offset_s() const {
  return bounds_.empty() ? 0.0 : *std::max_element(bounds_.begin(), bounds_.end());
}

FrameCheck FrameGate::check(const Frame& frame, double received_s, double exposure_ms) {
  if (frame.exposure_timestamp) {
    bounds_.push_back(frame.timestamp_s - received_s + exposure_ms * 1e-3);
    while (bounds_.size() > static_cast<std::size_t>(options_.offset_window)) bounds_.pop_front();
  }

  FrameCheck c;
  const std::uint64_t seq = frame.sequence;
  if (have_last_ && seq <= last_seq_) {
    c.verdict = FrameVerdict::stale;
    c.reason = "frame " + std::to_string(seq) + " is not after frame " + std::to_string(last_seq_) + " (stale)";
  } else if (have_last_ && seq > last_seq_ + 1) {
    c.verdict = FrameVerdict::gap;
    c.lost = seq - last_seq_ - 1;
    c.reason = "frames " + std::to_string(last_seq_ + 1) + ".." + std::to_string(seq - 1) + " were lost";
  }
  have_last_ = true;
  last_seq_ = seq;
  if (c.verdict != FrameVerdict::accepted || !frame.exposure_timestamp) return c;

  const double began_s = frame.timestamp_s - offset_s();
  const double lead_ms = (settled_s_ - began_s) * 1e3;
  if (lead_ms > options_.tolerance_ms) {
    c.verdict = FrameVerdict::early;
    c.exposure_lead_ms = lead_ms;
    char buf[160];
    std::snprintf(buf, sizeof buf, "frame %llu began exposing %.3f ms before the pattern settled",
                  static_cast<unsigned long long>(seq), lead_ms);
    c.reason = buf;
  }
  return c;
}

}  // namespace hilo::drivers
