// Does the pre-build NTK kernel-regression estimate rank front-ends as trained students do?
//
//   bench_estimate_ranking [--out DIR] [--n-train N] [--sweep 2,4,8,16,32,64] [--rank 4,8,16]
//                          [--depths 1,2,3] [--epochs E] [--backend-epochs B] [--seed S] [--threads T]
//
// On the MNIST digits (7,000 train / 1,000 val / 2,000 test, docs/distill.md "Data"):
//  1. the reference: kernel regression with the infinitely wide fully connected ReLU NTK on the
//     standardised raw pixels, for each depth in --depths (the one with the best validation accuracy is
//     the reference);
//  2. the kernel-count sweep: the estimate (depth 1, the student's backend shape) of random front-ends
//     (the student's initialisation for --seed) with K = --sweep kernels;
//  3. the ranking study, for each K in --rank, on two front-ends: the random one of step 2 and the one
//     of a student trained end-to-end (method none, Adam 1e-2 cosine, no input shifts, --epochs). For
//     each front-end: the estimate, and the test accuracy of a finite student trained on it — a fresh
//     backend (He initialisation, seed --seed) fitted to the frozen front-end's features of all
//     training images (calibration::refit_backend, task loss, Adam 3e-3, --backend-epochs). Spearman's
//     rank correlation between the two over all front-ends.
// Writes DIR/estimate_ranking.json and DIR/estimate_ranking.png (accuracy against log₂ K) and prints the
// table. The estimates use --n-train training images (kernel regression is O(n³)); students use all.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/calibration/compensation.hpp"
#include "hilo/distill/kernel_regression.hpp"
#include "hilo/distill/student_jobs.hpp"
#include "hilo/distill/threads.hpp"
#include "hilo/io/figures.hpp"
#include "hilo/io/file_io.hpp"

namespace fs = std::filesystem;
using namespace hilo::distill;

namespace {

std::vector<int> int_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) v.push_back(std::stoi(item));
  return v;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Ranks 1..n, ties get their mean rank.
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<std::size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < idx.size();) {
    std::size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (std::size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * static_cast<double>(i + j) + 1.0;
    i = j + 1;
  }
  return r;
}

// Spearman's ρ: Pearson correlation of the ranks.
double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(ra.size()), ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n,
               mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

StudentOptions front_end_options(int K) {
  StudentOptions o;
  o.kernels = K;
  return o;
}

// A random front-end as training starts from it: initialised for `seed`, standardisation fitted.
OpticalStudent random_front_end(int K, std::uint64_t seed, const Splits& d) {
  OpticalStudent s(front_end_options(K), d.train.shape, d.train.num_classes);
  std::mt19937_64 rng(seed);
  s.init(rng);
  s.fit_feature_norm(student_features(s, d.train.x, kFeatureNormSamples));
  return s;
}

struct BackendFit {
  double val_acc = 0, test_acc = 0, seconds = 0;
};

// A finite backend trained on the frozen front-end of s (its backend as it is: callers pass a fresh one).
BackendFit fit_backend(OpticalStudent& s, const Splits& d, int epochs, std::uint64_t seed) {
  const auto t0 = std::chrono::steady_clock::now();
  const MatD a = student_features(s, d.train.x);
  hilo::calibration::CompensationOptions o;
  o.mode = hilo::calibration::CompensationMode::task;
  o.epochs = epochs;
  std::mt19937_64 rng(seed);
  hilo::calibration::refit_backend(s, a, d.train.y, nullptr, nullptr, o, rng);
  BackendFit f;
  f.val_acc = accuracy(s.backend_forward(student_features(s, d.val.x)), d.val.y);
  f.test_acc = accuracy(s.backend_forward(student_features(s, d.test.x)), d.test.y);
  f.seconds = seconds_since(t0);
  return f;
}

struct FrontEnd {
  std::string kind;  // "random" | "trained"
  int kernels = 0;
  KernelRegressionResult estimate;
  double estimate_seconds = 0;
  BackendFit student;               // fresh backend on the frozen front-end
  double end_to_end_test_acc = NAN;  // trained front-ends: the end-to-end student itself
  nlohmann::json to_json() const {
    nlohmann::json j = {{"kind", kind},
                        {"kernels", kernels},
                        {"estimate", estimate.to_json()},
                        {"estimate_seconds", estimate_seconds},
                        {"student_val_acc", student.val_acc},
                        {"student_test_acc", student.test_acc},
                        {"student_seconds", student.seconds}};
    if (!std::isnan(end_to_end_test_acc)) j["end_to_end_test_acc"] = end_to_end_test_acc;
    return j;
  }
};

KernelRegressionResult timed_estimate(OpticalStudent& s, const Splits& d, int n, double& secs) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = estimate_front_end(s, d, n, KernelRegressionOptions{});
  secs = seconds_since(t0);
  return r;
}

void print_estimate(const char* what, int K, const KernelRegressionResult& r, double secs) {
  std::printf("%-28s K=%-3d estimate test %.2f %% (val %.2f %%, r = %g, λ = %.3g)%s%s  [%.1f s]\n", what, K,
              100 * r.test_acc, 100 * r.val_acc, r.ratio, r.lambda, r.warning.empty() ? "" : "  WARNING: ",
              r.warning.c_str(), secs);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  fs::path out = "runs/estimate_ranking";
  // Students: 8 epochs without input shifts, the training that docs/distill.md's ranking study measured
  // (the student's defaults have since become 30 epochs with shifts).
  int n_train = 2000, epochs = 8, backend_epochs = 20, threads = 1;
  std::uint64_t seed = 1;
  std::vector<int> sweep{2, 4, 8, 16, 32, 64}, rank_k{4, 8, 16}, depths{1, 2, 3};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", a.c_str());
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--out") out = v;
    else if (a == "--n-train") n_train = std::stoi(v);
    else if (a == "--sweep") sweep = int_list(v);
    else if (a == "--rank") rank_k = int_list(v);
    else if (a == "--depths") depths = int_list(v);
    else if (a == "--epochs") epochs = std::stoi(v);
    else if (a == "--backend-epochs") backend_epochs = std::stoi(v);
    else if (a == "--seed") seed = std::stoull(v);
    else if (a == "--threads") threads = std::stoi(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  set_compute_threads(threads);
  fs::create_directories(out);
  const auto t_all = std::chrono::steady_clock::now();
  DataOptions data;
  data.name = "mnist";
  const Splits d = load_splits(data);
  std::printf("MNIST digits: train %zu, val %zu, test %zu; estimates on %d training images\n", d.train.size(),
              d.val.size(), d.test.size(), n_train);

  // 1. The reference on raw pixels.
  nlohmann::json reference = nlohmann::json::array();
  double ref_val = -1, ref_test = 0;
  int ref_depth = 0;
  for (int L : depths) {
    const auto t0 = std::chrono::steady_clock::now();
    KernelRegressionOptions o;
    o.depth = L;
    const auto r = estimate_reference(d, n_train, o);
    const double secs = seconds_since(t0);
    print_estimate(("reference, raw pixels, L=" + std::to_string(L)).c_str(), 0, r, secs);
    nlohmann::json j = r.to_json();
    j["depth"] = L;
    j["seconds"] = secs;
    reference.push_back(j);
    if (r.val_acc > ref_val) {
      ref_val = r.val_acc;
      ref_test = r.test_acc;
      ref_depth = L;
    }
  }

  // 2. Kernel-count sweep of random front-ends.
  nlohmann::json sweep_json = nlohmann::json::array();
  std::vector<double> sweep_x, sweep_y;
  std::map<int, std::pair<KernelRegressionResult, double>> random_estimates;  // K → (estimate, seconds)
  for (int K : sweep) {
    OpticalStudent s = random_front_end(K, seed, d);
    double secs = 0;
    const auto r = timed_estimate(s, d, n_train, secs);
    print_estimate("sweep, random front-end", K, r, secs);
    random_estimates[K] = {r, secs};
    nlohmann::json j = r.to_json();
    j["kernels"] = K;
    j["seconds"] = secs;
    sweep_json.push_back(j);
    sweep_x.push_back(std::log2(K));
    sweep_y.push_back(100 * r.test_acc);
  }

  // 3. Ranking study.
  std::vector<FrontEnd> fes;
  for (int K : rank_k) {
    FrontEnd rnd{"random", K};
    OpticalStudent s = random_front_end(K, seed, d);
    if (auto it = random_estimates.find(K); it != random_estimates.end())
      std::tie(rnd.estimate, rnd.estimate_seconds) = it->second;
    else
      rnd.estimate = timed_estimate(s, d, n_train, rnd.estimate_seconds);
    rnd.student = fit_backend(s, d, backend_epochs, seed);
    print_estimate("random front-end", K, rnd.estimate, rnd.estimate_seconds);
    std::printf("    student on it (frozen front-end): test %.2f %% (val %.2f %%) [%.1f s]\n", 100 * rnd.student.test_acc,
                100 * rnd.student.val_acc, rnd.student.seconds);
    fes.push_back(rnd);

    DistillJob job;
    job.data = data;
    job.student = front_end_options(K);
    job.train.epochs = epochs;
    job.train.augment = {};
    job.train.seed = seed;
    job.out_dir = (out / ("student_K" + std::to_string(K))).string();
    const auto t0 = std::chrono::steady_clock::now();
    const JobResult jr = run_distill(job, JobControl{});
    const double train_secs = seconds_since(t0);
    FrontEnd tr{"trained", K};
    tr.end_to_end_test_acc = jr.history.test_acc;
    OpticalStudent trained = OpticalStudent::from_model(read_model(jr.model_path));
    tr.estimate = timed_estimate(trained, d, n_train, tr.estimate_seconds);
    // A fresh backend on the trained kernels (intensity parameterisation: set_kernels).
    OpticalStudent fresh(trained.options(), d.train.shape, d.train.num_classes);
    std::mt19937_64 rng(seed);
    fresh.init(rng);
    fresh.set_kernels(trained.kernels());
    fresh.fit_feature_norm(student_features(fresh, d.train.x, kFeatureNormSamples));
    tr.student = fit_backend(fresh, d, backend_epochs, seed);
    print_estimate("trained front-end", K, tr.estimate, tr.estimate_seconds);
    std::printf("    end-to-end student: test %.2f %% [%.1f s]; fresh backend on its front-end: test %.2f %% (val %.2f %%) "
                "[%.1f s]\n",
                100 * tr.end_to_end_test_acc, train_secs, 100 * tr.student.test_acc, 100 * tr.student.val_acc,
                tr.student.seconds);
    fes.push_back(tr);
  }

  std::vector<double> est, stu;
  for (const auto& f : fes) {
    est.push_back(f.estimate.test_acc);
    stu.push_back(f.student.test_acc);
  }
  const double rho = spearman(est, stu);
  std::printf("\n| front-end | K | estimate test %% | r | student test %% | end-to-end %% |\n|---|---|---|---|---|---|\n");
  for (const auto& f : fes) {
    std::printf("| %s | %d | %.2f | %g%s | %.2f | ", f.kind.c_str(), f.kernels, 100 * f.estimate.test_acc, f.estimate.ratio,
                f.estimate.warning.empty() ? "" : " (edge)", 100 * f.student.test_acc);
    if (std::isnan(f.end_to_end_test_acc)) std::printf("— |\n");
    else std::printf("%.2f |\n", 100 * f.end_to_end_test_acc);
  }
  std::printf("reference (raw pixels, depth %d): %.2f %% test\n", ref_depth, 100 * ref_test);
  std::printf("Spearman rank correlation, estimate vs student, %zu front-ends: %.3f\n", fes.size(), rho);
  const double total = seconds_since(t_all);
  std::printf("total %.1f s\n", total);

  nlohmann::json j = {{"data", "mnist"},
                      {"n_train_estimate", n_train},
                      {"student_epochs", epochs},
                      {"backend_epochs", backend_epochs},
                      {"seed", seed},
                      {"threads", threads},
                      {"reference", reference},
                      {"reference_depth", ref_depth},
                      {"reference_test_acc", ref_test},
                      {"sweep", sweep_json},
                      {"front_ends", nlohmann::json::array()},
                      {"spearman", rho},
                      {"seconds", total}};
  for (const auto& f : fes) j["front_ends"].push_back(f.to_json());
  hilo::io::write_json_atomic(out / "estimate_ranking.json", j);

  std::vector<hilo::io::Series> series{{"estimate, random front-end", sweep_x, sweep_y}};
  for (const std::string kind : {"random", "trained"}) {
    hilo::io::Series e{"estimate, " + kind + " front-end", {}, {}}, s{"student, " + kind + " front-end", {}, {}};
    for (const auto& f : fes)
      if (f.kind == kind) {
        e.x.push_back(std::log2(f.kernels));
        e.y.push_back(100 * f.estimate.test_acc);
        s.x.push_back(std::log2(f.kernels));
        s.y.push_back(100 * f.student.test_acc);
      }
    if (kind == "trained") series.push_back(e);
    series.push_back(s);
  }
  if (!sweep_x.empty()) {
    const auto [lo, hi] = std::minmax_element(sweep_x.begin(), sweep_x.end());
    series.push_back({"reference: infinitely wide net on pixels", {*lo, *hi}, {100 * ref_test, 100 * ref_test}});
  }
  hilo::io::LinePlotOptions po;
  po.title = "NTK estimate vs trained students (MNIST digits), Spearman " + std::to_string(rho).substr(0, 5);
  po.x_label = "log2 kernels K";
  po.y_label = "test accuracy %";
  hilo::io::write_png(out / "estimate_ranking.png", hilo::io::render_line_plot(series, po));
  std::printf("wrote %s\n", (out / "estimate_ranking.json").c_str());
  return 0;
}
