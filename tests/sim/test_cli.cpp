// Tests of the hilo-sim executable, run as a child process. The binary is found relative to this test
// executable: <build>/tests/sim/<test> → <build>/sim/hilo-sim (both targets live in one build tree).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "hilo/sim/npy.hpp"

namespace fs = std::filesystem;
using namespace hilo::sim;

namespace {
fs::path binary() { return fs::read_symlink("/proc/self/exe").parent_path().parent_path().parent_path() / "sim" / "hilo-sim"; }
fs::path configs_dir() { return HILO_CONFIGS_DIR; }

fs::path temp_dir() {
  const fs::path d = fs::temp_directory_path() / ("hilo_cli_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

struct Result {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

Result run(const std::string& args) {
  const fs::path d = temp_dir();
  const std::string cmd = "'" + binary().string() + "' " + args + " >'" + (d / "stdout").string() + "' 2>'" +
                          (d / "stderr").string() + "'";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(d / "stdout"), slurp(d / "stderr")};
}

fs::path write_text(const std::string& name, const std::string& text) {
  const fs::path p = temp_dir() / name;
  std::ofstream(p) << text;
  return p;
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

class HiloSimCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(binary())) << binary() << " is missing: build the hilo-sim target";
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(temp_dir(), ec);
  }
};
}  // namespace

TEST_F(HiloSimCli, HelpDocumentsEveryOptionWithUnits) {
  const Result top = run("--help");
  EXPECT_EQ(top.code, 0);
  for (const char* sub : {"propagate", "psf", "image", "camera", "demo"}) EXPECT_NE(top.out.find(sub), std::string::npos) << sub;
  const Result prop = run("propagate --help");
  EXPECT_EQ(prop.code, 0);
  for (const char* s : {"--wavelength-nm", "nanometres", "--pitch-um", "micrometres", "--distance-mm", "millimetres", "--method"})
    EXPECT_NE(prop.out.find(s), std::string::npos) << s;
  EXPECT_NE(run("camera --help").out.find("photons per sensor pixel per millisecond"), std::string::npos);
  EXPECT_NE(run("psf --help").out.find("radians"), std::string::npos);
}

TEST_F(HiloSimCli, BadCommandLineFails) {
  EXPECT_NE(run("").code, 0);
  EXPECT_NE(run("frobnicate").code, 0);
  const Result r = run("propagate --in a.npy --out b.npy --method magic");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--method"), std::string::npos) << r.err;
}

TEST_F(HiloSimCli, CameraCountsFollowTheConfig) {
  const fs::path in = temp_dir() / "irr.npy", out = temp_dir() / "counts.npy";
  RArray irr(4, 6);
  for (Eigen::Index i = 0; i < irr.size(); ++i) irr.data()[i] = 10.0 * double(i);
  write_npy(in, from_rarray(irr));
  const fs::path cfg = write_text("cam.yaml",
      "camera:\n  rows: 4\n  cols: 6\n  exposure_ms: 2\n  quantum_efficiency: 0.5\n  gain_e_per_count: 2\n  bit_depth: 8\n"
      "  noise: {shot_noise: false, read_noise_e: 0, dark_offset_counts: 5, dark_current_e_per_s: 0}\n");
  const Result r = run("camera --in " + q(in) + " --out " + q(out) + " --config " + q(cfg));
  ASSERT_EQ(r.code, 0) << r.err;
  const RArray counts = to_rarray(read_npy(out), "counts");
  for (Eigen::Index i = 0; i < irr.size(); ++i)
    EXPECT_EQ(counts.data()[i], std::min(255.0, std::round(irr.data()[i] * 2 * 0.5 / 2 + 5))) << i;
}

TEST_F(HiloSimCli, BadConfigNamesTheField) {
  const fs::path in = temp_dir() / "irr8.npy", out = temp_dir() / "c8.npy";
  write_npy(in, from_rarray(RArray::Constant(8, 8, 1.0)));
  struct Case {
    std::string yaml, expect;
  } cases[] = {
      {"camera:\n  rows: 8\n  cols: 8\n  bitdepth: 12\n", "unknown key 'camera.bitdepth' (line 4; did you mean 'bit_depth'?)"},
      {"camera:\n  rows: 8\n  cols: 8\n  exposure_ms: fast\n", "camera.exposure_ms must be a number, got 'fast'"},
      {"camera:\n  rows: 8\n  cols: 8\n  bit_depth: 20\n", "camera.bit_depth must be in [8, 16], got 20"},
      {"profile:\n  misalignment: {rotation_deg: abc}\n", "profile.misalignment.rotation_deg must be a number, got 'abc'"},
      {"camera:\n  rows: 16\n  cols: 8\n", "does not match camera.rows x camera.cols = 16 x 8"},
  };
  for (const auto& c : cases) {
    const fs::path cfg = write_text("bad.yaml", c.yaml);
    const Result r = run("camera --in " + q(in) + " --out " + q(out) + " --config " + q(cfg));
    EXPECT_EQ(r.code, 1) << c.yaml;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  }
  const Result missing = run("camera --in " + q(in) + " --out " + q(out) + " --config no/such.yaml");
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("cannot open config file 'no/such.yaml'"), std::string::npos) << missing.err;
}

TEST_F(HiloSimCli, BadNpyNamesTheFile) {
  const fs::path corrupt = write_text("corrupt.npy", "this is not a numpy file at all");
  const fs::path out = temp_dir() / "o.npy";
  Result r = run("psf --in " + q(corrupt) + " --out " + q(out));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(corrupt.string()), std::string::npos) << r.err;

  const fs::path cube = temp_dir() / "cube.npy";
  const std::vector<double> data(2 * 3 * 4, 1.0);
  write_npy(cube, make_npy(std::span<const double>(data), {2, 3, 4}));
  r = run("image --object " + q(cube) + " --psf " + q(cube) + " --out " + q(out));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(cube.string()), std::string::npos) << r.err;

  r = run("camera --in missing_file.npy --out " + q(out));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("missing_file.npy"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(HiloSimCli, PsfOfAFlatMaskIsCentredAndImageWithADeltaIsIdentity) {
  const fs::path phase = temp_dir() / "flat.npy", psf = temp_dir() / "psf.npy";
  write_npy(phase, from_rarray(RArray::Zero(16, 16)));
  Result r = run("psf --in " + q(phase) + " --out " + q(psf) + " --pad 2");
  ASSERT_EQ(r.code, 0) << r.err;
  const RArray p = to_rarray(read_npy(psf), "psf");
  ASSERT_EQ(p.rows(), 32);
  EXPECT_NEAR(p.sum(), 1.0, 1e-12);
  Eigen::Index pr, pc;
  p.maxCoeff(&pr, &pc);
  EXPECT_EQ(pr, 16);
  EXPECT_EQ(pc, 16);

  const fs::path obj = temp_dir() / "obj.npy", delta = temp_dir() / "delta.npy", img = temp_dir() / "img.npy";
  RArray o(9, 7);
  for (Eigen::Index i = 0; i < o.size(); ++i) o.data()[i] = double(i % 5);
  RArray d = RArray::Zero(3, 3);
  d(1, 1) = 1.0;
  write_npy(obj, from_rarray(o));
  write_npy(delta, from_rarray(d));
  r = run("image --object " + q(obj) + " --psf " + q(delta) + " --out " + q(img));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_LT((to_rarray(read_npy(img), "img") - o).abs().maxCoeff(), 1e-12);
}

TEST_F(HiloSimCli, PropagateForwardThenBackReturnsTheField) {
  const fs::path in = temp_dir() / "u.npy", mid = temp_dir() / "mid.npy", back = temp_dir() / "back.npy";
  RArray amp = RArray::Zero(64, 64);
  for (int r = 0; r < 64; ++r)
    for (int c = 0; c < 64; ++c) amp(r, c) = std::exp(-((r - 32) * (r - 32) + (c - 32) * (c - 32)) / 50.0);
  write_npy(in, from_rarray(amp, Dtype::f4));  // real input = amplitude
  Result r = run("propagate --method asm --wavelength-nm 633 --pitch-um 4 --distance-mm 2 --in " + q(in) + " --out " + q(mid));
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("propagate --method asm --wavelength-nm 633 --pitch-um 4 --distance-mm -2 --in " + q(mid) + " --out " + q(back));
  ASSERT_EQ(r.code, 0) << r.err;
  const CArray u = to_carray(read_npy(mid), "mid"), b = to_carray(read_npy(back), "back");
  EXPECT_GT((u.abs() - amp).abs().maxCoeff(), 0.01);  // the field did change in between
  EXPECT_LT((b - amp.cast<cplx>()).abs().maxCoeff(), 1e-3);
  r = run("propagate --method fraunhofer --distance-mm -1 --in " + q(in) + " --out " + q(mid));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--distance-mm must be > 0"), std::string::npos) << r.err;
}

TEST_F(HiloSimCli, DemoWritesFiguresAndSummary) {
  const fs::path out = temp_dir() / "demo";
  const Result r = run("demo --out " + q(out) + " --profile " + q(configs_dir() / "profiles/moderate.yaml"));
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* f : {"target.png", "mask.png", "psf_design.png", "psf_as_built.png", "image_ideal.png",
                        "frame_as_built.png", "summary.json", "frame_as_built.npy"})
    EXPECT_GT(fs::file_size(out / f), 50u) << f;
  const std::string summary = slurp(out / "summary.json");
  EXPECT_NE(summary.find("\"name\": \"moderate\""), std::string::npos);
  EXPECT_NE(summary.find("tile_energy_fraction_as_built"), std::string::npos);
  const RArray frame = to_rarray(read_npy(out / "frame_as_built.npy"), "frame");
  EXPECT_EQ(frame.rows(), 128);
  EXPECT_GT(frame.maxCoeff(), 200.0);
}
