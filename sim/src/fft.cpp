#include "hilo/sim/fft.hpp"

#include <cassert>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include <fftw3.h>

namespace hilo::sim {
namespace {

// FFTW's planner (plan creation and destruction) shares state across the process and is not
// re-entrant, so every call into it goes through this one lock. Execution needs no lock.
std::mutex& planner_mutex() {
  static std::mutex m;
  return m;
}

// Planning::estimate adds FFTW_UNALIGNED: on the development machine (x86-64, FFTW 3.3.10) the plain
// FFTW_ESTIMATE heuristic picked SIMD plans 5–8× slower than its unaligned (scalar-codelet) choice at
// 256²–2048², which in turn ran within ~1.3× of FFTW_MEASURE (bench/sim measures all three).
unsigned flags_of(Planning p) { return p == Planning::measure ? FFTW_MEASURE : FFTW_ESTIMATE | FFTW_UNALIGNED; }

void check_size(Eigen::Index rows, Eigen::Index cols, const char* what) {
  if (rows < 1 || cols < 1)
    throw std::invalid_argument(std::string(what) + ": rows and cols must be >= 1, got " +
                                std::to_string(rows) + "x" + std::to_string(cols));
}

// An fftw_malloc'd buffer, freed on destruction.
template <typename T>
struct FftwBuffer {
  T* p = nullptr;
  explicit FftwBuffer(std::size_t n) : p(static_cast<T*>(fftw_malloc(sizeof(T) * (n ? n : 1)))) {
    if (!p) throw std::bad_alloc();
  }
  ~FftwBuffer() { fftw_free(p); }
  FftwBuffer(const FftwBuffer&) = delete;
  FftwBuffer& operator=(const FftwBuffer&) = delete;
};

fftw_complex* as_fftw(cplx* p) { return reinterpret_cast<fftw_complex*>(p); }

template <typename A>
A shift_by(const A& a, Eigen::Index sr, Eigen::Index sc) {
  // out((r + sr) mod rows, (c + sc) mod cols) = a(r, c)
  const Eigen::Index R = a.rows(), C = a.cols();
  if (R == 0 || C == 0) return a;
  sr %= R;
  sc %= C;
  A out(R, C);
  for (Eigen::Index r = 0; r < R; ++r) {
    const Eigen::Index ro = (r + sr) % R;
    const Eigen::Index split = C - sc;  // columns [0, split) go to [sc, C), the rest to [0, sc)
    out.row(ro).segment(sc, split) = a.row(r).segment(0, split);
    if (sc > 0) out.row(ro).segment(0, sc) = a.row(r).segment(split, sc);
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------------------------------------- Fft2
struct Fft2::Plans {
  fftw_plan fwd = nullptr;
  fftw_plan inv = nullptr;
  int alignment = 0;  // fftw_alignment_of the planning buffer
  ~Plans() {
    std::lock_guard lock(planner_mutex());
    if (fwd) fftw_destroy_plan(fwd);
    if (inv) fftw_destroy_plan(inv);
  }
};

Fft2::Fft2(Eigen::Index rows, Eigen::Index cols, Planning planning) : rows_(rows), cols_(cols) {
  check_size(rows, cols, "Fft2");
  plans_ = std::make_unique<Plans>();
  FftwBuffer<fftw_complex> buf(static_cast<std::size_t>(rows * cols));
  plans_->alignment = fftw_alignment_of(reinterpret_cast<double*>(buf.p));
  std::lock_guard lock(planner_mutex());
  const unsigned flags = flags_of(planning);
  plans_->fwd = fftw_plan_dft_2d(int(rows), int(cols), buf.p, buf.p, FFTW_FORWARD, flags);
  plans_->inv = fftw_plan_dft_2d(int(rows), int(cols), buf.p, buf.p, FFTW_BACKWARD, flags);
  if (!plans_->fwd || !plans_->inv) throw std::runtime_error("Fft2: FFTW could not create a plan");
}

Fft2::~Fft2() = default;
Fft2::Fft2(Fft2&&) noexcept = default;
Fft2& Fft2::operator=(Fft2&&) noexcept = default;

namespace {
void execute_c2c(fftw_plan plan, int alignment, CArray& a) {
  fftw_complex* p = as_fftw(a.data());
  if (fftw_alignment_of(reinterpret_cast<double*>(p)) == alignment) {
    fftw_execute_dft(plan, p, p);
    return;
  }
  FftwBuffer<fftw_complex> tmp(static_cast<std::size_t>(a.size()));
  std::memcpy(tmp.p, p, sizeof(fftw_complex) * a.size());
  fftw_execute_dft(plan, tmp.p, tmp.p);
  std::memcpy(p, tmp.p, sizeof(fftw_complex) * a.size());
}
}  // namespace

void Fft2::forward(CArray& a) const {
  assert(a.rows() == rows_ && a.cols() == cols_ && "Fft2: array shape differs from the plan's");
  execute_c2c(plans_->fwd, plans_->alignment, a);
}

void Fft2::inverse(CArray& a) const {
  assert(a.rows() == rows_ && a.cols() == cols_ && "Fft2: array shape differs from the plan's");
  execute_c2c(plans_->inv, plans_->alignment, a);
  a *= 1.0 / double(rows_ * cols_);
}

void Fft2::inverse_unscaled(CArray& a) const {
  assert(a.rows() == rows_ && a.cols() == cols_ && "Fft2: array shape differs from the plan's");
  execute_c2c(plans_->inv, plans_->alignment, a);
}

CArray Fft2::forward_copy(const CArray& a) const {
  CArray out = a;
  forward(out);
  return out;
}

CArray Fft2::inverse_copy(const CArray& a) const {
  CArray out = a;
  inverse(out);
  return out;
}

// --------------------------------------------------------------------------------------- RealFft2
struct RealFft2::Plans {
  fftw_plan fwd = nullptr;
  fftw_plan inv = nullptr;
  int real_alignment = 0;
  int complex_alignment = 0;
  ~Plans() {
    std::lock_guard lock(planner_mutex());
    if (fwd) fftw_destroy_plan(fwd);
    if (inv) fftw_destroy_plan(inv);
  }
};

RealFft2::RealFft2(Eigen::Index rows, Eigen::Index cols, Planning planning) : rows_(rows), cols_(cols) {
  check_size(rows, cols, "RealFft2");
  plans_ = std::make_unique<Plans>();
  const auto nr = static_cast<std::size_t>(rows * cols);
  const auto nc = static_cast<std::size_t>(rows * (cols / 2 + 1));
  FftwBuffer<double> rbuf(nr);
  FftwBuffer<fftw_complex> cbuf(nc);
  plans_->real_alignment = fftw_alignment_of(rbuf.p);
  plans_->complex_alignment = fftw_alignment_of(reinterpret_cast<double*>(cbuf.p));
  std::lock_guard lock(planner_mutex());
  const unsigned flags = flags_of(planning);
  plans_->fwd = fftw_plan_dft_r2c_2d(int(rows), int(cols), rbuf.p, cbuf.p, flags);
  plans_->inv = fftw_plan_dft_c2r_2d(int(rows), int(cols), cbuf.p, rbuf.p, flags);
  if (!plans_->fwd || !plans_->inv) throw std::runtime_error("RealFft2: FFTW could not create a plan");
}

RealFft2::~RealFft2() = default;
RealFft2::RealFft2(RealFft2&&) noexcept = default;
RealFft2& RealFft2::operator=(RealFft2&&) noexcept = default;

void RealFft2::forward(const RArray& x, CArray& X) const {
  assert(x.rows() == rows_ && x.cols() == cols_ && "RealFft2: array shape differs from the plan's");
  X.resize(rows_, spectrum_cols());
  // r2c leaves its input intact, but FFTW's signature takes a non-const pointer; copy if misaligned.
  double* in = const_cast<double*>(x.data());
  fftw_complex* out = as_fftw(X.data());
  const bool in_ok = fftw_alignment_of(in) == plans_->real_alignment;
  const bool out_ok = fftw_alignment_of(reinterpret_cast<double*>(out)) == plans_->complex_alignment;
  if (in_ok && out_ok) {
    fftw_execute_dft_r2c(plans_->fwd, in, out);
    return;
  }
  FftwBuffer<double> rin(static_cast<std::size_t>(x.size()));
  FftwBuffer<fftw_complex> cout_(static_cast<std::size_t>(X.size()));
  std::memcpy(rin.p, in, sizeof(double) * x.size());
  fftw_execute_dft_r2c(plans_->fwd, rin.p, cout_.p);
  std::memcpy(out, cout_.p, sizeof(fftw_complex) * X.size());
}

void RealFft2::inverse(CArray X, RArray& x) const {
  assert(X.rows() == rows_ && X.cols() == spectrum_cols() && "RealFft2: spectrum shape differs");
  x.resize(rows_, cols_);
  fftw_complex* in = as_fftw(X.data());
  double* out = x.data();
  const bool in_ok = fftw_alignment_of(reinterpret_cast<double*>(in)) == plans_->complex_alignment;
  const bool out_ok = fftw_alignment_of(out) == plans_->real_alignment;
  if (in_ok && out_ok) {
    fftw_execute_dft_c2r(plans_->inv, in, out);
  } else {
    FftwBuffer<fftw_complex> cin(static_cast<std::size_t>(X.size()));
    FftwBuffer<double> rout(static_cast<std::size_t>(x.size()));
    std::memcpy(cin.p, in, sizeof(fftw_complex) * X.size());
    fftw_execute_dft_c2r(plans_->inv, cin.p, rout.p);
    std::memcpy(out, rout.p, sizeof(double) * x.size());
  }
  x *= 1.0 / double(rows_ * cols_);
}

// ------------------------------------------------------------------------------------ free helpers
CArray fft2(const CArray& a) { return Fft2(a.rows(), a.cols()).forward_copy(a); }
CArray ifft2(const CArray& a) { return Fft2(a.rows(), a.cols()).inverse_copy(a); }

CArray fftshift(const CArray& a) { return shift_by(a, a.rows() / 2, a.cols() / 2); }
CArray ifftshift(const CArray& a) { return shift_by(a, a.rows() - a.rows() / 2, a.cols() - a.cols() / 2); }
RArray fftshift(const RArray& a) { return shift_by(a, a.rows() / 2, a.cols() / 2); }
RArray ifftshift(const RArray& a) { return shift_by(a, a.rows() - a.rows() / 2, a.cols() - a.cols() / 2); }

Eigen::ArrayXd fft_frequencies(Eigen::Index n, double pitch) {
  Eigen::ArrayXd f(n);
  const Eigen::Index half = (n + 1) / 2;
  for (Eigen::Index k = 0; k < n; ++k) f[k] = double(k < half ? k : k - n) / (double(n) * pitch);
  return f;
}

Eigen::Index next_fast_size(Eigen::Index n) {
  if (n <= 1) return 1;
  for (Eigen::Index m = n;; ++m) {
    Eigen::Index r = m;
    for (Eigen::Index p : {2, 3, 5, 7})
      while (r % p == 0) r /= p;
    if (r == 1) return m;
  }
}

}  // namespace hilo::sim
