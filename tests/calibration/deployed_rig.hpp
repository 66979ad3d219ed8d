#pragma once
// Test support: a trained-like student deployed by phase retrieval on the sim.yaml bench with a named
// profile (SLM element) and the pipeline's calibration sequence (calibrate_bench, default options) run
// on it — the state the bench stage is in when it re-optimises the element.
#include <memory>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "hilo/calibration/hil.hpp"
#include "sim_rig.hpp"

namespace hilo::calibration::testing {

struct DeployedRig {
  DeployedRig(const std::string& profile, std::mt19937_64& rng)
      : options(bench_options(profile)),
        rig(std::make_unique<SimRig>(options)),
        student(trained_like_student(rng)),
        design(options),
        deployment(design_deployment(student, design, PhaseRetrievalOptions{}, rng)),
        probe(rig->input, rig->camera),
        slm(options.element.slm) {
    show = [this](const sim::RArray& phase) { return deploy_phase(*rig->element, phase, slm); };
    auto r = calibrate_bench(probe, design, deployment, show, calibration_options, rng);
    if (!r) ADD_FAILURE() << r.error().message;
    else calibration = std::move(r.value());
  }

  sim::BenchOptions options;
  std::unique_ptr<SimRig> rig;
  distill::OpticalStudent student;
  DesignModel design;
  Deployment deployment;
  ProbeRig probe;
  sim::SlmModel slm;
  ShowElementFn show;
  BenchCalibrationOptions calibration_options;
  BenchCalibrationResult calibration;
};

}  // namespace hilo::calibration::testing
