// What the pipeline's content check costs. A deployed student on the simulated moderate bench (the
// calibration suites' rig: virtual clock, so settle and exposure take no wall time and what is timed is
// the CPU work per frame) measures the same images with the check on and off, alternating ABBA over
// --reps repetitions; printed: wall ms per measured image for each, the check's own cost per image and
// the ratio on / off. The last line puts the check's cost beside the device-limited frame time of
// configs/emulated-lab.yaml (input settle 33 ms + element — unchanged while measuring — 0 ms + exposure
// 10 ms): the share of a real bench's frame time the check adds when it runs after the grab.
// Run from the repository root: build/bench/calibration/bench_content_check [--images N] [--reps R]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <vector>

#include "../../tests/calibration/sim_rig.hpp"
#include "hilo/calibration/experiment.hpp"

using namespace hilo;
using namespace hilo::calibration;

namespace {

double time_measurement(const sim::BenchOptions& opts, DesignModel& design, const Deployment& deployment,
                        const distill::OpticalStudent& student, const distill::Mat<float>& x, bool check) {
  testing::SimRig rig(opts);
  ExperimentBench b{rig.input, rig.element.get(), rig.camera};
  b.now_s = [&rig] { return rig.t_s(); };
  MeasureOptions mo;
  mo.content.enabled = check;
  mo.drift_every = int(x.rows());  // one drift check at the end, as in every set
  Experiment ex(b, design, deployment, student, mo, {}, "moderate");
  std::mt19937_64 rng(5);
  BenchCalibrationOptions co;
  co.registration.frames = 1;
  co.tiles.frames = 2;
  if (auto cal = ex.calibrate(co, rng); !cal) {
    std::fprintf(stderr, "calibration failed: %s\n", cal.error().message.c_str());
    std::exit(1);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto m = ex.measure(x);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!m || m.value().rows() != x.rows()) {
    std::fprintf(stderr, "measurement failed\n");
    std::exit(1);
  }
  if (check && ex.content_counters().content_rejects != 0) std::fprintf(stderr, "note: %lld content rejects\n",
                                                                        static_cast<long long>(ex.content_counters().content_rejects));
  return 1e3 * s / double(x.rows());
}

}  // namespace

int main(int argc, char** argv) {
  int images = 200, reps = 2;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--images") == 0 && i + 1 < argc) images = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--images N (200)] [--reps R (2)]\n", argv[0]);
      return 2;
    }
  }
  if (images < 10 || reps < 1) {
    std::fprintf(stderr, "--images must be >= 10 and --reps >= 1\n");
    return 2;
  }
  std::mt19937_64 rng(11);
  const sim::BenchOptions opts = testing::bench_options("moderate");
  DesignModel design(opts);
  distill::OpticalStudent student = testing::trained_like_student(rng);
  PhaseRetrievalOptions po;
  po.gs_iterations = 10;
  po.adam_iterations = 20;
  const Deployment deployment = design_deployment(student, design, po, rng);
  student.set_kernels(deployment.kernels);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  distill::Mat<float> x(images, 784);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = u(rng) < 0.3f ? u(rng) : 0.0f;

  std::vector<double> on, off;
  for (int r = 0; r < reps; ++r)  // ABBA: on, off, off, on, ...
    for (bool check : {r % 2 == 0, r % 2 != 0}) (check ? on : off).push_back(time_measurement(opts, design, deployment, student, x, check));
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double d : v) s += d;
    return s / double(v.size());
  };
  const double a = mean(on), b = mean(off), device_ms = 33.0 + 10.0;
  std::printf("measured images: %d per run, %d run(s) each way\n", images, reps);
  std::printf("check on:  %.3f ms per image\n", a);
  std::printf("check off: %.3f ms per image\n", b);
  std::printf("the check: %.3f ms per image; ratio on / off %.3f\n", a - b, a / b);
  std::printf("against the emulated lab's device-limited frame time (%.0f ms): +%.1f %%\n", device_ms,
              100.0 * (a - b) / device_ms);
  return 0;
}
