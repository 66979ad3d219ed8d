#include "hilo/sim/npy.hpp"

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

namespace fs = std::filesystem;
using namespace hilo::sim;

namespace {
fs::path temp_path(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("hilo_npy_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}
std::vector<std::byte> bytes_of(const std::string& s) {
  const auto b = std::as_bytes(std::span<const char>(s.data(), s.size()));
  return {b.begin(), b.end()};
}
}  // namespace

TEST(Npy, RealRoundTripThroughFileKeepsEveryValue) {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> g;
  for (auto [r, c] : {std::pair{1, 1}, {3, 5}, {64, 17}}) {
    RArray a(r, c);
    for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = g(rng);
    const auto p = temp_path("real.npy");
    write_npy(p, from_rarray(a));
    const RArray b = to_rarray(read_npy(p), p.string());
    ASSERT_EQ(b.rows(), r);
    ASSERT_EQ(b.cols(), c);
    EXPECT_EQ((a - b).abs().maxCoeff(), 0.0);
    EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
  }
}

TEST(Npy, ComplexRoundTripInBothPrecisions) {
  CArray a(4, 6);
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = cplx(0.25 * double(i), -1.5 * double(i));
  const auto p = temp_path("c.npy");
  write_npy(p, from_carray(a, Dtype::c16));
  EXPECT_EQ((to_carray(read_npy(p), "c") - a).abs().maxCoeff(), 0.0);
  write_npy(p, from_carray(a, Dtype::c8));
  EXPECT_LT((to_carray(read_npy(p), "c") - a).abs().maxCoeff(), 1e-5);
}

TEST(Npy, HeaderIsAlignedAndReadableAsVersion1) {
  const auto bytes = serialize_npy(from_rarray(RArray::Zero(2, 3), Dtype::f4));
  ASSERT_GT(bytes.size(), 10u);
  EXPECT_EQ(static_cast<int>(bytes[6]), 1);
  const std::size_t hl = static_cast<std::size_t>(bytes[8]) | (static_cast<std::size_t>(bytes[9]) << 8);
  EXPECT_EQ((10 + hl) % 64, 0u);
  EXPECT_EQ(bytes.size(), 10 + hl + 2 * 3 * 4);
}

TEST(Npy, OneDimensionalShapeIsWrittenAsOneTuple) {
  std::vector<std::int64_t> v{1, 2, 3};
  const auto a = make_npy<std::int64_t>(std::span<const std::int64_t>(v), {3});
  const auto bytes = serialize_npy(a);
  const std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  EXPECT_NE(text.find("'shape': (3,)"), std::string::npos);
  EXPECT_EQ(parse_npy(bytes, "x").shape, std::vector<std::size_t>{3});
}

TEST(Npy, RejectsCorruptInputNamingTheSource) {
  auto expect_error = [](const std::vector<std::byte>& b, const std::string& fragment) {
    try {
      parse_npy(b, "frame.npy");
      FAIL() << "expected NpyError containing " << fragment;
    } catch (const NpyError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("frame.npy"), std::string::npos) << msg;
      EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
    }
  };
  expect_error(bytes_of("hello world"), "bad magic");
  auto good = serialize_npy(from_rarray(RArray::Ones(3, 3)));
  auto truncated = good;
  truncated.resize(good.size() - 8);
  expect_error(truncated, "payload");
  std::string h = std::string("\x93NUMPY\x01\x00", 8);
  std::string dict = "{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }\n";
  h += std::string(1, char(dict.size())) + std::string(1, '\0') + dict + std::string(8, '\0');
  expect_error(bytes_of(h), "unsupported dtype");
  std::string dict2 = "{'descr': '<f8', 'fortran_order': False, 'shape': (a,), }\n";
  std::string h2 = std::string("\x93NUMPY\x01\x00", 8) + std::string(1, char(dict2.size())) + std::string(1, '\0') + dict2;
  expect_error(bytes_of(h2), "shape entry");
}

TEST(Npy, WrongShapeOrKindIsAClearError) {
  std::vector<float> v(8, 1.0f);
  const auto a3 = make_npy<float>(std::span<const float>(v), {2, 2, 2});
  EXPECT_THROW(to_rarray(a3, "x"), NpyError);
  EXPECT_THROW(to_carray(from_rarray(RArray::Ones(2, 2)), "x"), NpyError);
  EXPECT_THROW(read_npy(temp_path("does_not_exist.npy")), NpyError);
}
