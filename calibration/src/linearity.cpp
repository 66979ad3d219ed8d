#include "hilo/calibration/linearity.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "hilo/calibration/registration.hpp"

namespace hilo::calibration {

std::string LinearityOptions::validate() const {
  if (levels.size() < 2) return "linearity.levels must hold at least 2 levels, got " + std::to_string(levels.size());
  for (double l : levels)
    if (!(l >= 0 && l <= 1)) return "linearity.levels must lie in [0, 1], got " + std::to_string(l);
  if (frames < 1) return "linearity.frames must be >= 1, got " + std::to_string(frames);
  if (!(min_model_fraction > 0 && min_model_fraction <= 1))
    return "linearity.min_model_fraction must be in (0, 1], got " + std::to_string(min_model_fraction);
  if (!(saturation_margin_counts >= 0))
    return "linearity.saturation_margin_counts must be >= 0, got " + std::to_string(saturation_margin_counts);
  return {};
}

drivers::DeviceResult<LinearityFit> measure_linearity(ProbeRig& rig, const Predictor& predict, const DarkFrame& dark,
                                                      const PoseFit& registration, const LinearityOptions& options) {
  if (const auto e = options.validate(); !e.empty()) throw std::invalid_argument(e);
  const int R = rig.input_rows(), C = rig.input_cols();
  const RArray full = registered_model(predict(RArray::Ones(R, C)), registration);
  const double top = full.maxCoeff();
  if (!(top > 0)) throw std::invalid_argument("measure_linearity: the model image is dark");
  const RArray plateau = ((full >= options.min_model_fraction * top).cast<double>() * (1.0 - dark.hot));
  if (plateau.sum() < 1) throw std::invalid_argument("measure_linearity: no plateau pixels");
  const RArray good = 1.0 - dark.hot;
  const double full_scale = double((1 << drivers::bit_depth(rig.camera().pixel_format())) - 1);

  LinearityFit fit;
  std::vector<bool> saturated;
  for (double L : options.levels) {
    auto f = rig.capture(RArray::Constant(R, C, L), options.frames);
    if (!f) return f.error();
    const RArray& raw = f.value();
    const bool sat = ((raw * plateau) >= full_scale - options.saturation_margin_counts).any();
    saturated.push_back(sat);
    if (sat && (!fit.saturation_level || L < *fit.saturation_level)) fit.saturation_level = L;
    fit.levels.push_back(L);
    fit.signal.push_back(((raw - dark.dark) * good).sum());
    fit.model.push_back((registered_model(predict(RArray::Constant(R, C, L)), registration) * good).sum());
  }
  double sm = 0, ss = 0, smm = 0, sms = 0, k = 0, mmax = 0;
  for (std::size_t i = 0; i < fit.levels.size(); ++i) {
    if (saturated[i]) continue;
    sm += fit.model[i];
    ss += fit.signal[i];
    smm += fit.model[i] * fit.model[i];
    sms += fit.model[i] * fit.signal[i];
    mmax = std::max(mmax, fit.model[i]);
    ++k;
  }
  fit.fitted_levels = int(k);
  std::ostringstream rep;
  if (k >= 2 && k * smm - sm * sm > 0) {
    fit.gain = (k * sms - sm * ss) / (k * smm - sm * sm);
    fit.offset = (ss - fit.gain * sm) / k;
    for (std::size_t i = 0; i < fit.levels.size(); ++i)
      if (!saturated[i])
        fit.nonlinearity = std::max(fit.nonlinearity, std::abs(fit.signal[i] - fit.gain * fit.model[i] - fit.offset) /
                                                          (fit.gain * mmax));
    rep << "gain " << fit.gain << ", offset " << fit.offset << " counts, non-linearity " << fit.nonlinearity
        << " over " << k << " unsaturated levels";
  } else {
    rep << "fewer than 2 unsaturated levels: no fit";
  }
  if (fit.saturation_level) rep << "; saturation from level " << *fit.saturation_level;
  fit.report = rep.str();
  return fit;
}

}  // namespace hilo::calibration
