#include "hilo/sim/config.hpp"

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace fs = std::filesystem;
using namespace hilo::sim;

namespace {
// The repository's configs/ folder, found from this source file's location.
fs::path configs_dir() { return HILO_CONFIGS_DIR; }

// The ConfigError message of f(), or "" if it does not throw.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, ShippedProfilesLoadAndGrowInSeverity) {
  const AsBuiltProfile ideal = load_profile(configs_dir() / "profiles/ideal.yaml");
  const AsBuiltProfile mild = load_profile(configs_dir() / "profiles/mild.yaml");
  const AsBuiltProfile moderate = load_profile(configs_dir() / "profiles/moderate.yaml");
  const AsBuiltProfile severe = load_profile(configs_dir() / "profiles/severe.yaml");
  EXPECT_EQ(ideal.name, "ideal");
  EXPECT_EQ(moderate.name, "moderate");
  EXPECT_EQ(ideal.misalignment.rotation_deg, 0.0);
  EXPECT_FALSE(ideal.sensor.shot_noise);
  EXPECT_EQ(moderate.aberrations.zernike_waves.at(5), 0.03);
  auto shift = [](const AsBuiltProfile& p) { return std::hypot(p.misalignment.shift_x_px, p.misalignment.shift_y_px); };
  EXPECT_LT(shift(ideal), shift(mild));
  EXPECT_LT(shift(mild), shift(moderate));
  EXPECT_LT(shift(moderate), shift(severe));
  EXPECT_LT(std::abs(mild.aberrations.defocus_waves), std::abs(moderate.aberrations.defocus_waves));
  EXPECT_LT(moderate.sensor.read_noise_e, severe.sensor.read_noise_e);
}

TEST(Config, ShippedBenchFileLoadsWithItsProfile) {
  const BenchOptions b = load_bench(configs_dir() / "sim.yaml");
  EXPECT_EQ(b.input.rows, 28);
  EXPECT_EQ(b.element.kind, ElementKind::slm);
  EXPECT_EQ(b.element.slm.rows, 64);
  EXPECT_EQ(b.camera.bit_depth, 12);
  EXPECT_EQ(b.profile.name, "moderate");
}

TEST(Config, UnknownKeyIsRejectedWithASuggestion) {
  const std::string e = error_of([] { parse_camera("camera:\n  rows: 32\n  bitdepth: 12\n", "cam.yaml"); });
  EXPECT_EQ(e, "cam.yaml: unknown key 'camera.bitdepth' (line 3; did you mean 'bit_depth'?)");
  EXPECT_NE(error_of([] { parse_profile("profile:\n  drift: {banana: 1}\n", "p.yaml"); })
                .find("unknown key 'profile.drift.banana'"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_profile("profile: {}\nextra: 1\n", "p.yaml"); }).find("unknown key 'extra'"),
            std::string::npos);
}

TEST(Config, WrongTypeNamesTheFieldAndTheValue) {
  EXPECT_EQ(error_of([] { parse_profile("profile:\n  misalignment:\n    rotation_deg: abc\n", "p.yaml"); }),
            "p.yaml: profile.misalignment.rotation_deg must be a number, got 'abc' (line 3)");
  EXPECT_EQ(error_of([] { parse_camera("camera:\n  bit_depth: 12.5\n", "c.yaml"); }),
            "c.yaml: camera.bit_depth must be an integer, got '12.5' (line 2)");
  EXPECT_EQ(error_of([] { parse_camera("camera:\n  noise: {shot_noise: maybe}\n", "c.yaml"); }),
            "c.yaml: camera.noise.shot_noise must be true or false, got 'maybe' (line 2)");
  EXPECT_NE(error_of([] { parse_profile("profile:\n  misalignment: [1, 2]\n", "p.yaml"); })
                .find("profile.misalignment must be a mapping, got a list"),
            std::string::npos);
}

TEST(Config, OutOfRangeValueNamesTheRule) {
  EXPECT_EQ(error_of([] { parse_camera("camera:\n  bit_depth: 20\n", "c.yaml"); }),
            "c.yaml: camera.bit_depth must be in [8, 16], got 20");
  EXPECT_EQ(error_of([] { parse_profile("profile:\n  misalignment: {scale: 3}\n", "p.yaml"); }),
            "p.yaml: profile.misalignment.scale must be in [0.5, 2], got 3");
  EXPECT_NE(error_of([] { parse_profile("profile:\n  aberrations: {zernike_waves: {1: 0.1}}\n", "p.yaml"); })
                .find("profile.aberrations.zernike_waves key must be in [2, 66], got 1"),
            std::string::npos);
}

TEST(Config, ValuesReachTheOptions) {
  const AsBuiltProfile p = parse_profile(
      "profile:\n  seed: 99\n  brightness: {gain: 0.9}\n  misalignment: {shift_x_px: -2.5, rotation_deg: 1}\n"
      "  aberrations: {defocus_waves: 0.3, zernike_waves: {7: -0.1}}\n"
      "  fabrication: {quantization_levels: 8}\n  sensor: {read_noise_e: 3}\n  drift: {gain_per_s: 0.001}\n",
      "p.yaml");
  EXPECT_EQ(p.seed, 99u);
  EXPECT_EQ(p.gain, 0.9);
  EXPECT_EQ(p.misalignment.shift_x_px, -2.5);
  EXPECT_EQ(p.misalignment.rotation_deg, 1.0);
  EXPECT_EQ(p.aberrations.defocus_waves, 0.3);
  EXPECT_EQ(p.aberrations.zernike_waves.at(7), -0.1);
  EXPECT_EQ(p.fabrication.quantization_levels, 8);
  EXPECT_EQ(p.sensor.read_noise_e, 3.0);
  EXPECT_FALSE(p.sensor.shot_noise);  // untouched keys keep the (ideal) defaults
  EXPECT_EQ(p.drift.gain_per_s, 0.001);
}

TEST(Config, ProfileFileDoublesAsCameraNoise) {
  const CameraOptions c = load_camera(configs_dir() / "profiles/moderate.yaml");
  EXPECT_EQ(c.noise.read_noise_e, 2.5);
  EXPECT_EQ(c.seed, 2024u);
}

TEST(Config, BenchRejectsBadKindAndUnfittingInput) {
  const std::string head = "simulator:\n  profile: {name: inline}\n";
  EXPECT_NE(error_of([&] { parse_bench(head + "  element: {kind: lens}\n", "b.yaml", "."); })
                .find("simulator.element.kind must be one of slm, fabricated, psf, got 'lens'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              parse_bench(head + "  input: {rows: 28, cols: 28, camera_px_per_input_px: 4}\n  camera: {rows: 64, cols: 64}\n",
                          "b.yaml", ".");
            }).find("simulator.input (28 x 28 px at 4 camera px per input px) must fit"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_bench("simulator:\n  profile: no/such/profile.yaml\n", "b.yaml", "."); })
                .find("cannot open config file"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_bench(head + "  element: {slm: {lut_rad: [0, 1]}}\n", "b.yaml", "."); })
                .find("simulator.element.slm.lut_rad must have 2^bit_depth = 256 entries, got 2"),
            std::string::npos);
  EXPECT_EQ(parse_bench(head + "  imaging: coherent\n", "b.yaml", ".").imaging, Imaging::coherent);
  EXPECT_EQ(parse_bench(head, "b.yaml", ".").imaging, Imaging::incoherent);
  EXPECT_NE(error_of([&] { parse_bench(head + "  imaging: partial\n", "b.yaml", "."); })
                .find("simulator.imaging must be one of incoherent, coherent, got 'partial'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_bench(head + "  imaging: coherent\n  element: {kind: psf}\n", "b.yaml", "."); })
                .find("simulator.imaging coherent needs an element with a phase"),
            std::string::npos);
}

TEST(Config, MissingFileAndSyntaxErrorsAreConfigErrors) {
  EXPECT_EQ(error_of([] { load_profile("no/such/file.yaml"); }), "cannot open config file 'no/such/file.yaml'");
  EXPECT_NE(error_of([] { parse_profile("profile: {a: [1, 2\n", "p.yaml"); }).find("p.yaml: YAML syntax error"),
            std::string::npos);
  EXPECT_EQ(error_of([] { parse_profile("camera: {}\n", "p.yaml"); }),
            "p.yaml: unknown key 'camera' (line 1)");
}
