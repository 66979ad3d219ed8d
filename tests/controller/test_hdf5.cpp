// Hdf5RunWriter: written arrays read back bit for bit through the plain HDF5 C API, the NeXus layout's
// attributes, SWMR mode while writing, refused chunks, an unwritable path, and a run rebuilt from .npy.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <random>

#include "hilo/controller/hdf5_run.hpp"
#include "hilo/controller/storage.hpp"

namespace {

namespace fs = std::filesystem;
using hilo::controller::Hdf5Error;
using hilo::controller::Hdf5RunWriter;
using hilo::controller::RunWriter;
using nlohmann::json;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("hilo_hdf5_" + std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// A chunk of `n` records: frames <u2 [n,4,5], inputs |u1 [n,2,3], indices <i8 [n].
std::vector<RunWriter::Array> chunk(std::size_t n, std::uint32_t seed) {
  return {{"frames", "<u2", {n, 4, 5}, random_bytes(n * 40, seed)},
          {"inputs", "|u1", {n, 2, 3}, random_bytes(n * 6, seed + 1)},
          {"indices", "<i8", {n}, random_bytes(n * 8, seed + 2)}};
}

json manifest(const std::string& state) {
  return {{"run_id", "20240101T000000Z-capture-1"},
          {"kind", "capture"},
          {"state", state},
          {"created_s", 1704067200.0},
          {"devices", {{"slm", "sim-slm"}, {"camera", "sim-camera"}, {"exposure_ms", 10.0}, {"gain_db", 0.0}}},
          {"placement", {{"scale", 2}, {"slm_rows", 64}, {"slm_cols", 64}, {"slm_bit_depth", 8}}},
          {"calibration", {{"gain", 1.5}, {"dark_level", 12}}}};
}

struct Read {
  std::vector<hsize_t> dims, maxdims, chunk;
  std::string bytes;
};

Read read_dataset(hid_t file, const std::string& path) {
  Read r;
  const hid_t d = H5Dopen2(file, path.c_str(), H5P_DEFAULT);
  EXPECT_GE(d, 0) << path;
  if (d < 0) return r;
  const hid_t space = H5Dget_space(d), type = H5Dget_type(d), dcpl = H5Dget_create_plist(d);
  const int rank = H5Sget_simple_extent_ndims(space);
  r.dims.resize(rank);
  r.maxdims.resize(rank);
  r.chunk.resize(rank);
  H5Sget_simple_extent_dims(space, r.dims.data(), r.maxdims.data());
  H5Pget_chunk(dcpl, rank, r.chunk.data());
  hsize_t n = H5Tget_size(type);
  for (auto x : r.dims) n *= x;
  r.bytes.resize(n);
  if (n) {
    EXPECT_GE(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, r.bytes.data()), 0);
  }
  H5Pclose(dcpl);
  H5Tclose(type);
  H5Sclose(space);
  H5Dclose(d);
  return r;
}

std::string string_attr(hid_t file, const std::string& obj, const std::string& name) {
  const hid_t a = H5Aopen_by_name(file, obj.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) return "<missing>";
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  char* p = nullptr;
  std::string out = H5Aread(a, t, &p) >= 0 && p ? p : "<unreadable>";
  H5free_memory(p);
  H5Tclose(t);
  H5Aclose(a);
  return out;
}

std::string cat(const std::vector<RunWriter::Array>& a, const std::vector<RunWriter::Array>& b, std::size_t i) {
  return a[i].bytes + b[i].bytes;
}

TEST(Hdf5RunWriter, WritesChunksThatReadBackBitEqualWithTheLayoutAttributes) {
  TempDir tmp;
  const auto path = tmp.path / "run.h5";
  auto w = Hdf5RunWriter::create(path, manifest("running"));
  EXPECT_FALSE(w.swmr());
  const auto c1 = chunk(3, 1), c2 = chunk(2, 7);
  w.append(c1, 3);
  EXPECT_TRUE(w.swmr());
  w.append(c2, 2);
  EXPECT_EQ(w.records(), 5u);
  w.finish(manifest("done"));

  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const auto frames = read_dataset(f, "/entry/data/frames");
  EXPECT_EQ(frames.dims, (std::vector<hsize_t>{5, 4, 5}));
  EXPECT_EQ(frames.maxdims[0], H5S_UNLIMITED);
  EXPECT_EQ(frames.chunk, (std::vector<hsize_t>{1, 4, 5}));
  EXPECT_EQ(frames.bytes, cat(c1, c2, 0));
  EXPECT_EQ(read_dataset(f, "/entry/data/inputs").bytes, cat(c1, c2, 1));
  const auto idx = read_dataset(f, "/entry/data/indices");
  EXPECT_EQ(idx.dims, (std::vector<hsize_t>{5}));
  EXPECT_EQ(idx.bytes, cat(c1, c2, 2));
  EXPECT_EQ(string_attr(f, "/", "NX_class"), "NXroot");
  EXPECT_EQ(string_attr(f, "/", "creator").rfind("hilod ", 0), 0u);
  EXPECT_EQ(string_attr(f, "/", "file_name"), "run.h5");
  EXPECT_EQ(string_attr(f, "/entry", "state"), "done");
  EXPECT_EQ(string_attr(f, "/entry", "start_time"), "2024-01-01T00:00:00Z");
  EXPECT_EQ(json::parse(string_attr(f, "/entry", "manifest"))["state"], "done");
  EXPECT_EQ(string_attr(f, "/entry/data", "signal"), "frames");
  EXPECT_EQ(string_attr(f, "/entry/data/frames", "units"), "counts");
  EXPECT_EQ(string_attr(f, "/entry/data/inputs", "units"), "levels");
  EXPECT_EQ(string_attr(f, "/entry/instrument/camera", "NX_class"), "NXdetector");
  EXPECT_EQ(string_attr(f, "/entry/instrument/camera", "name"), "sim-camera");
  EXPECT_EQ(string_attr(f, "/entry/instrument/input_slm", "name"), "sim-slm");
  EXPECT_EQ(H5Lexists(f, "/entry/instrument/element_slm", H5P_DEFAULT), 0);  // the manifest does not describe it
  double gain = 0;
  const hid_t a = H5Aopen_by_name(f, "/entry/calibration", "gain", H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(a, 0);
  H5Aread(a, H5T_NATIVE_DOUBLE, &gain);
  H5Aclose(a);
  EXPECT_EQ(gain, 1.5);
  H5Fclose(f);
}

// The file's access flags as a second handle in this process sees them (it shares the writer's open
// file). Readers in other processes are tested against hilod in test_hdf5.py.
unsigned intent_of(const fs::path& path) {
  const hid_t r = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(r, 0);
  unsigned intent = 0;
  H5Fget_intent(r, &intent);
  H5Fclose(r);
  return intent;
}

TEST(Hdf5RunWriter, SwitchesToSwmrWritingAtTheFirstAppendAndLeavesTheFileClosedAfterFinish) {
  TempDir tmp;
  const auto path = tmp.path / "run.h5";
  auto w = Hdf5RunWriter::create(path, manifest("running"));
  EXPECT_FALSE(intent_of(path) & H5F_ACC_SWMR_WRITE);
  w.append(chunk(2, 1), 2);
  EXPECT_TRUE(intent_of(path) & H5F_ACC_SWMR_WRITE);
  w.append(chunk(3, 5), 3);
  w.finish(manifest("done"));
  EXPECT_FALSE(w.swmr());
  EXPECT_THROW(w.append(chunk(1, 2), 1), Hdf5Error);
  const hid_t r = H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
  ASSERT_GE(r, 0) << "a finished file opens for SWMR reading";
  EXPECT_EQ(read_dataset(r, "/entry/data/frames").dims, (std::vector<hsize_t>{5, 4, 5}));
  H5Fclose(r);
}

TEST(Hdf5RunWriter, RefusesAChunkThatDiffersFromTheFirstAndKeepsTheRecords) {
  TempDir tmp;
  auto w = Hdf5RunWriter::create(tmp.path / "run.h5", manifest("running"));
  w.append(chunk(2, 1), 2);
  auto bad = chunk(1, 3);
  bad[0].dtype = "|u1";
  bad[0].bytes.resize(20);
  EXPECT_THROW(w.append(bad, 1), Hdf5Error);
  auto short_bytes = chunk(1, 3);
  short_bytes[1].bytes.pop_back();
  EXPECT_THROW(w.append(short_bytes, 1), Hdf5Error);
  EXPECT_EQ(w.records(), 2u);
  w.append(chunk(1, 9), 1);
  EXPECT_EQ(w.records(), 3u);
}

TEST(Hdf5RunWriter, AnUnwritablePathThrowsAMessageNamingItAndPrintsNothing) {
  testing::internal::CaptureStderr();
  try {
    (void)Hdf5RunWriter::create("/nonexistent-hilo-dir/run.h5", manifest("running"));
    ADD_FAILURE() << "create() must throw";
  } catch (const Hdf5Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("/nonexistent-hilo-dir/run.h5: cannot create the HDF5 file"), std::string::npos) << m;
    EXPECT_NE(m.find("H5F"), std::string::npos) << m;  // HDF5's own stack names the failing call
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(Hdf5RunWriter, RebuildsARunFromItsNpyChunksAndContinues) {
  TempDir tmp;
  const auto dir = tmp.path / "run";
  RunWriter rw(dir, manifest("running"));
  const auto c1 = chunk(3, 11), c2 = chunk(4, 21);
  rw.append_chunk(c1, 3);
  rw.append_chunk(c2, 4);
  auto w = hilo::controller::hdf5_from_run(dir / "run.h5", dir, rw.manifest());
  EXPECT_EQ(w.records(), 7u);
  EXPECT_TRUE(w.swmr());
  w.append(chunk(1, 31), 1);
  w.finish(rw.manifest());
  const hid_t f = H5Fopen((dir / "run.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  EXPECT_EQ(read_dataset(f, "/entry/data/frames").bytes, cat(c1, c2, 0) + chunk(1, 31)[0].bytes);
  EXPECT_EQ(read_dataset(f, "/entry/data/indices").bytes, cat(c1, c2, 2) + chunk(1, 31)[2].bytes);
  H5Fclose(f);
}

}  // namespace
