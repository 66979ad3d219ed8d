// Learning-core benchmarks, each against a reference measured in the same run:
//   1. training throughput (images/s, median of 7 rounds) of the teacher (float) and the optical student
//      (double, and float: distill.precision "float32"), plain and with the NTKD term — every step, and as
//      the distill jobs run it (cka, backend, sub-batch 32, every 2nd step; Θ_T per NTK step or cached),
//      with the per-call cost of the term's parts; the student's convolution backward with the input gradient
//      (what the student step used to compute) against the parameter-only backward it now uses, and the
//      step with each; evaluation throughput (forward only) at the batch given, at predict()'s default
//      chunk (kEvalBatch) and at 500 (the old default, above the page-fault cliff);
//      the same teacher and student in PyTorch (bench_torch.py, same batch, same threads, same run),
//      skipped with a note when torch is not importable;
//   2. the exact NTK of a batch (per-layer Gram products / closed form) against the naive full-Jacobian
//      product, for the teacher and the student: time, peak memory, and their agreement.
// Each NTK measurement runs in a fresh process (this program re-executed with a hidden `--measure` mode),
// so it starts from the same baseline and never inherits a running OpenMP thread pool (a forked copy of
// one deadlocks). Peak memory is the growth of that process's peak resident set (VmHWM, reset through
// /proc/self/clear_refs just before the computation) over its resident set at the start.
//   bench_distill [batch=128] [threads=1]
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "hilo/distill/ntk.hpp"
#include "hilo/distill/optim.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/distill/student_jobs.hpp"
#include "hilo/distill/threads.hpp"
#include "hilo/distill/train.hpp"

using namespace hilo::distill;
using clk = std::chrono::steady_clock;

namespace {
long status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string k;
  long v = 0;
  while (f >> k) {
    if (k == key) {
      f >> v;
      return v;
    }
    std::getline(f, k);
  }
  return -1;
}

// The networks and the batch every mode works on; the same seed gives the same weights in every process.
struct Setup {
  int batch;
  Mat<float> x;
  MatD xd;
  std::vector<int> y;
  std::mt19937_64 rng{1};
  Sequential<float> teacher = make_teacher(TeacherArch{}, Shape{1, 28, 28}, 10);
  OpticalStudent student;

  static StudentOptions noisy() {
    StudentOptions so;
    so.noise.enabled = true;
    return so;
  }
  explicit Setup(int b) : batch(b), y(static_cast<std::size_t>(b)), student(noisy(), Shape{1, 28, 28}, 10) {
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    x = Mat<float>::NullaryExpr(b, 784, [&] { return u(rng); });
    xd = x.cast<double>();
    for (int i = 0; i < b; ++i) y[static_cast<std::size_t>(i)] = i % 10;
    init_he(teacher, rng);
    student.init(rng);
  }
};

// Brute force: one backward per (sample, class), full Jacobian materialised, Θ = Σ_c J_c J_cᵀ.
MatD student_ntk_naive(OpticalStudent& student, const MatD& xd) {
  const int C = 10;
  const auto B = xd.rows();
  const auto P = static_cast<Eigen::Index>(student.num_params());
  MatD J(B * C, P);
  for (Eigen::Index i = 0; i < B; ++i) {
    student.forward(xd.row(i), false);
    for (int c = 0; c < C; ++c) {
      student.zero_grad();
      MatD dl = MatD::Zero(1, C);
      dl(0, c) = 1;
      student.backward(dl);
      Eigen::Index off = 0;
      for (auto& p : student.params()) {
        J.row(i * C + c).segment(off, p.grad->size()) =
            Eigen::Map<const Eigen::RowVectorXd>(p.grad->data(), p.grad->size());
        off += p.grad->size();
      }
    }
  }
  MatD th = MatD::Zero(B, B);
  for (int c = 0; c < C; ++c) {
    MatD Jc(B, P);
    for (Eigen::Index i = 0; i < B; ++i) Jc.row(i) = J.row(i * C + c);
    th += Jc * Jc.transpose();
  }
  return th;
}

struct Measured {
  double seconds = 0, peak_mb = 0;
  MatD theta;
  bool ok = false;
};

// Child side of `--measure <what> <batch> <threads> <fd>`: computes one NTK and writes seconds, peak
// growth (MB) and the B×B matrix as raw doubles to fd.
int measure_child(const std::string& what, int B, int fd) {
  Setup s(B);
  std::function<MatD()> fn;
  if (what == "teacher-exact") fn = [&] { return ntk_exact(s.teacher, s.x); };
  else if (what == "teacher-naive") fn = [&] { return ntk_naive(s.teacher, s.x); };
  else if (what == "student-exact") fn = [&] { return s.student.ntk(s.xd, ParamSet::all); };
  else if (what == "student-naive") fn = [&] { return student_ntk_naive(s.student, s.xd); };
  else return 2;
  {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";  // reset VmHWM to the current resident set
  }
  const long base = status_kb("VmRSS:");
  const auto t0 = clk::now();
  const MatD th = fn();
  const double head[2] = {std::chrono::duration<double>(clk::now() - t0).count(),
                          static_cast<double>(status_kb("VmHWM:") - base) / 1024.0};
  const auto bytes = static_cast<std::size_t>(th.size()) * sizeof(double);
  if (write(fd, head, sizeof head) != static_cast<ssize_t>(sizeof head)) return 1;
  const auto* p = reinterpret_cast<const char*>(th.data());
  for (std::size_t done = 0; done < bytes;) {
    const ssize_t w = write(fd, p + done, bytes - done);
    if (w <= 0) return 1;
    done += static_cast<std::size_t>(w);
  }
  return 0;
}

bool read_all(int fd, void* dst, std::size_t n) {
  auto* p = static_cast<char*>(dst);
  for (std::size_t done = 0; done < n;) {
    const ssize_t r = read(fd, p + done, n - done);
    if (r <= 0) return false;
    done += static_cast<std::size_t>(r);
  }
  return true;
}

// Parent side: re-executes this program in the measuring mode and reads its answer.
Measured in_fresh_process(const std::string& self, const char* what, int B, int threads) {
  Measured m;
  int p[2];
  if (pipe(p) != 0) return m;
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {  // only async-signal-safe calls until exec
    close(p[0]);
    char b[16], t[16], fd[16];
    std::snprintf(b, sizeof b, "%d", B);
    std::snprintf(t, sizeof t, "%d", threads);
    std::snprintf(fd, sizeof fd, "%d", p[1]);
    execl(self.c_str(), self.c_str(), "--measure", what, b, t, fd, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  double head[2];
  m.theta.resize(B, B);
  m.ok = pid > 0 && read_all(p[0], head, sizeof head) &&
         read_all(p[0], m.theta.data(), static_cast<std::size_t>(m.theta.size()) * sizeof(double));
  close(p[0]);
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
  if (!m.ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "measurement %s failed\n", what);
    m.ok = false;
    return m;
  }
  m.seconds = head[0];
  m.peak_mb = head[1];
  return m;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::strcmp(argv[1], "--measure") == 0) {
    hilo::distill::set_compute_threads(std::atoi(argv[4]));
    return measure_child(argv[2], std::atoi(argv[3]), std::atoi(argv[5]));
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line at a time, also into a pipe or file
  const int B = argc > 1 ? std::atoi(argv[1]) : 128;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  if (B < 1 || threads < 1) {
    std::fprintf(stderr, "usage: bench_distill [batch=128] [threads=1]\n");
    return 2;
  }
  hilo::distill::set_compute_threads(threads);
  std::vector<char> self(4096);
  const ssize_t len = readlink("/proc/self/exe", self.data(), self.size() - 1);
  if (len <= 0) {
    std::fprintf(stderr, "cannot resolve /proc/self/exe\n");
    return 1;
  }
  const std::string exe(self.data(), static_cast<std::size_t>(len));

  // ---- 1. throughput
  Setup s(B);
  Optimizer<float> topt(s.teacher.params(), OptimizerOptions{});
  // Median of 7 rounds of `steps` steps. Not the best round: on a shared virtual machine a process now and
  // then runs a round 2-3x faster than its neighbours (seen in PyTorch and hilo alike), and a best-of rule
  // then ranks whichever side caught such a burst. bench_torch.py uses the same rule.
  auto rate = [&](const std::function<void()>& step, int steps) {
    step();  // warm-up
    std::vector<double> r;
    for (int round = 0; round < 7; ++round) {
      const auto t0 = clk::now();
      for (int i = 0; i < steps; ++i) step();
      r.push_back(steps * B / std::chrono::duration<double>(clk::now() - t0).count());
    }
    std::nth_element(r.begin(), r.begin() + 3, r.end());
    return r[3];
  };
  std::printf("training throughput (batch %d, %d thread(s)):\n", B, threads);
  const double teacher_rate = rate([&] {
    topt.zero_grad();
    Mat<float> dl;
    softmax_cross_entropy(s.teacher.forward(s.x, true), s.y, &dl);
    s.teacher.backward(dl);
    topt.step();
  }, 10);
  std::printf("  teacher  (%zu params, float)        %9.1f images/s\n", s.teacher.num_params(), teacher_rate);
  Optimizer<double> sopt(s.student.params(), OptimizerOptions{});
  const double student_rate = rate([&] {
    sopt.zero_grad();
    MatD dl;
    softmax_cross_entropy(s.student.forward(s.xd, true, &s.rng), s.y, &dl);
    s.student.backward(dl);
    sopt.step();
  }, 20);
  std::printf("  student  (%zu params, double, noise) %9.1f images/s\n", s.student.num_params(), student_rate);
  // The float32 path (distill.precision "float32"): the same student converted, the same step.
  BasicOpticalStudent<float> student32 = s.student.as<float>();
  Optimizer<float> sopt32(student32.params(), OptimizerOptions{});
  const double student32_rate = rate([&] {
    sopt32.zero_grad();
    Mat<float> dl;
    softmax_cross_entropy(student32.forward(s.x, true, &s.rng), s.y, &dl);
    student32.backward(dl);
    sopt32.step();
  }, 20);
  std::printf("  student  (%zu params, float,  noise) %9.1f images/s  (%.2fx of double)\n", student32.num_params(),
              student32_rate, student32_rate / student_rate);
  {
    // The student's optical layer alone: backward with the input gradient (49 × B·784 temporary and a
    // col2im pass; what the student step computed before) against the parameter-only backward.
    Conv2d<double> conv(Shape{1, 28, 28}, s.student.options().kernels, s.student.options().kernel_size,
                        s.student.options().kernel_size / 2);
    conv.weight() = s.student.kernels();
    const MatD yc = conv.forward(s.xd, true);
    std::normal_distribution<double> n(0.0, 1.0);
    const MatD dy = MatD::NullaryExpr(yc.rows(), yc.cols(), [&] { return n(s.rng); });
    const double full = rate([&] { conv.backward(dy); }, 20), params_only = rate([&] { conv.backward_params(dy); }, 20);
    std::printf("  student conv backward: with input gradient %9.1f images/s, parameters only %9.1f images/s (%.2fx)\n",
                full, params_only, params_only / full);
    auto step_plus = [&](bool with_input_grad) {
      return rate([&] {
        sopt.zero_grad();
        MatD dl;
        softmax_cross_entropy(s.student.forward(s.xd, true, &s.rng), s.y, &dl);
        s.student.backward(dl);
        if (with_input_grad) conv.backward(dy); else conv.backward_params(dy);
        sopt.step();
      }, 20);
    };
    const double before = step_plus(true), after = step_plus(false);
    std::printf("  student step + one more conv backward, with / without input gradient: %9.1f / %9.1f images/s "
                "(%.2fx; the step before/after this change, each plus one parameter backward)\n",
                before, after, after / before);
  }
  const KernelDistance dist{"alignment"};
  const int nb = std::min(32, B);
  const double ntkd_rate = rate([&] {
    sopt.zero_grad();
    MatD dl;
    softmax_cross_entropy(s.student.forward(s.xd, true, &s.rng), s.y, &dl);
    s.student.backward(dl);
    const MatD tt = ntk_exact(s.teacher, Mat<float>(s.x.topRows(nb)));
    const MatD ts = s.student.ntk(s.xd.topRows(nb), ParamSet::all);
    s.student.ntk_backward(dist.grad(tt, ts));
    sopt.step();
  }, 10);
  std::printf("  student + NTKD (sub-batch %d, every step) %9.1f images/s  (%.2fx of plain)\n", nb, ntkd_rate,
              ntkd_rate / student_rate);
  {
    // NTKD as the distill jobs run it (scripts/distill_converged.sh, the pipeline): cka distance, Θ_S over
    // the backend, sub-batch 32, the term on every 2nd step, Θ_T of the step's sub-batch computed there
    // (ntk_cache_batches 0) — and with Θ_T taken from a cache (ntk_cache_batches > 0); for the double and
    // the float student. Per-call costs of the parts of the term, median of 7 rounds, are printed beside it.
    const KernelDistance cka{"cka"};
    const Mat<float> xs = s.x.topRows(nb);
    const MatD tt_cached = ntk_exact(s.teacher, xs);
    auto ntkd_job = [&](auto& st, auto& opt, const auto& xin, const char* name, double plain) {
      using M = std::decay_t<decltype(xin)>;
      const M xsub = xin.topRows(nb);
      long step = 0;
      auto job_step = [&](bool cached) {
        opt.zero_grad();
        M dl;
        softmax_cross_entropy(st.forward(xin, true, &s.rng), s.y, &dl);
        st.backward(dl);
        if (step++ % 2 == 0) {
          const MatD tt = cached ? tt_cached : ntk_exact(s.teacher, xs);
          const MatD ts = st.ntk(xsub, ParamSet::backend);
          st.ntk_backward(10.0 * cka.grad(tt, ts));
        }
        opt.step();
      };
      const double job_rate = rate([&] { job_step(false); }, 20), cached_rate = rate([&] { job_step(true); }, 20);
      std::printf("  student (%s) + NTKD as the jobs run it (cka, backend, sub-batch %d, every 2nd step): %9.1f images/s "
                  "(%.2fx of plain); Θ_T cached %9.1f images/s (%.2fx)\n",
                  name, nb, job_rate, job_rate / plain, cached_rate, cached_rate / plain);
      MatD ts;
      auto ms = [&](const std::function<void()>& f, int steps) { return 1e3 * B / rate(f, steps); };  // per call
      const double per_s = ms([&] { ts = st.ntk(xsub, ParamSet::backend); }, 20),
                   per_b = ms([&] { st.ntk_backward(cka.grad(tt_cached, ts)); }, 20);
      std::printf("    per call: plain step %.2f ms, student Θ_S %.2f ms, its backward %.2f ms\n", 1e3 * B / plain, per_s,
                  per_b);
    };
    ntkd_job(s.student, sopt, s.xd, "double", student_rate);
    ntkd_job(student32, sopt32, s.x, "float", student32_rate);
    const double per_t = 1e3 * B / rate([&] { (void)ntk_exact(s.teacher, xs); }, 5);
    std::printf("    teacher Θ_T of the sub-batch (exact, float): %.2f ms per call\n", per_t);
  }

  const int ne = 2000;
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const Mat<float> xe = Mat<float>::NullaryExpr(ne, 784, [&] { return u(s.rng); });
  auto eval_rate = [&](const std::function<void()>& pass) {  // best of 3 passes over the ne images
    pass();
    double best = 0;
    for (int round = 0; round < 3; ++round) {
      const auto t0 = clk::now();
      pass();
      best = std::max(best, ne / std::chrono::duration<double>(clk::now() - t0).count());
    }
    return best;
  };
  std::printf("evaluation throughput (forward only, %d images):\n", ne);
  std::printf("  teacher  batch %d %9.1f, batch %d (default) %9.1f, batch 500 %9.1f images/s\n", B,
              eval_rate([&] { predict(s.teacher, xe, B); }), kEvalBatch, eval_rate([&] { predict(s.teacher, xe); }),
              eval_rate([&] { predict(s.teacher, xe, 500); }));
  std::printf("  student  batch %d %9.1f, batch %d (default) %9.1f, batch 500 %9.1f images/s\n", B,
              eval_rate([&] { predict(s.student, xe, B); }), kEvalBatch, eval_rate([&] { predict(s.student, xe); }),
              eval_rate([&] { predict(s.student, xe, 500); }));

  // ---- PyTorch, same networks, batch and threads, in this run
  {
    const std::string cmd = std::string("/usr/bin/python3 ") + HILO_BENCH_TORCH_SCRIPT + " " + std::to_string(B) + " " +
                            std::to_string(threads);
    std::string out;
    int status = -1;
    if (FILE* p = popen(cmd.c_str(), "r")) {
      char buf[256];
      while (std::fgets(buf, sizeof buf, p)) out += buf;
      status = pclose(p);
    }
    auto torch_rate = [&](const std::string& name) {
      const auto at = out.find("torch " + name + " ");
      return at == std::string::npos ? 0.0 : std::atof(out.c_str() + at + 7 + name.size());
    };
    const double tt = torch_rate("teacher-float32"), ts32 = torch_rate("student-float32"), ts64 = torch_rate("student-float64");
    if (status != 0 || tt <= 0) {
      std::printf("PyTorch: skipped (python3 cannot import torch; Debian python3-torch provides it)\n");
    } else {
      std::printf("PyTorch training throughput (same networks, batch %d, %d thread(s)):\n", B, threads);
      std::printf("  teacher float32 %9.1f images/s; hilo teacher (float) %.2fx of it\n", tt, teacher_rate / tt);
      std::printf("  student float32 %9.1f images/s, float64 %9.1f images/s; hilo student float %.2fx of torch float32, "
                  "hilo student double %.2fx / %.2fx of torch float32 / float64\n",
                  ts32, ts64, student32_rate / ts32, student_rate / ts32, student_rate / ts64);
    }
  }

  // ---- 2. exact NTK vs full Jacobian, each in a fresh process (same seeded networks there)
  std::printf("NTK of a batch of %d:\n", B);
  const Measured te = in_fresh_process(exe, "teacher-exact", B, threads);
  std::printf("  teacher exact (Gram products) %8.3f s  peak +%8.1f MB\n", te.seconds, te.peak_mb);
  const Measured tn = in_fresh_process(exe, "teacher-naive", B, threads);
  std::printf("  teacher naive (full Jacobian) %8.3f s  peak +%8.1f MB   speed-up %.1fx, memory %.1fx\n", tn.seconds,
              tn.peak_mb, tn.seconds / te.seconds, tn.peak_mb / std::max(te.peak_mb, 0.1));
  if (te.ok && tn.ok)
    std::printf("  teacher exact vs naive: relative difference %.2e (float network)\n",
                (te.theta - tn.theta).norm() / tn.theta.norm());
  const Measured se = in_fresh_process(exe, "student-exact", B, threads);
  std::printf("  student exact (closed form)   %8.3f s  peak +%8.1f MB\n", se.seconds, se.peak_mb);
  const Measured sn = in_fresh_process(exe, "student-naive", B, threads);
  std::printf("  student naive (full Jacobian) %8.3f s  peak +%8.1f MB   speed-up %.1fx, memory %.1fx\n", sn.seconds,
              sn.peak_mb, sn.seconds / se.seconds, sn.peak_mb / std::max(se.peak_mb, 0.1));
  if (se.ok && sn.ok)
    std::printf("  student exact vs naive: relative difference %.2e (double)\n",
                (se.theta - sn.theta).norm() / sn.theta.norm());
  return te.ok && tn.ok && se.ok && sn.ok ? 0 : 1;
}
