#pragma once
// A controller Context over the fakes, with a catalog and data directory in a fresh temporary
// directory (removed by the destructor) and every published event recorded.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>

#include "fakes.hpp"
#include "hilo/controller/handler.hpp"

namespace hilo::controller::testing {

inline std::filesystem::path fresh_dir(const std::string& name) {
  static int counter = 0;  // per-process uniqueness for several harnesses in one test
  auto d = std::filesystem::temp_directory_path() /
           ("hilo_ctl_" + name + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

inline double steady_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
inline double unix_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct Harness {
  std::filesystem::path dir;
  FakeSlm slm;
  FakeCamera camera{slm};
  std::mutex device_mu;
  Devices devices{slm, camera, device_mu};
  std::unique_ptr<Catalog> catalog;
  std::mutex events_mu;
  std::vector<std::pair<std::string, nlohmann::json>> events;
  std::unique_ptr<JobManager> jobs;
  DatasetLibrary datasets;
  std::unique_ptr<Context> ctx;

  explicit Harness(const std::string& name) : dir(fresh_dir(name)) {
    catalog = std::make_unique<Catalog>(dir / "catalog.sqlite");
    jobs = std::make_unique<JobManager>(
        *catalog,
        [this](const std::string& t, const nlohmann::json& b) {
          std::lock_guard lk(events_mu);
          events.emplace_back(t, b);
        },
        unix_s, 0.0);
    datasets.add("fashion-mnist", "/usr/share/datasets/fashion-mnist");
    ctx = std::make_unique<Context>(Context{devices, *jobs, *catalog, datasets, dir, Limits{}, CaptureOptions{}, steady_s});
  }
  ~Harness() {
    jobs->shutdown();
    jobs.reset();
    catalog.reset();
    std::filesystem::remove_all(dir);
  }

  std::vector<std::pair<std::string, nlohmann::json>> events_of(const std::string& topic) {
    std::lock_guard lk(events_mu);
    std::vector<std::pair<std::string, nlohmann::json>> out;
    for (const auto& e : events) {
      if (e.first == topic) out.push_back(e);
    }
    return out;
  }
};

}  // namespace hilo::controller::testing
