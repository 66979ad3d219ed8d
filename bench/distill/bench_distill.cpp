// Learning-core benchmarks, each against a reference measured in the same run:
//   1. training throughput (images/s) of the teacher (float) and the optical student (double), plain
//      and with the NTKD term;
//   2. the exact NTK of a batch (per-layer Gram products / closed form) against the naive full-Jacobian
//      product, for the teacher and the student: time, peak memory, and their agreement.
// Peak memory is the growth of the process's peak resident set (VmHWM) while the computation runs in a
// forked child, so each measurement starts from the same baseline.
//   bench_distill [batch=128] [threads=1]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "hilo/distill/ntk.hpp"
#include "hilo/distill/optim.hpp"
#include "hilo/distill/student.hpp"
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

struct Measured {
  double seconds = 0, peak_mb = 0, checksum = 0;
};

// Runs fn in a child process; returns its time, peak RSS growth and a checksum of its result.
Measured in_child(const std::function<MatD()>& fn) {
  int p[2];
  if (pipe(p) != 0) std::abort();
  const pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    const long base = status_kb("VmRSS:");
    const auto t0 = clk::now();
    const MatD th = fn();
    Measured m;
    m.seconds = std::chrono::duration<double>(clk::now() - t0).count();
    m.peak_mb = (status_kb("VmHWM:") - base) / 1024.0;
    m.checksum = th.sum() / th.norm();
    if (write(p[1], &m, sizeof m) != sizeof m) _exit(1);
    _exit(0);
  }
  close(p[1]);
  Measured m;
  if (read(p[0], &m, sizeof m) != sizeof m) std::fprintf(stderr, "child failed\n");
  close(p[0]);
  waitpid(pid, nullptr, 0);
  return m;
}
}  // namespace

int main(int argc, char** argv) {
  const int B = argc > 1 ? std::atoi(argv[1]) : 128;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  Eigen::setNbThreads(threads);
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const Mat<float> x = Mat<float>::NullaryExpr(B, 784, [&] { return u(rng); });
  std::vector<int> y(B);
  for (int i = 0; i < B; ++i) y[i] = i % 10;

  // ---- 1. throughput
  Sequential<float> teacher = make_teacher(TeacherArch{}, Shape{1, 28, 28}, 10);
  init_he(teacher, rng);
  Optimizer<float> topt(teacher.params(), OptimizerOptions{});
  auto rate = [&](const std::function<void()>& step, int steps) {
    step();  // warm-up
    const auto t0 = clk::now();
    for (int s = 0; s < steps; ++s) step();
    return steps * B / std::chrono::duration<double>(clk::now() - t0).count();
  };
  const double teacher_rate = rate([&] {
    topt.zero_grad();
    Mat<float> dl;
    softmax_cross_entropy(teacher.forward(x, true), y, &dl);
    teacher.backward(dl);
    topt.step();
  }, 5);
  StudentOptions so;
  so.noise.enabled = true;
  OpticalStudent student(so, Shape{1, 28, 28}, 10);
  student.init(rng);
  Optimizer<double> sopt(student.params(), OptimizerOptions{});
  const MatD xd = x.cast<double>();
  const double student_rate = rate([&] {
    sopt.zero_grad();
    MatD dl;
    softmax_cross_entropy(student.forward(xd, true, &rng), y, &dl);
    student.backward(dl);
    sopt.step();
  }, 10);
  const KernelDistance dist{"alignment"};
  const int nb = std::min(32, B);
  const double ntkd_rate = rate([&] {
    sopt.zero_grad();
    MatD dl;
    softmax_cross_entropy(student.forward(xd, true, &rng), y, &dl);
    student.backward(dl);
    const MatD tt = ntk_exact(teacher, Mat<float>(x.topRows(nb)));
    const MatD ts = student.ntk(xd.topRows(nb), ParamSet::all);
    student.ntk_backward(dist.grad(tt, ts));
    sopt.step();
  }, 5);
  std::printf("training throughput (batch %d, %d thread(s)):\n", B, threads);
  std::printf("  teacher  (%zu params, float)        %9.1f images/s\n", teacher.num_params(), teacher_rate);
  std::printf("  student  (%zu params, double, noise) %9.1f images/s\n", student.num_params(), student_rate);
  std::printf("  student + NTKD (sub-batch %d, every step) %9.1f images/s  (%.2fx of plain)\n", nb, ntkd_rate,
              ntkd_rate / student_rate);

  // ---- 2. exact NTK vs full Jacobian
  std::printf("NTK of a batch of %d:\n", B);
  const Measured te = in_child([&] { return ntk_exact(teacher, x); });
  const Measured tn = in_child([&] { return ntk_naive(teacher, x); });
  std::printf("  teacher exact (Gram products) %8.3f s  peak +%8.1f MB\n", te.seconds, te.peak_mb);
  std::printf("  teacher naive (full Jacobian) %8.3f s  peak +%8.1f MB   speed-up %.1fx, memory %.1fx\n", tn.seconds,
              tn.peak_mb, tn.seconds / te.seconds, tn.peak_mb / std::max(te.peak_mb, 0.1));
  // Agreement of the two (computed in the parent, once).
  const MatD a = ntk_exact(teacher, x), b = ntk_naive(teacher, x);
  std::printf("  teacher exact vs naive: relative difference %.2e (float network)\n", (a - b).norm() / b.norm());

  const Measured se = in_child([&] { return student.ntk(xd, ParamSet::all); });
  const Measured sn = in_child([&] {
    // Brute force: one backward per (sample, class), full Jacobian materialised.
    const int C = 10;
    const Eigen::Index P = static_cast<Eigen::Index>(student.num_params());
    MatD J(static_cast<Eigen::Index>(B) * C, P);
    for (int i = 0; i < B; ++i) {
      student.forward(xd.row(i), false);
      for (int c = 0; c < C; ++c) {
        student.zero_grad();
        MatD dl = MatD::Zero(1, C);
        dl(0, c) = 1;
        student.backward(dl);
        Eigen::Index off = 0;
        for (auto& p : student.params()) {
          J.row(i * C + c).segment(off, p.grad->size()) = Eigen::Map<const Eigen::RowVectorXd>(p.grad->data(), p.grad->size());
          off += p.grad->size();
        }
      }
    }
    MatD th = MatD::Zero(B, B);
    for (int c = 0; c < C; ++c) {
      MatD Jc(B, P);
      for (int i = 0; i < B; ++i) Jc.row(i) = J.row(i * C + c);
      th += Jc * Jc.transpose();
    }
    return th;
  });
  std::printf("  student exact (closed form)   %8.3f s  peak +%8.1f MB\n", se.seconds, se.peak_mb);
  std::printf("  student naive (full Jacobian) %8.3f s  peak +%8.1f MB   speed-up %.1fx, memory %.1fx\n", sn.seconds,
              sn.peak_mb, sn.seconds / se.seconds, sn.peak_mb / std::max(se.peak_mb, 0.1));
  std::printf("  student checksums exact %.12f naive %.12f\n", se.checksum, sn.checksum);
  return 0;
}
