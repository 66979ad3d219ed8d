#pragma once
// (twin_rig.hpp) A student deployed on a simulated bench and calibrated the way the pipeline does (calibrate_bench with
// the deployed element), shared by the measured-kernel and twin suites. The retrieval is kept short.
#include <memory>
#include <random>
#include <string>

#include "hilo/calibration/hil.hpp"
#include "hilo/calibration/measured_kernels.hpp"
#include "hilo/sim/slm_model.hpp"
#include "sim_rig.hpp"

namespace hilo::calibration::testing {

struct DeployedRig {
  std::mt19937_64 rng;
  sim::BenchOptions opts;
  DesignModel design;
  distill::OpticalStudent student;
  Deployment deployment;
  std::unique_ptr<SimRig> rig;
  std::unique_ptr<ProbeRig> probe;
  BenchCalibration calibration;

  explicit DeployedRig(const std::string& profile, std::uint64_t seed = 11)
      : rng(seed), opts(bench_options(profile)), design(opts), student(trained_like_student(rng)) {
    PhaseRetrievalOptions po;
    po.gs_iterations = 20;
    po.adam_iterations = 60;
    deployment = design_deployment(student, design, po, rng);
    student.set_kernels(deployment.kernels);
    rig = std::make_unique<SimRig>(opts);
    probe = std::make_unique<ProbeRig>(rig->input, rig->camera);
    const sim::SlmModel slm(opts.element.slm);
    ShowElementFn show = [&](const sim::RArray& p) { return deploy_phase(*rig->element, p, slm); };
    BenchCalibrationOptions co;
    co.registration.frames = 2;
    co.tiles.frames = 4;
    auto r = calibrate_bench(*probe, design, deployment, show, co, rng);
    if (!r) throw std::runtime_error("calibration failed: " + r.error().message);
    calibration = r.value().calibration;
  }
  CaptureFn capture() {
    return [this](const sim::RArray& in, int frames) { return probe->capture(in, frames); };
  }
};

// Images like the datasets': about 30 % of the pixels lit at a random level.
inline distill::Mat<float> sparse_images(int n, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  distill::Mat<float> x(n, 784);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = u(rng) < 0.3f ? u(rng) : 0.0f;
  return x;
}

}  // namespace hilo::calibration::testing
