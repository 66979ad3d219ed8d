// hilo-bench-preview: what the live view's preview path adds to the capture thread.
//
//   hilo-bench-preview [--frames N] [--reps R] [--config bench.yaml]
//
// On the simulated bench of tests/controller/sim_fast.yaml (zero device latency, the fastest loop there
// is), times show(pattern) + grab() for N inputs with the bare devices and with the same devices
// wrapped in PreviewSlm / PreviewCamera over one PreviewTap (5 images per second and source, as hilod
// has it), alternately, R times each, and a reader thread that encodes every new image as the live view
// does. Prints the best time of each and their ratio. A full capture (storage, catalog) does more per
// frame than this loop, so its relative overhead is smaller than the ratio printed here.
// On a shared machine the loops vary by a few per cent between runs, more than the tap costs, so the
// program also times one offer directly (refused by the rate limit, and taken) and prints what those
// add per frame.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "hilo/controller/capture.hpp"
#include "hilo/controller/preview.hpp"
#include "hilo/drivers/open_bench.hpp"
#include "hilo/drivers/placed_slm.hpp"

namespace {

namespace ctl = hilo::controller;
namespace dr = hilo::drivers;

double steady_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double loop_s(dr::Slm& slm, dr::Camera& cam, const std::vector<cv::Mat>& patterns) {
  const double t0 = steady_s();
  for (const auto& p : patterns) {
    if (auto e = slm.show(p)) throw std::runtime_error("show: " + e->message);
    auto fr = cam.grab(std::chrono::milliseconds(1000));
    if (!fr) throw std::runtime_error("grab: " + fr.error().message);
  }
  return steady_s() - t0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hilo-bench-preview — the live view's preview path against bare show + grab"};
  int frames = 2000, reps = 5;
  std::string config = std::string(HILO_SOURCE_DIR) + "/tests/controller/sim_fast.yaml";
  app.add_option("--frames", frames)->capture_default_str();
  app.add_option("--reps", reps)->capture_default_str();
  app.add_option("--config", config)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    const auto bench = dr::open_bench(dr::load_bench_config(config));  // steady clock, opened
    std::vector<cv::Mat> patterns;
    std::mt19937_64 rng(1);
    for (int i = 0; i < frames; ++i) {
      std::vector<std::uint8_t> img(28 * 28);
      for (auto& v : img) v = static_cast<std::uint8_t>(rng() & 0xff);
      patterns.push_back(hilo::drivers::place_pattern(cv::Mat(28, 28, CV_8UC1, img.data()), bench->input->height_px(),
                                                      bench->input->width_px(), bench->input->bit_depth()));
    }
    ctl::PreviewTap tap;
    ctl::PreviewSlm pslm(*bench->input, tap, ctl::PreviewSource::input_slm);
    ctl::PreviewCamera pcam(*bench->camera, tap);
    std::atomic<bool> stop{false};
    std::thread reader([&] {  // the live view's side: encode each new image
      std::uint64_t seen[2] = {0, 0};
      while (!stop) {
        for (auto [i, s] : {std::pair{0, ctl::PreviewSource::frame}, {1, ctl::PreviewSource::input_slm}}) {
          if (tap.version(s) != seen[i]) seen[i] = tap.snapshot(s).version;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
    double bare = 1e300, tapped = 1e300;
    for (int r = 0; r < reps; ++r) {
      const bool tapped_first = r % 2 == 1;
      for (int k = 0; k < 2; ++k) {
        if ((k == 0) == tapped_first) tapped = std::min(tapped, loop_s(pslm, pcam, patterns));
        else bare = std::min(bare, loop_s(*bench->input, *bench->camera, patterns));
      }
    }
    stop = true;
    reader.join();
    // The cost of one offer, timed directly (immune to the machine's load, unlike the loops above):
    // refused by the rate limit (almost every frame), and taken (a copy of the frame).
    const cv::Mat frame = pcam.grab(std::chrono::milliseconds(1000)).value().image;
    ctl::PreviewOptions slow;
    slow.max_per_s = 0.01;
    ctl::PreviewTap refusing(slow);
    refusing.offer(ctl::PreviewSource::frame, frame, 12);
    const int n_drop = 1000000;
    double t0 = steady_s();
    for (int i = 0; i < n_drop; ++i) refusing.offer(ctl::PreviewSource::frame, frame, 12);
    const double t_drop = (steady_s() - t0) / n_drop;
    ctl::PreviewOptions fast;
    fast.max_per_s = 100;
    ctl::PreviewTap taking(fast);
    std::vector<double> takes;
    for (int i = 0; i < 200; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(11));
      t0 = steady_s();
      taking.offer(ctl::PreviewSource::frame, frame, 12);
      takes.push_back(steady_s() - t0);
    }
    std::nth_element(takes.begin(), takes.begin() + 100, takes.end());
    const double t_take = takes[100];
    const double per_frame = bare / frames;
    // Per frame: one refused offer of the frame and one of the pattern; 2 × 5 taken per second.
    const double added = 2 * t_drop + 2 * 5.0 * t_take * per_frame;
    std::printf("one offer: refused %.1f ns, taken %.1f us (%dx%d frame, median of 200); per frame at %.0f frames/s: "
                "%.3f us = %.4f %% of the bare loop\n",
                1e9 * t_drop, 1e6 * t_take, frame.rows, frame.cols, frames / bare, 1e6 * added, 100 * added / per_frame);
    const auto c = tap.counters(ctl::PreviewSource::frame);
    std::printf("%d show + grab, best of %d: bare %.3f s (%.0f frames/s), with the preview tap %.3f s (%.0f frames/s)\n",
                frames, reps, bare, frames / bare, tapped, frames / tapped);
    std::printf("ratio tapped/bare = %.4f (overhead %+.2f %%); frames offered %llu, taken %llu, encoded %llu\n",
                tapped / bare, 100 * (tapped / bare - 1), static_cast<unsigned long long>(c.offered),
                static_cast<unsigned long long>(c.accepted), static_cast<unsigned long long>(c.encoded));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hilo-bench-preview: %s\n", e.what());
    return 1;
  }
}
