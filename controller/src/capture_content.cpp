#include "capture_content.hpp"

namespace hilo::controller {

void CaptureContent::off(const std::string& reason) {
  gate.reset();
  status = {{"active", false}, {"reason", reason}};
}

CaptureContent capture_content(const CaptureInputs& in, const CaptureOptions& opt, const Devices& devices) {
  CaptureContent c;
  if (!opt.content.enabled) {
    c.off("disabled by the request (content_check.enabled false)");
    return c;
  }
  if (!devices.design) {
    c.off("the bench config has no design section");
    return c;
  }
  if (!devices.element_levels) {
    c.off("the bench has no element SLM (a fixed mask): what the element shows is not known");
    return c;
  }
  const cv::Mat element = devices.element_levels();
  if (element.empty()) {
    c.off("the element SLM has shown no pattern yet");
    return c;
  }
  try {
    c.gate.emplace(*devices.design, element, opt.content);
  } catch (const std::exception& e) {
    c.off(e.what());
    return c;
  }
  if (auto e = c.gate->unfit_input(static_cast<int>(in.set->rows), static_cast<int>(in.set->cols)); !e.empty()) {
    c.off(e);
    return c;
  }
  c.status = {{"active", true}, {"model", "design (uncalibrated)"}, {"options", opt.content}};
  return c;
}

}  // namespace hilo::controller
