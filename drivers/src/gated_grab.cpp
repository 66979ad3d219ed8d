#include "hilo/drivers/gated_grab.hpp"

#include <stdexcept>

namespace hilo::drivers {

void GrabCounters::add(const GrabCounters& o) {
  show_errors += o.show_errors;
  grab_errors += o.grab_errors;
  timeouts += o.timeouts;
  corrupt_frames += o.corrupt_frames;
  disconnects += o.disconnects;
  write_failures += o.write_failures;
  frames_dropped += o.frames_dropped;
  gap_frames += o.gap_frames;
  out_of_order += o.out_of_order;
  early_frames += o.early_frames;
  regrabs += o.regrabs;
}

nlohmann::json GrabCounters::to_json() const {
  return {{"regrabs", regrabs},         {"show_errors", show_errors},       {"grab_errors", grab_errors},
          {"timeouts", timeouts},       {"corrupt_frames", corrupt_frames}, {"disconnects", disconnects},
          {"write_failures", write_failures}, {"frames_dropped", frames_dropped}, {"gap_frames", gap_frames},
          {"out_of_order", out_of_order}, {"early_frames", early_frames}};
}

std::string GatedGrabOptions::validate() const {
  if (max_attempts < 1) return "grab.max_attempts must be >= 1, got " + std::to_string(max_attempts);
  if (grab_timeout.count() <= 0) return "grab.grab_timeout must be > 0 ms, got " + std::to_string(grab_timeout.count());
  if (auto e = gate.validate(); !e.empty()) return "grab." + e;
  return {};
}

namespace {

const GatedGrabOptions& validated(const GatedGrabOptions& o) {
  if (auto e = o.validate(); !e.empty()) throw std::invalid_argument(e);
  return o;
}

double steady_now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

GatedGrabber::GatedGrabber(Slm& slm, Camera& camera, GatedGrabOptions options, std::function<double()> now_s)
    : slm_(slm),
      camera_(camera),
      opt_(validated(options)),
      now_s_(now_s ? std::move(now_s) : std::function<double()>(steady_now_s)),
      gate_(opt_.gate) {}

void GatedGrabber::count_error(const DeviceError& e) {
  switch (e.code) {
    case DeviceErrc::timeout: ++counters_.timeouts; break;
    case DeviceErrc::corrupt_frame: ++counters_.corrupt_frames; break;
    case DeviceErrc::disconnected: ++counters_.disconnects; break;
    case DeviceErrc::write_failed: ++counters_.write_failures; break;
    default: break;
  }
}

DeviceStatus GatedGrabber::show(const cv::Mat& levels) {
  pattern_ = levels.clone();
  if (auto e = slm_.show(pattern_)) {
    ++counters_.show_errors;
    count_error(*e);
    return e;
  }
  gate_.pattern_settled(now_s_());
  return std::nullopt;
}

namespace {

// A device error as a failure names it: its message and its code.
DeviceError described(const DeviceError& e) {
  return DeviceError{e.code, e.message + " [" + std::string(to_string(e.code)) + "]"};
}

GrabFailure stopped_before_first_cycle() { return {{DeviceErrc::io, "stopped before the first cycle"}, true}; }

}  // namespace

std::variant<GatedFrame, GrabFailure> GatedGrabber::grab(const GrabControl& control) {
  if (pattern_.empty()) throw std::logic_error("GatedGrabber::grab before show");
  if (control.stop && control.stop()) return stopped_before_first_cycle();
  return cycles(true, std::nullopt, control);
}

std::variant<GatedFrame, GrabFailure> GatedGrabber::show_and_grab(const cv::Mat& levels, const GrabControl& control) {
  if (control.stop && control.stop()) return stopped_before_first_cycle();
  auto e = show(levels);
  if (e && !is_transient(e->code)) return GrabFailure{described(*e)};
  return cycles(!e, e, control);
}

std::variant<GatedFrame, GrabFailure> GatedGrabber::cycles(bool shown, std::optional<DeviceError> first_error,
                                                           const GrabControl& control) {
  DeviceError cause = first_error ? described(*first_error) : DeviceError{DeviceErrc::io, ""};
  for (int attempt = 1;; ++attempt) {
    if (shown) {
      const double t0 = now_s_();
      auto fr = camera_.grab(opt_.grab_timeout);
      const double received = now_s_();
      if (!fr) {
        ++counters_.grab_errors;
        count_error(fr.error());
        if (!is_transient(fr.error().code)) return GrabFailure{described(fr.error())};
        cause = described(fr.error());
      } else {
        const FrameCheck check = gate_.check(fr.value(), received, camera_.exposure_ms());
        switch (check.verdict) {
          case FrameVerdict::accepted: break;
          case FrameVerdict::stale: ++counters_.out_of_order; break;
          case FrameVerdict::gap:
            counters_.frames_dropped += check.lost;
            ++counters_.gap_frames;
            break;
          case FrameVerdict::early: ++counters_.early_frames; break;
        }
        if (check.verdict != FrameVerdict::accepted) {
          cause = {DeviceErrc::corrupt_frame, check.reason};
        } else {
          const Judgement j = control.judge ? control.judge(fr.value()) : Judgement{};
          if (j.action == Judged::accept) return GatedFrame{std::move(fr.value()), (received - t0) * 1e3, attempt};
          if (j.action == Judged::fail) return GrabFailure{{DeviceErrc::corrupt_frame, j.cause}, false, true};
          cause = {DeviceErrc::corrupt_frame, j.cause};
        }
      }
    }
    if (attempt >= opt_.max_attempts)
      return GrabFailure{{cause.code, "no valid frame after " + std::to_string(opt_.max_attempts) +
                                          " show+grab cycles; last cause: " + cause.message}};
    if (control.stop && control.stop()) return GrabFailure{cause, true};
    ++counters_.regrabs;
    // A re-show waits a full settle more (the driver's), so the next frame begins after it.
    if (auto e = slm_.show(pattern_)) {
      ++counters_.show_errors;
      count_error(*e);
      if (!is_transient(e->code)) return GrabFailure{described(*e)};
      cause = described(*e);
      shown = false;
    } else {
      gate_.pattern_settled(now_s_());
      shown = true;
    }
  }
}

}  // namespace hilo::drivers
