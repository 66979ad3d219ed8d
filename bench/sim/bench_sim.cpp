// hilo-bench-sim: throughput of the wave-optics core.
//
//   hilo-bench-sim [--quick]
//
// Part 1 reports angular-spectrum propagation (cached transfer function) and incoherent imaging as frames
// per second and as the ratio  (time of one raw forward+inverse FFT pair) / (time of one frame), measured
// in the same run. Every time is the best of three batches, each running at least a minimum duration, so
// that other load on the machine inflates the figures as little as possible.
// Part 2 compares FFT libraries on N×N complex transforms: FFTW3 as wrapped by hilo::sim::Fft2 (default
// planning, and FFTW_MEASURE with its plan time), FFTW with plain FFTW_ESTIMATE, and Eigen's unsupported
// FFT module (kissfft backend, whose 2-D entry point does nothing, so rows then columns of 1-D
// transforms). It runs second so that FFTW_MEASURE's remembered plans cannot speed up part 1.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fftw3.h>
#include <unsupported/Eigen/FFT>

#include "hilo/sim/bench_model.hpp"
#include "hilo/sim/camera_model.hpp"
#include "hilo/sim/config.hpp"
#include "hilo/sim/fft.hpp"
#include "hilo/sim/imaging.hpp"
#include "hilo/sim/propagation.hpp"

namespace {

using hilo::sim::CArray;
using hilo::sim::cplx;
using hilo::sim::RArray;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Best per-call time over three batches of at least min_s seconds (and two calls) each.
template <typename F>
double best_time(F&& f, double min_s) {
  f();  // warm-up: first-touch of buffers, lazily built tables
  double best = 1e300;
  for (int batch = 0; batch < 3; ++batch) {
    int calls = 0;
    const auto t0 = Clock::now();
    do {
      f();
      ++calls;
    } while (calls < 2 || seconds_since(t0) < min_s);
    best = std::min(best, seconds_since(t0) / calls);
  }
  return best;
}

CArray random_field(Eigen::Index n, std::mt19937_64& rng) {
  std::normal_distribution<double> nd(0.0, 1.0);
  CArray a(n, n);
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = {nd(rng), nd(rng)};
  return a;
}

// 2-D transform with Eigen's 1-D FFT: every row, transpose, every row, transpose back.
struct EigenFft2 {
  Eigen::FFT<double> fft;
  std::vector<cplx> in, out;
  void run(CArray& a, bool inverse) {
    for (int pass = 0; pass < 2; ++pass) {
      const Eigen::Index R = a.rows(), C = a.cols();
      in.resize(std::size_t(C));
      out.resize(std::size_t(C));
      for (Eigen::Index r = 0; r < R; ++r) {
        std::memcpy(in.data(), &a(r, 0), sizeof(cplx) * std::size_t(C));
        if (inverse)
          fft.inv(out.data(), in.data(), C);
        else
          fft.fwd(out.data(), in.data(), C);
        std::memcpy(&a(r, 0), out.data(), sizeof(cplx) * std::size_t(C));
      }
      a = a.transpose().eval();
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
      return 2;
    }
  }
  const std::vector<Eigen::Index> sizes = quick ? std::vector<Eigen::Index>{256, 512}
                                                : std::vector<Eigen::Index>{256, 512, 1024, 2048};
  const double min_s = quick ? 0.05 : 0.3;
  std::mt19937_64 rng(7);

  std::printf("hilo-bench-sim%s: best of 3 batches of >= %.2f s each, 1 thread\n\n", quick ? " --quick" : "", min_s);

  // ---------------------------------------------------------------- Part 2: physics throughput
  std::printf("Propagation and imaging (FFTW_ESTIMATE plans, the library default)\n");
  std::printf("ratio = time of the raw FFT pair on the grid named / time of one frame (1.0 = no overhead)\n");
  std::printf("%6s | %10s | %10s %7s | %10s %10s %7s | %10s %8s %7s %7s\n", "N", "pair(N) ms", "ASM fps",
              "vs N", "pair(2N)ms", "ASMpad fps", "vs 2N", "image fps", "grid", "vs grid", "vs N");
  const double wavelength = 532e-9, pitch = 8e-6, z = 0.02;
  for (Eigen::Index n : sizes) {
    const CArray x = random_field(n, rng);
    CArray a = x;
    const hilo::sim::Fft2 pair_n(n, n), pair_2n(2 * n, 2 * n);
    const double t_pair = best_time([&] { pair_n.forward(a); pair_n.inverse(a); }, min_s);
    CArray a2 = CArray::Zero(2 * n, 2 * n);
    const double t_pair2 = best_time([&] { pair_2n.forward(a2); pair_2n.inverse(a2); }, min_s);

    hilo::sim::PropagationOptions circular;
    circular.pad = false;
    const hilo::sim::AngularSpectrum asm_n(n, n, pitch, wavelength, z, circular);
    CArray u = x;
    const double t_asm = best_time([&] { asm_n.apply(u); }, min_s);
    const hilo::sim::AngularSpectrum asm_pad(n, n, pitch, wavelength, z);
    u = x;
    const double t_asm_pad = best_time([&] { asm_pad.apply(u); }, min_s);

    // Incoherent imaging of an N×N object by an N×N PSF (a canvas-sized tiled PSF): linear convolution on
    // a (2N−1 → fast size) grid by real transforms.
    const RArray object = x.real().abs();
    const RArray psf = x.imag().abs() / x.imag().abs().sum();
    const hilo::sim::IncoherentImager imager(n, n, psf);
    RArray img;
    const double t_img = best_time([&] { img = imager.image(object); }, min_s);
    const Eigen::Index g = imager.padded_rows();
    const hilo::sim::Fft2 pair_g(g, g);
    CArray ag = CArray::Zero(g, g);
    const double t_pair_g = g == 2 * n ? t_pair2 : best_time([&] { pair_g.forward(ag); pair_g.inverse(ag); }, min_s);

    std::printf("%6td | %10.3f | %10.1f %7.2f | %10.3f %10.1f %7.2f | %10.1f %8td %7.2f %7.2f\n", n, t_pair * 1e3,
                1.0 / t_asm, t_pair / t_asm, t_pair2 * 1e3, 1.0 / t_asm_pad, t_pair2 / t_asm_pad, 1.0 / t_img, g,
                t_pair_g / t_img, t_pair / t_img);
  }
  std::printf("\nASM: cached band-limited transfer function, in place; 'ASMpad' zero-pads to 2N and crops back.\n"
              "image: N x N object, N x N PSF, real-to-complex transforms on the padded grid ('grid').\n");
  // ---------------------------------------------------------------- Part 1: FFT libraries
  std::printf("\nFFT library, N x N complex forward+inverse pair (ms per pair; plan = ms to create both plans)\n");
  std::printf("est = FFTW_ESTIMATE|FFTW_UNALIGNED (hilo default), simd = plain FFTW_ESTIMATE, meas = FFTW_MEASURE\n");
  std::printf("%6s | %9s %9s | %9s | %9s %9s | %10s | %9s %8s %8s | %8s\n", "N", "est plan", "est pair", "simd pair",
              "meas plan", "meas pair", "Eigen pair", "Eigen/est", "simd/est", "est/meas", "max|diff|");
  for (Eigen::Index n : sizes) {
    const CArray x = random_field(n, rng);
    auto t0 = Clock::now();
    const hilo::sim::Fft2 est(n, n, hilo::sim::Planning::estimate);
    const double est_plan = seconds_since(t0);
    t0 = Clock::now();
    // FFTW_ESTIMATE without FFTW_UNALIGNED, as plain FFTW users would plan (before any measured wisdom).
    fftw_complex* raw = fftw_alloc_complex(std::size_t(n * n));
    std::memcpy(raw, x.data(), sizeof(fftw_complex) * std::size_t(n * n));
    const fftw_plan raw_f = fftw_plan_dft_2d(int(n), int(n), raw, raw, FFTW_FORWARD, FFTW_ESTIMATE);
    const fftw_plan raw_b = fftw_plan_dft_2d(int(n), int(n), raw, raw, FFTW_BACKWARD, FFTW_ESTIMATE);
    const double t_raw = best_time([&] { fftw_execute(raw_f); fftw_execute(raw_b); }, min_s);
    fftw_destroy_plan(raw_f);
    fftw_destroy_plan(raw_b);
    fftw_free(raw);
    t0 = Clock::now();
    const hilo::sim::Fft2 meas(n, n, hilo::sim::Planning::measure);
    const double meas_plan = seconds_since(t0);
    CArray a = x;
    const double t_est = best_time([&] { est.forward(a); est.inverse(a); }, min_s);
    const double t_meas = best_time([&] { meas.forward(a); meas.inverse(a); }, min_s);
    EigenFft2 eig;
    CArray b = x;
    const double t_eig = best_time([&] { eig.run(b, false); eig.run(b, true); }, min_s);
    // Agreement of the two libraries on one forward transform.
    CArray fe = x, ff = x;
    eig.run(fe, false);
    est.forward(ff);
    const double diff = (fe - ff).abs().maxCoeff() / ff.abs().maxCoeff();
    std::printf("%6td | %9.3f %9.3f | %9.3f | %9.1f %9.3f | %10.3f | %9.2f %8.2f %8.2f | %8.1e\n", n, est_plan * 1e3,
                t_est * 1e3, t_raw * 1e3, meas_plan * 1e3, t_meas * 1e3, t_eig * 1e3, t_eig / t_est, t_raw / t_est,
                t_est / t_meas, diff);
  }

  // ---------------------------------------------------------------- Part 3: camera noise
  {
    hilo::sim::CameraOptions co;
    co.rows = co.cols = 144;
    co.exposure_ms = 10.0;
    co.gain_e_per_count = 4.0;
    co.full_well_e = 30000.0;
    co.noise.shot_noise = true;
    co.noise.read_noise_e = 3.0;
    const hilo::sim::CameraModel cam(co);
    // A bench-like irradiance: a dark quarter (stray light only) and tiles of 5–700 photons/px/ms.
    std::uniform_real_distribution<double> ud(5.0, 700.0);
    RArray irr(co.rows, co.cols);
    for (Eigen::Index i = 0; i < irr.size(); ++i) irr.data()[i] = i % 4 == 0 ? 0.05 : ud(rng);
    RArray frame;
    const double t_cam = best_time([&] { frame = cam.capture(irr, rng); }, min_s);
    const auto std_frame = [&] {
      RArray e = cam.mean_electrons(irr);
      for (Eigen::Index i = 0; i < e.size(); ++i)
        e.data()[i] = e.data()[i] > 0.0 ? double(std::poisson_distribution<long long>(e.data()[i])(rng)) : 0.0;
      e = e.min(co.full_well_e);
      std::normal_distribution<double> read(0.0, co.noise.read_noise_e);
      for (Eigen::Index i = 0; i < e.size(); ++i) e.data()[i] += read(rng);
      frame = (e / co.gain_e_per_count + co.noise.dark_offset_counts).round().max(0.0).min(cam.full_scale_counts());
    };
    const double t_std = best_time(std_frame, min_s);
    std::printf("\nCamera frame %dx%d (shot + read noise, ADC): hilo %.3f ms, with the std samplers %.3f ms, "
                "ratio %.2fx\n", co.rows, co.cols, t_cam * 1e3, t_std * 1e3, t_std / t_cam);

    // The whole simulated bench of the shipped config, a new 28 x 28 input for every frame (so the cached
    // images before the warp are rebuilt each time, as in a capture job), against the camera frame above.
    const hilo::sim::BenchOptions bo = hilo::sim::load_bench(std::string(HILO_SOURCE_DIR) + "/configs/sim.yaml");
    hilo::sim::SimulatedBench bench(bo);
    bench.set_element_phase(RArray::Zero(bo.element.slm.rows, bo.element.slm.cols));
    RArray input(28, 28);
    int k = 0;
    bench.set_input(RArray::Constant(28, 28, 0.5));
    bench.capture(0.0, rng);  // builds the PSFs
    const double t_bench = best_time([&] {
      for (Eigen::Index i = 0; i < input.size(); ++i) input.data()[i] = double((i + k) % 17) / 16.0;
      ++k;
      bench.set_input(input);
      frame = bench.capture(0.0, rng);
    }, min_s);
    std::printf("Simulated bench capture (configs/sim.yaml, a new 28x28 input each frame, %tdx%td frame): "
                "%.3f ms, %.2fx the camera frame above\n", frame.rows(), frame.cols(), t_bench * 1e3, t_bench / t_cam);
  }
  return 0;
}
