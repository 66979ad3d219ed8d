// Run storage (storage.hpp, docs/storage.md): the catalog's WAL mode and restart bookkeeping, atomic
// manifest replacement under a crash, chunk consolidation, and the errors of unusable directories.
//
// Crashes are real: a forked child runs the storage code and is killed with SIGKILL at the chosen
// point. To stop exactly between "manifest.json.tmp written and fsynced" and its rename, this file
// interposes rename(): the storage code's calls resolve to the definition below, which forwards to
// renameat() unless a child has armed it, in which case a rename onto a manifest.json kills the child.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "harness.hpp"
#include "hilo/controller/storage.hpp"
#include "hilo/sim/npy.hpp"

namespace {
bool g_kill_at_manifest_rename = false;  // set only in forked children
}  // namespace

extern "C" int rename(const char* from, const char* to) noexcept {
  if (g_kill_at_manifest_rename && std::string_view(to).ends_with("/manifest.json")) ::kill(::getpid(), SIGKILL);
  return ::renameat(AT_FDCWD, from, AT_FDCWD, to);
}

namespace hilo::controller::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct TempDir {
  fs::path path = fresh_dir("storage");
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    for (const auto& e : fs::recursive_directory_iterator(path, ec)) {
      if (e.is_directory(ec)) fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::remove_all(path, ec);
  }
};

// Runs `body` in a forked child; returns the wait status. The child exits 0 when body returns.
int in_child(const std::function<void()>& body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}
bool killed(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL; }

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

JobRecord job(std::int64_t id, JobState s, std::string error = "") {
  JobRecord j;
  j.id = id;
  j.kind = "capture";
  j.run_id = "run-" + std::to_string(id);
  j.state = s;
  j.total = 10;
  j.error = std::move(error);
  j.created_s = 100.0 + double(id);
  return j;
}
RunRecord run_of(const JobRecord& j) { return {j.run_id, "capture", j.run_id, j.created_s, std::string(to_string(j.state))}; }

// ------------------------------------------------------------------------------------------ catalog

TEST(Catalog, OpensInWalModeAndTheFileRecordsIt) {
  TempDir d;
  const auto db = d.path / "catalog.sqlite";
  {
    Catalog c(db);
    EXPECT_EQ(c.journal_mode(), "wal");
    c.insert_job(job(1, JobState::queued));
    EXPECT_TRUE(fs::exists(db.string() + "-wal")) << "a write goes to the write-ahead log";
  }
  // SQLite's file header: bytes 18 and 19 (write/read format version) are 2 in WAL mode, 1 in rollback
  // mode, so the mode is persistent and not merely a setting of the connection that asked for it.
  const std::string h = read_file(db);
  ASSERT_GE(h.size(), 100u);
  EXPECT_EQ(h.substr(0, 16), std::string("SQLite format 3\0", 16));
  EXPECT_EQ(int(h[18]), 2);
  EXPECT_EQ(int(h[19]), 2);
  Catalog again(db);
  EXPECT_EQ(again.journal_mode(), "wal");
  ASSERT_TRUE(again.job(1));
}

TEST(Catalog, ReopeningMarksUnfinishedJobsAndTheirRunsInterrupted) {
  TempDir d;
  const auto db = d.path / "catalog.sqlite";
  {
    Catalog c(db);
    for (const auto& j : {job(1, JobState::done), job(2, JobState::running), job(3, JobState::queued),
                          job(4, JobState::failed, "camera gone"), job(5, JobState::cancelled), job(6, JobState::interrupted, "old"),
                          job(7, JobState::running, "retrying after timeout")}) {
      c.insert_job(j);
      c.insert_run(run_of(j));
    }
  }
  Catalog c(db);
  EXPECT_EQ(c.mark_unfinished_interrupted(500.0), 3);
  const JobState want[] = {JobState::done,      JobState::interrupted, JobState::interrupted, JobState::failed,
                           JobState::cancelled, JobState::interrupted, JobState::interrupted};
  for (std::int64_t id = 1; id <= 7; ++id) {
    const auto j = c.job(id);
    ASSERT_TRUE(j);
    EXPECT_EQ(j->state, want[id - 1]) << "job " << id;
    EXPECT_EQ(c.run(j->run_id)->state, std::string(to_string(want[id - 1]))) << "run of job " << id;
  }
  EXPECT_EQ(c.job(2)->error, "daemon stopped before the job finished");
  EXPECT_EQ(c.job(2)->finished_s, 500.0);
  EXPECT_EQ(c.job(7)->error, "retrying after timeout");  // an earlier reason is kept
  EXPECT_EQ(c.job(1)->finished_s, 0.0);                  // final jobs are untouched
  EXPECT_EQ(c.job(6)->error, "old");
  EXPECT_EQ(c.mark_unfinished_interrupted(600.0), 0);    // idempotent
  EXPECT_EQ(c.jobs_in_state(JobState::interrupted).size(), 4u);
}

TEST(Catalog, AJobRunningWhenItsProcessWasKilledIsInterruptedAtTheNextOpen) {
  TempDir d;
  const auto db = d.path / "catalog.sqlite";
  const int st = in_child([&] {
    Catalog c(db);
    c.insert_job(job(1, JobState::done));
    c.insert_run(run_of(job(1, JobState::done)));
    auto j = job(2, JobState::running);
    c.insert_job(j);
    c.insert_run(run_of(j));
    j.done = 4;
    c.update_job(j);
    ::kill(::getpid(), SIGKILL);  // no close, no checkpoint of the WAL
  });
  ASSERT_TRUE(killed(st));
  Catalog c(db);
  ASSERT_TRUE(c.job(2));
  EXPECT_EQ(c.job(2)->done, 4) << "every committed update survives the kill";
  EXPECT_EQ(c.mark_unfinished_interrupted(1.0), 1);
  EXPECT_EQ(c.job(2)->state, JobState::interrupted);
  EXPECT_EQ(c.run("run-2")->state, "interrupted");
  EXPECT_EQ(c.job(1)->state, JobState::done);
}

// ----------------------------------------------------------------------------------------- manifest

RunWriter::Array u2_frames(std::size_t n, std::uint16_t first) {
  RunWriter::Array a{"frames", "<u2", {n, 3, 2}, std::string(n * 6 * 2, '\0')};
  for (std::size_t i = 0; i < n * 6; ++i) {
    const auto v = static_cast<std::uint16_t>(first + i);
    std::memcpy(a.bytes.data() + 2 * i, &v, 2);
  }
  return a;
}

// A run with two chunks (5 + 3 records) whose child process is killed as it renames the next
// manifest over the old one: during append_chunk (a third chunk) or during finish (consolidation).
class ManifestCrash : public ::testing::TestWithParam<bool> {};

TEST_P(ManifestCrash, TheOldManifestStaysCompleteAndTheRunContinues) {
  const bool during_finish = GetParam();
  TempDir d;
  const auto dir = d.path / "run";
  {
    RunWriter w(dir, {{"kind", "capture"}});
    w.append_chunk({u2_frames(5, 0)}, 5);
    w.append_chunk({u2_frames(3, 30)}, 3);
  }
  const std::string before = read_file(dir / "manifest.json");
  const int st = in_child([&] {
    auto w = RunWriter::reopen(dir);
    g_kill_at_manifest_rename = true;
    if (during_finish) {
      w.finish("done", {});
    } else {
      w.append_chunk({u2_frames(4, 80)}, 4);
    }
  });
  ASSERT_TRUE(killed(st)) << "the child reached the manifest rename";
  // The crash came after the new manifest was written in full, before it replaced the old one.
  ASSERT_TRUE(fs::exists(dir / "manifest.json.tmp"));
  EXPECT_EQ(json::parse(read_file(dir / "manifest.json.tmp")).value("records", 0), during_finish ? 8 : 12);

  // reopen() in the child rewrote the manifest once (state running): same content as before.
  EXPECT_EQ(json::parse(read_file(dir / "manifest.json")), json::parse(before));
  const json m = read_manifest(dir);
  EXPECT_EQ(m["records"], 8);
  EXPECT_EQ(m["state"], "running");
  ASSERT_EQ(m["chunks"].size(), 2u);
  const auto a = load_run_array(dir, m, "frames");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->shape, (std::vector<std::size_t>{8, 3, 2}));
  EXPECT_EQ(a->bytes.substr(0, 60), u2_frames(5, 0).bytes);
  EXPECT_EQ(a->bytes.substr(60), u2_frames(3, 30).bytes);

  // Continuing drops the unlisted files (the temp manifest, a chunk never listed) and goes on after
  // record 8.
  auto w = RunWriter::reopen(dir);
  EXPECT_FALSE(fs::exists(dir / "manifest.json.tmp"));
  EXPECT_FALSE(fs::exists(dir / "chunks" / "frames_000002.npy"));
  EXPECT_EQ(w.records(), 8u);
  w.append_chunk({u2_frames(4, 80)}, 4);
  w.finish("done", {});
  const auto all = load_run_array(dir, read_manifest(dir), "frames");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->shape[0], 12u);
  EXPECT_EQ(all->bytes, u2_frames(5, 0).bytes + u2_frames(3, 30).bytes + u2_frames(4, 80).bytes);
}

INSTANTIATE_TEST_SUITE_P(Storage, ManifestCrash, ::testing::Values(false, true),
                         [](const auto& i) { return i.param ? "DuringFinish" : "DuringAppendChunk"; });

TEST(WriteJsonAtomic, ACrashBeforeTheRenameLeavesTheOldFile) {
  TempDir d;
  const auto p = d.path / "manifest.json";
  write_json_atomic(p, {{"version", 1}, {"payload", std::string(100000, 'a')}});
  const int st = in_child([&] {
    g_kill_at_manifest_rename = true;
    write_json_atomic(p, {{"version", 2}, {"payload", std::string(200000, 'b')}});
  });
  ASSERT_TRUE(killed(st));
  const json j = json::parse(read_file(p));
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["payload"].get<std::string>().size(), 100000u);
  EXPECT_EQ(json::parse(read_file(p.string() + ".tmp"))["version"], 2);
  write_json_atomic(p, {{"version", 3}});  // the leftover temp file is simply overwritten
  EXPECT_EQ(json::parse(read_file(p))["version"], 3);
  EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
}

// ------------------------------------------------------------------------------------ consolidation

// Random arrays of several dtypes and shapes in chunks of the given sizes; consolidation must give
// exactly the concatenation, and load_run_array must read the same before and after.
void check_consolidation(const std::vector<std::size_t>& chunk_sizes, std::uint64_t seed) {
  TempDir d;
  const auto dir = d.path / "run";
  std::mt19937_64 rng(seed);
  struct Spec {
    const char* name;
    const char* dtype;
    std::size_t item;
    std::vector<std::size_t> tail;
  };
  const std::vector<Spec> specs = {
      {"frames", "<u2", 2, {5, 7}}, {"inputs", "|u1", 1, {4, 4}}, {"indices", "<i8", 8, {}}, {"gains", "<f4", 4, {3}}};
  std::vector<std::string> whole(specs.size());
  std::size_t total = 0;
  {
    RunWriter w(dir, {{"kind", "test"}});
    for (std::size_t n : chunk_sizes) {
      std::vector<RunWriter::Array> arrays;
      for (std::size_t s = 0; s < specs.size(); ++s) {
        std::vector<std::size_t> shape = {n};
        std::size_t per = specs[s].item;
        for (auto t : specs[s].tail) {
          shape.push_back(t);
          per *= t;
        }
        std::string bytes(n * per, '\0');
        for (auto& c : bytes) c = static_cast<char>(rng());
        whole[s] += bytes;
        arrays.push_back({specs[s].name, specs[s].dtype, shape, bytes});
      }
      w.append_chunk(arrays, n);
      total += n;
    }
    const json chunked = w.manifest();
    ASSERT_EQ(chunked["chunks"].size(), chunk_sizes.size());
    for (std::size_t s = 0; s < specs.size(); ++s) {
      const auto a = load_run_array(dir, chunked, specs[s].name);
      ASSERT_TRUE(a);
      EXPECT_EQ(a->bytes, whole[s]) << specs[s].name << " read from the chunks";
    }
    w.finish("done", {{"note", "x"}});
  }
  const json m = read_manifest(dir);
  EXPECT_EQ(m["state"], "done");
  EXPECT_EQ(m["note"], "x");
  EXPECT_EQ(m["records"], total);
  EXPECT_TRUE(m["chunks"].empty());
  EXPECT_FALSE(fs::exists(dir / "chunks")) << "chunk files are removed once the manifest lists the consolidated files";
  for (std::size_t s = 0; s < specs.size(); ++s) {
    std::vector<std::size_t> shape = {total};
    shape.insert(shape.end(), specs[s].tail.begin(), specs[s].tail.end());
    const auto a = load_run_array(dir, m, specs[s].name);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->dtype, specs[s].dtype);
    EXPECT_EQ(a->shape, shape);
    EXPECT_EQ(a->bytes, whole[s]) << specs[s].name;
    // The consolidated file is a plain .npy of that dtype and shape.
    const auto f = sim::read_npy(dir / m["arrays"][specs[s].name]["file"].get<std::string>());
    EXPECT_EQ(sim::dtype_descr(f.dtype), specs[s].dtype);
    EXPECT_EQ(f.shape, shape);
    ASSERT_EQ(f.bytes.size(), whole[s].size());
    EXPECT_EQ(std::memcmp(f.bytes.data(), whole[s].data(), whole[s].size()), 0);
  }
}

TEST(Consolidation, GivesTheArraysOfTheChunks) {
  check_consolidation({1}, 1);
  check_consolidation({7}, 2);
  check_consolidation({1, 1, 1, 1, 1}, 3);
  check_consolidation({100, 3, 57, 1, 250}, 4);
}

TEST(Consolidation, ARunWithoutChunksFinishesWithNoArrays) {
  TempDir d;
  RunWriter w(d.path / "run", {});
  w.finish("cancelled", {});
  const json m = read_manifest(d.path / "run");
  EXPECT_EQ(m["state"], "cancelled");
  EXPECT_TRUE(m["arrays"].empty());
  EXPECT_FALSE(load_run_array(d.path / "run", m, "frames"));
}

// ----------------------------------------------------------------------------- unusable directories

std::string storage_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const StorageError& e) {
    return e.what();
  }
  return "";
}

TEST(UnusableDirectory, MissingDirectoryGivesAClearError) {
  TempDir d;
  const auto missing = d.path / "no" / "such";
  std::string e = storage_error([&] { Catalog c(missing / "catalog.sqlite"); });
  EXPECT_NE(e.find((missing / "catalog.sqlite").string()), std::string::npos) << e;
  EXPECT_NE(e.find("cannot open catalog"), std::string::npos) << e;
  e = storage_error([&] { write_json_atomic(missing / "manifest.json", {{"a", 1}}); });
  EXPECT_NE(e.find((missing / "manifest.json").string()), std::string::npos) << e;
  EXPECT_NE(e.find("No such file or directory"), std::string::npos) << e;
  e = storage_error([&] { read_manifest(missing); });
  EXPECT_NE(e.find((missing / "manifest.json").string() + ": cannot open"), std::string::npos) << e;
  e = storage_error([&] { RunWriter::reopen(missing); });
  EXPECT_NE(e.find("manifest.json: cannot open"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(missing));
}

// Permission bits do not stop root, so a root test process drops to "nobody" in a child first. The
// child reports each error message (one line each) through a pipe.
std::vector<std::string> errors_in_read_only_dir(const fs::path& ro, const fs::path& existing_run) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  const int st = in_child([&] {
    ::close(fds[0]);
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(4);
    if (::access(ro.c_str(), W_OK) == 0) ::_exit(5);  // the directory would be writable: no test
    std::string out;
    out += storage_error([&] { Catalog c(ro / "catalog.sqlite"); }) + "\n";
    out += storage_error([&] { write_json_atomic(ro / "manifest.json", {{"a", 1}}); }) + "\n";
    out += storage_error([&] { RunWriter w(ro / "run", {}); }) + "\n";
    out += storage_error([&] {
      auto w = RunWriter::reopen(existing_run);
      w.append_chunk({u2_frames(1, 0)}, 1);
    }) + "\n";
    if (::write(fds[1], out.data(), out.size()) != static_cast<ssize_t>(out.size())) ::_exit(6);
  });
  ::close(fds[1]);
  std::string all;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) all.append(buf, std::size_t(n));
  ::close(fds[0]);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child status " << st;
  std::vector<std::string> lines;
  for (std::size_t p = 0, q; (q = all.find('\n', p)) != std::string::npos; p = q + 1) lines.push_back(all.substr(p, q - p));
  return lines;
}

TEST(UnusableDirectory, ReadOnlyDirectoryGivesAClearErrorAndChangesNothing) {
  TempDir d;
  const auto ro = d.path / "ro";
  const auto run = d.path / "ro_run";
  {
    RunWriter w(run, {});
    w.append_chunk({u2_frames(2, 0)}, 2);
  }
  fs::create_directories(ro);
  // d.path (0755) must let the child reach ro and run; both become read and search only.
  fs::permissions(d.path, fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec | fs::perms::group_read |
                              fs::perms::group_exec);
  for (const auto& p : {ro, run, run / "chunks"}) fs::permissions(p, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::others_read |
                                                                         fs::perms::others_exec | fs::perms::group_read | fs::perms::group_exec);
  const std::string before = read_file(run / "manifest.json");
  const auto e = errors_in_read_only_dir(ro, run);
  ASSERT_EQ(e.size(), 4u);
  EXPECT_NE(e[0].find((ro / "catalog.sqlite").string() + ": cannot open catalog"), std::string::npos) << e[0];
  EXPECT_NE(e[1].find((ro / "manifest.json").string() + ": cannot create: Permission denied"), std::string::npos) << e[1];
  EXPECT_NE(e[2].find((ro / "run").string()), std::string::npos) << e[2];
  EXPECT_NE(e[2].find("Permission denied"), std::string::npos) << e[2];
  EXPECT_NE(e[3].find("Permission denied"), std::string::npos) << e[3];
  EXPECT_TRUE(fs::is_empty(ro));
  EXPECT_EQ(read_file(run / "manifest.json"), before);
}

}  // namespace
}  // namespace hilo::controller::testing
