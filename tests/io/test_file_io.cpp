// The one crash-safe writer: complete files or none, errors naming the path and the failed step.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "hilo/io/file_io.hpp"

namespace fs = std::filesystem;
using namespace hilo::io;

namespace {
fs::path fresh(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("hilo_test_file_io_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
}  // namespace

TEST(WriteFileAtomic, ReplacesTheWholeFileAndLeavesNoTemporary) {
  const fs::path d = fresh("replace");
  const std::string a(100000, 'a'), b = "short";
  write_file_atomic(d / "f.bin", std::as_bytes(std::span(a)));
  EXPECT_EQ(read(d / "f.bin"), a);
  write_file_atomic(d / "f.bin", std::as_bytes(std::span(b)));
  EXPECT_EQ(read(d / "f.bin"), b);
  EXPECT_FALSE(fs::exists(d / "f.bin.tmp"));
  // A leftover temporary file from a crash is simply overwritten.
  std::ofstream(d / "g.bin.tmp") << "stale";
  write_file_atomic(d / "g.bin", std::as_bytes(std::span(b)));
  EXPECT_EQ(read(d / "g.bin"), b);
  EXPECT_FALSE(fs::exists(d / "g.bin.tmp"));
  fs::remove_all(d);
}

TEST(WriteFileAtomic, FailuresNameThePathAndTheStep) {
  const fs::path d = fresh("fail");
  const std::string b = "x";
  try {
    write_file_atomic(d / "missing" / "f.bin", std::as_bytes(std::span(b)));
    FAIL() << "wrote into a missing directory";
  } catch (const FileError& e) {
    EXPECT_EQ(std::string(e.what()).find((d / "missing" / "f.bin").string() + ": cannot create:"), 0u) << e.what();
  }
  // A directory in the way of the rename: the old entry stays, the temporary file is removed.
  fs::create_directories(d / "dir" / "inner");
  try {
    write_file_atomic(d / "dir", std::as_bytes(std::span(b)));
    FAIL() << "renamed over a non-empty directory";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find(": rename failed:"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_directory(d / "dir" / "inner"));
  EXPECT_FALSE(fs::exists(d / "dir.tmp"));
  EXPECT_THROW(fsync_directory(d / "nowhere"), FileError);
  fs::remove_all(d);
}

TEST(WriteJsonAtomic, PrettyPrintsWithAFinalNewline) {
  const fs::path d = fresh("json");
  write_json_atomic(d / "m.json", {{"a", 1}, {"b", "\xff"}});
  const std::string s = read(d / "m.json");
  EXPECT_EQ(s.back(), '\n');
  EXPECT_EQ(nlohmann::json::parse(s)["a"], 1);
  EXPECT_NE(s.find("\xef\xbf\xbd"), std::string::npos) << "invalid UTF-8 is replaced, not a throw";
  fs::remove_all(d);
}
