// hilo-sim: command-line front of the wave-optics simulator (a thin main over hilo::sim).
// Subcommands: propagate, psf, image, camera, demo. Every failure prints one line naming the field or
// file on stderr and exits non-zero (1 for bad input, CLI11's code for a bad command line).
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numbers>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "hilo/sim/bench_model.hpp"
#include "hilo/sim/camera_model.hpp"
#include "hilo/sim/config.hpp"
#include "hilo/sim/fft.hpp"
#include "hilo/sim/imaging.hpp"
#include "hilo/sim/npy.hpp"
#include "hilo/sim/optics.hpp"
#include "hilo/sim/propagation.hpp"

namespace fs = std::filesystem;
using namespace hilo::sim;

namespace {

constexpr double kPi = std::numbers::pi;

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

RArray read_real(const std::string& path) {
  const NpyArray a = read_npy(path);
  return to_rarray(a, path);
}

// Complex field from .npy: complex64/128 as is; a real array is an amplitude (zero phase).
CArray read_field(const std::string& path) {
  const NpyArray a = read_npy(path);
  if (a.dtype == Dtype::c8 || a.dtype == Dtype::c16) return to_carray(a, path);
  return to_rarray(a, path).cast<cplx>();
}

void write_real(const fs::path& path, const RArray& a) { write_npy(path, from_rarray(a, Dtype::f8)); }

// 8-bit PNG of a real array scaled from [lo, hi] to [0, 255]; gamma < 1 brightens faint parts.
void write_png(const fs::path& path, const RArray& a, double lo, double hi, double gamma = 1.0) {
  cv::Mat m(int(a.rows()), int(a.cols()), CV_8UC1);
  const double span = hi > lo ? hi - lo : 1.0;
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c) {
      const double v = std::clamp((a(r, c) - lo) / span, 0.0, 1.0);
      m.at<std::uint8_t>(r, c) = std::uint8_t(std::lround(255.0 * std::pow(v, gamma)));
    }
  if (!cv::imwrite(path.string(), m)) throw InputError(path.string() + ": cannot write PNG");
}

// ---- demo pieces ---------------------------------------------------------------------------------

// A 32 × 32 test chart: vertical bar triplets of width 1, 2 and 3 px, horizontal bars and a letter "F".
RArray test_chart() {
  RArray t = RArray::Zero(32, 32);
  int x = 2;
  for (int w : {1, 2, 3}) {
    for (int k = 0; k < 3; ++k, x += 2 * w) t.block(2, x, 12, w).setConstant(1.0);
    x += 2;
  }
  for (int k = 0; k < 3; ++k) t.block(18 + 4 * k, 2, 2, 12).setConstant(0.7);
  t.block(17, 19, 13, 3).setConstant(1.0);  // F: stem
  t.block(17, 19, 3, 10).setConstant(1.0);  // top bar
  t.block(22, 19, 3, 7).setConstant(1.0);   // middle bar
  return t;
}

struct TileTarget {
  RArray psf;                                        // target PSF intensity, unit sum, M × M
  std::vector<std::pair<int, int>> centres;          // tile centres (row, col)
  int half = 2;                                      // tiles are (2·half+1)² windows
};

// Four 5 × 5 kernels (a spot, a horizontal pair, a vertical pair, a 3 × 3 blob) as tiles of one PSF.
TileTarget four_kernel_target(int M, int offset) {
  TileTarget t;
  t.psf = RArray::Zero(M, M);
  const int c = M / 2;
  t.centres = {{c - offset, c - offset}, {c - offset, c + offset}, {c + offset, c - offset}, {c + offset, c + offset}};
  auto put = [&](int k, int dr, int dc, double v) { t.psf(t.centres[k].first + dr, t.centres[k].second + dc) += v; };
  put(0, 0, 0, 1.0);
  put(1, 0, -2, 0.5), put(1, 0, 2, 0.5);
  put(2, -2, 0, 0.5), put(2, 2, 0, 0.5);
  for (int dr = -1; dr <= 1; ++dr)
    for (int dc = -1; dc <= 1; ++dc) put(3, dr, dc, 1.0 / 9.0);
  t.psf /= t.psf.sum();
  return t;
}

// Gerchberg–Saxton: a pupil phase whose PSF approximates `target` (unit sum, fftshifted like
// psf_from_phase). The pupil is embedded top-left, as psf_from_phase does (any position gives the same PSF).
RArray gerchberg_saxton(const RArray& pupil, const RArray& target, int iterations, std::mt19937_64& rng) {
  const Eigen::Index N = pupil.rows(), M = target.rows();
  const Fft2 fft(M, M);
  const RArray amp_target = ifftshift(target).sqrt();
  std::uniform_real_distribution<double> u(0.0, 2 * kPi);
  RArray phase(N, N);
  for (Eigen::Index i = 0; i < phase.size(); ++i) phase.data()[i] = u(rng);
  CArray U(M, M);
  for (int it = 0; it < iterations; ++it) {
    U.setZero();
    for (Eigen::Index r = 0; r < N; ++r)
      for (Eigen::Index c = 0; c < N; ++c) U(r, c) = std::polar(pupil(r, c), phase(r, c));
    fft.forward(U);
    for (Eigen::Index i = 0; i < U.size(); ++i) U.data()[i] = std::polar(amp_target.data()[i], std::arg(U.data()[i]));
    fft.inverse(U);
    for (Eigen::Index r = 0; r < N; ++r)
      for (Eigen::Index c = 0; c < N; ++c) phase(r, c) = std::arg(U(r, c));
  }
  return phase;
}

double tile_energy(const RArray& psf, const TileTarget& t) {
  double e = 0.0;
  for (auto [r, c] : t.centres) e += psf.block(r - t.half, c - t.half, 2 * t.half + 1, 2 * t.half + 1).sum();
  return e;
}

// The default profile: configs/profiles/moderate.yaml next to the working directory or the executable.
fs::path find_config(const std::string& rel) {
  if (fs::exists(fs::path("configs") / rel)) return fs::path("configs") / rel;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  for (fs::path d = exe.parent_path(); !ec && !d.empty() && d != d.root_path(); d = d.parent_path())
    if (fs::exists(d / "configs" / rel)) return d / "configs" / rel;
  throw InputError("cannot find configs/" + rel + " (pass --profile)");
}

int run_demo(const fs::path& out, std::string profile_path, std::uint64_t seed, int gs_iterations) {
  const auto t0 = std::chrono::steady_clock::now();
  if (profile_path.empty()) profile_path = find_config("profiles/moderate.yaml").string();
  const AsBuiltProfile profile = load_profile(profile_path);
  fs::create_directories(out);

  BenchOptions o;
  o.input = {32, 32, 1, 2000.0};
  o.element.kind = ElementKind::fabricated;
  o.element.slm.rows = o.element.slm.cols = 64;
  o.element.psf_pad = 2;
  o.camera.rows = o.camera.cols = 128;
  o.camera.exposure_ms = 10.0;
  o.camera.gain_e_per_count = 4.0;
  o.camera.bit_depth = 12;
  o.camera.full_well_e = 30000.0;
  o.profile = profile;
  SimulatedBench bench(o);

  const RArray pupil = circular_aperture(64, 64, 1.0, 32.0, 4);
  const TileTarget target = four_kernel_target(128, 20);
  std::mt19937_64 rng(seed);
  const RArray mask = gerchberg_saxton(pupil, target.psf, gs_iterations, rng);

  const RArray chart = test_chart();
  bench.set_input(chart);
  bench.set_element_phase(mask);
  const RArray& design = bench.design_psf();
  const RArray& built = bench.as_built_psf();
  const RArray ideal = bench.ideal_image();
  const double t_capture_s = 60.0;
  std::mt19937_64 noise(seed + 1);
  const auto tc = std::chrono::steady_clock::now();
  const RArray frame = bench.capture(t_capture_s, noise);
  const double capture_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - tc).count();

  // The frame the ideal model predicts, in counts (noise-free camera of the same settings).
  CameraOptions ideal_cam = o.camera;
  ideal_cam.noise = SensorNoise::none();
  std::mt19937_64 unused(0);
  const RArray predicted = CameraModel(ideal_cam).capture(ideal.max(0.0), unused);
  const RArray residual = frame - bench.dark_level_counts() - predicted;
  const double rel_error = std::sqrt(residual.square().sum() / predicted.square().sum());

  const RArray mask_wrapped = mask.unaryExpr([](double p) { return p - 2 * kPi * std::floor(p / (2 * kPi)); });
  write_png(out / "target.png", chart, 0.0, 1.0);
  write_png(out / "mask.png", mask_wrapped, 0.0, 2 * kPi);
  write_png(out / "psf_design.png", design, 0.0, design.maxCoeff(), 0.5);
  write_png(out / "psf_as_built.png", built, 0.0, design.maxCoeff(), 0.5);
  write_png(out / "image_ideal.png", predicted, 0.0, predicted.maxCoeff());
  write_png(out / "frame_as_built.png", frame, frame.minCoeff(), frame.maxCoeff());
  write_real(out / "mask.npy", mask_wrapped);
  write_real(out / "psf_design.npy", design);
  write_real(out / "psf_as_built.npy", built);
  write_real(out / "image_ideal_counts.npy", predicted);
  write_npy(out / "frame_as_built.npy", from_rarray(frame, Dtype::u2));

  const Pose pose = bench.true_pose(t_capture_s);
  nlohmann::json j;
  j["profile"] = {{"file", profile_path}, {"name", profile.name}, {"seed", profile.seed}};
  j["design"] = {{"method", "Gerchberg-Saxton"},
                 {"iterations", gs_iterations},
                 {"kernels", 4},
                 {"kernel_size_px", 2 * target.half + 1},
                 {"tile_offset_px", 20},
                 {"element_px", 64},
                 {"psf_px", 128},
                 {"tile_energy_fraction_design", tile_energy(design, target)},
                 {"tile_energy_fraction_as_built", tile_energy(built, target)},
                 {"psf_peak_ratio_as_built_over_design", built.maxCoeff() / design.maxCoeff()},
                 {"psf_relative_l2_difference",
                  std::sqrt((built - design).square().sum() / design.square().sum())}};
  j["capture"] = {{"time_s", t_capture_s},
                  {"true_shift_x_px", pose.shift_x_px},
                  {"true_shift_y_px", pose.shift_y_px},
                  {"true_rotation_deg", pose.rotation_deg},
                  {"true_scale", pose.scale},
                  {"true_gain", pose.gain},
                  {"dark_level_counts", bench.dark_level_counts()},
                  {"frame_max_counts", frame.maxCoeff()},
                  {"ideal_max_counts", predicted.maxCoeff()},
                  {"frame_vs_ideal_relative_l2_error", rel_error},
                  {"capture_ms", capture_ms}};
  j["figures"] = {{"target.png", "input test chart, intensity 0..1"},
                  {"mask.png", "designed phase mask, 0..2pi rad"},
                  {"psf_design.png", "designed PSF, sqrt scale, max = design peak"},
                  {"psf_as_built.png", "as-built PSF, same scale as the design"},
                  {"image_ideal.png", "ideal-model camera image, linear counts"},
                  {"frame_as_built.png", "as-built camera frame, linear, min..max counts"}};
  j["elapsed_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const fs::path summary = out / "summary.json";
  std::ofstream(summary) << j.dump(2) << "\n";
  std::cout << "demo: wrote figures and " << summary.string() << "\n" << j.dump(2) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hilo-sim: wave-optics simulator of the hilo optical bench (scalar diffraction, SLM and camera "
               "models, as-built error profiles). Arrays are NumPy .npy files; configs are YAML (docs/sim.md)."};
  app.require_subcommand(1);

  // propagate
  auto* prop = app.add_subcommand("propagate", "Propagate a complex field through free space");
  std::string method = "asm", in_path, out_path;
  double wavelength_nm = 633.0, pitch_um = 8.0, distance_mm = 10.0;
  bool no_pad = false;
  prop->add_option("--method", method, "asm (band-limited angular spectrum), fresnel (transfer function) or "
                                       "fraunhofer (far field; output pitch = wavelength*distance/(N*pitch))")
      ->check(CLI::IsMember({"asm", "fresnel", "fraunhofer"}))->capture_default_str();
  prop->add_option("--wavelength-nm", wavelength_nm, "wavelength in nanometres")->check(CLI::Range(100.0, 20000.0))->capture_default_str();
  prop->add_option("--pitch-um", pitch_um, "input sample pitch in micrometres")->check(CLI::PositiveNumber)->capture_default_str();
  prop->add_option("--distance-mm", distance_mm, "propagation distance in millimetres (asm/fresnel may be negative)")->capture_default_str();
  prop->add_option("--in", in_path, "input field .npy: complex64/128, or a real array taken as amplitude")->required();
  prop->add_option("--out", out_path, "output field .npy (complex128)")->required();
  prop->add_flag("--no-pad", no_pad, "asm/fresnel: circular convolution instead of 2x zero padding");

  // psf
  auto* psf = app.add_subcommand("psf", "PSF of a pupil phase mask: |DFT(pupil * exp(i phase))|^2, unit sum");
  std::string psf_in, psf_out;
  double pupil_d = 0.0;
  int pad = 2;
  psf->add_option("--in", psf_in, "phase mask .npy, radians, rows x cols")->required();
  psf->add_option("--out", psf_out, "PSF .npy (float64, (pad*rows) x (pad*cols), optical axis at the centre)")->required();
  psf->add_option("--pupil-diameter-px", pupil_d, "circular pupil diameter in mask pixels; 0 = the whole mask")->check(CLI::NonNegativeNumber)->capture_default_str();
  psf->add_option("--pad", pad, "zero-padding factor of the PSF grid (2 = Nyquist-sampled intensity)")->check(CLI::Range(1, 8))->capture_default_str();

  // image
  auto* img = app.add_subcommand("image", "Incoherent image: object intensity convolved with a PSF ('same' size)");
  std::string obj_in, img_psf, img_out;
  img->add_option("--object", obj_in, "object intensity .npy (any units, >= 0)")->required();
  img->add_option("--psf", img_psf, "PSF .npy (centre sample = origin)")->required();
  img->add_option("--out", img_out, "image .npy (float64, object's shape, object units x PSF units)")->required();

  // camera
  auto* cam = app.add_subcommand("camera", "Camera model: irradiance -> ADC counts (shot, read, dark noise, saturation)");
  std::string cam_in, cam_out, cam_cfg;
  std::uint64_t cam_seed = 1;
  cam->add_option("--in", cam_in, "irradiance .npy in photons per sensor pixel per millisecond")->required();
  cam->add_option("--out", cam_out, "counts .npy (uint16, (rows/binning) x (cols/binning))")->required();
  cam->add_option("--config", cam_cfg, "YAML with a `camera:` section, or an as-built profile (its sensor noise); "
                                       "default: default camera sized to the input");
  cam->add_option("--seed", cam_seed, "seed of the frame's shot and read noise")->capture_default_str();

  // demo
  auto* demo = app.add_subcommand("demo", "Image a test chart through a Gerchberg-Saxton 4-kernel phase mask under "
                                          "an as-built profile; write PNG figures, .npy arrays and summary.json");
  std::string demo_out, demo_profile;
  std::uint64_t demo_seed = 1;
  int gs_iterations = 40;
  demo->add_option("--out", demo_out, "output directory (created)")->required();
  demo->add_option("--profile", demo_profile, "as-built profile YAML (default configs/profiles/moderate.yaml)");
  demo->add_option("--seed", demo_seed, "seed of the mask design and the frame noise")->capture_default_str();
  demo->add_option("--gs-iterations", gs_iterations, "Gerchberg-Saxton iterations")->check(CLI::Range(1, 1000))->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (*prop) {
      Field f{read_field(in_path), pitch_um * 1e-6, wavelength_nm * 1e-9};
      if (f.u.rows() < 2 || f.u.cols() < 2) throw InputError(in_path + ": field must be at least 2 x 2");
      PropagationOptions po;
      po.pad = !no_pad;
      const double z = distance_mm * 1e-3;
      Field g;
      if (method == "asm") g = propagate_angular_spectrum(f, z, po);
      else if (method == "fresnel") g = propagate_fresnel(f, z, po);
      else {
        if (z <= 0) throw InputError("--distance-mm must be > 0 for fraunhofer, got " + std::to_string(distance_mm));
        if (f.u.rows() != f.u.cols()) throw InputError(in_path + ": fraunhofer needs a square field");
        g = propagate_fraunhofer(f, z);
      }
      write_npy(out_path, from_carray(g.u, Dtype::c16));
      std::cout << "propagate: " << method << " " << distance_mm << " mm; output pitch " << g.pitch_m * 1e6
                << " um -> " << out_path << "\n";
    } else if (*psf) {
      const RArray phase = read_real(psf_in);
      if (!phase.isFinite().all()) throw InputError(psf_in + ": phase must be finite");
      const double d = pupil_d > 0 ? pupil_d : double(std::min(phase.rows(), phase.cols()));
      if (d > double(std::min(phase.rows(), phase.cols())))
        throw InputError("--pupil-diameter-px must be <= the mask size " +
                         std::to_string(std::min(phase.rows(), phase.cols())) + ", got " + std::to_string(pupil_d));
      const RArray pupil = circular_aperture(phase.rows(), phase.cols(), 1.0, 0.5 * d, 4);
      write_real(psf_out, psf_from_phase(phase, pupil, pad));
      std::cout << "psf: " << pad * phase.rows() << " x " << pad * phase.cols() << " -> " << psf_out << "\n";
    } else if (*img) {
      const RArray object = read_real(obj_in), kernel = read_real(img_psf);
      if (!object.isFinite().all() || (object < 0).any()) throw InputError(obj_in + ": object must be finite and >= 0");
      if (!kernel.isFinite().all() || (kernel < 0).any()) throw InputError(img_psf + ": PSF must be finite and >= 0");
      write_real(img_out, incoherent_image(object, kernel));
      std::cout << "image: " << object.rows() << " x " << object.cols() << " -> " << img_out << "\n";
    } else if (*cam) {
      const RArray irr = read_real(cam_in);
      CameraOptions co;
      if (!cam_cfg.empty()) {
        co = load_camera(cam_cfg);
      } else {
        co.rows = int(irr.rows());
        co.cols = int(irr.cols());
      }
      if (irr.rows() != co.rows || irr.cols() != co.cols)
        throw InputError(cam_in + ": shape " + std::to_string(irr.rows()) + " x " + std::to_string(irr.cols()) +
                         " does not match camera.rows x camera.cols = " + std::to_string(co.rows) + " x " +
                         std::to_string(co.cols) + (cam_cfg.empty() ? "" : " of " + cam_cfg));
      if (!irr.isFinite().all() || (irr < 0).any()) throw InputError(cam_in + ": irradiance must be finite and >= 0");
      std::mt19937_64 rng(cam_seed);
      const RArray counts = CameraModel(co).capture(irr, rng);
      write_npy(cam_out, from_rarray(counts, Dtype::u2));
      std::cout << "camera: " << counts.rows() << " x " << counts.cols() << " counts, max " << counts.maxCoeff()
                << " of " << CameraModel(co).full_scale_counts() << " -> " << cam_out << "\n";
    } else if (*demo) {
      return run_demo(demo_out, demo_profile, demo_seed, gs_iterations);
    }
  } catch (const std::exception& e) {
    std::cerr << "hilo-sim: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
