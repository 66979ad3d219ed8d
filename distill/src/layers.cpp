#include "hilo/distill/layers.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace hilo::distill {

// ---------------------------------------------------------------- Conv2d
template <typename T>
Conv2d<T>::Conv2d(Shape in, int out_channels, int k, int pad)
    : in_(in), cout_(out_channels), k_(k), pad_(pad),
      w_(Mat<T>::Zero(out_channels, in.c * k * k)), b_(Mat<T>::Zero(1, out_channels)),
      gw_(Mat<T>::Zero(out_channels, in.c * k * k)), gb_(Mat<T>::Zero(1, out_channels)) {
  if (k < 1 || pad < 0 || in.h + 2 * pad - k + 1 < 1 || in.w + 2 * pad - k + 1 < 1)
    throw std::invalid_argument("conv2d: kernel " + std::to_string(k) + " does not fit the input");
}

template <typename T>
nlohmann::json Conv2d<T>::config() const {
  return {{"in", {in_.c, in_.h, in_.w}}, {"out_channels", cout_}, {"k", k_}, {"pad", pad_}};
}

template <typename T>
Mat<T> Conv2d<T>::forward(const Mat<T>& x, bool) {
  const Shape o = out_shape();
  const int B = static_cast<int>(x.rows()), HW = o.h * o.w, H = in_.h, W = in_.w;
  batch_ = B;
  cols_.resize(in_.c * k_ * k_, static_cast<Eigen::Index>(B) * HW);
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; ++b) {
    for (int c = 0; c < in_.c; ++c)
      for (int ky = 0; ky < k_; ++ky)
        for (int kx = 0; kx < k_; ++kx) {
          T* dst = cols_.row((c * k_ + ky) * k_ + kx).data() + static_cast<Eigen::Index>(b) * HW;
          const T* src = x.row(b).data() + c * H * W;
          for (int oy = 0; oy < o.h; ++oy) {
            const int iy = oy + ky - pad_;
            for (int ox = 0; ox < o.w; ++ox) {
              const int ix = ox + kx - pad_;
              dst[oy * o.w + ox] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? src[iy * W + ix] : T(0);
            }
          }
        }
  }
  Mat<T> out = w_ * cols_;  // Cout × (B·HW)
  Mat<T> y(B, cout_ * HW);
  for (int b = 0; b < B; ++b)
    for (int co = 0; co < cout_; ++co)
      y.row(b).segment(co * HW, HW) =
          out.row(co).segment(static_cast<Eigen::Index>(b) * HW, HW).array() + b_(0, co);
  return y;
}

namespace {
// dy (B × Cout·HW, sample rows) → Cout × (B·HW), the layout of the im2col product.
template <typename T>
Mat<T> conv_dout(const Mat<T>& dy, int B, int cout, int HW) {
  Mat<T> dout(cout, static_cast<Eigen::Index>(B) * HW);
  for (int b = 0; b < B; ++b)
    for (int co = 0; co < cout; ++co)
      dout.row(co).segment(static_cast<Eigen::Index>(b) * HW, HW) = dy.row(b).segment(co * HW, HW);
  return dout;
}
// Rows of a stacked cotangent (layers.hpp, backward_input): a multiple of the forward's batch.
int stacked_rows(Eigen::Index rows, int batch, const char* layer) {
  if (batch < 1 || rows % batch != 0)
    throw std::logic_error(std::string(layer) + ".backward_input: " + std::to_string(rows) +
                           " rows are not a multiple of the forward's batch " + std::to_string(batch));
  return static_cast<int>(rows);
}
}  // namespace

template <typename T>
void Conv2d<T>::backward_params(const Mat<T>& dy) {
  const Shape o = out_shape();
  const Mat<T> dout = conv_dout(dy, batch_, cout_, o.h * o.w);
  gw_.noalias() += dout * cols_.transpose();
  gb_ += dout.rowwise().sum().transpose();
}

template <typename T>
Mat<T> Conv2d<T>::backward(const Mat<T>& dy) {
  backward_params(dy);
  return backward_input(dy);
}

template <typename T>
Mat<T> Conv2d<T>::backward_input(const Mat<T>& dy) {
  const Shape o = out_shape();
  const int R = stacked_rows(dy.rows(), batch_, "conv2d"), HW = o.h * o.w, H = in_.h, W = in_.w;
  const Mat<T> dcols = w_.transpose() * conv_dout(dy, R, cout_, HW);
  Mat<T> dx = Mat<T>::Zero(R, in_.size());
#pragma omp parallel for schedule(static)
  for (int b = 0; b < R; ++b) {
    for (int c = 0; c < in_.c; ++c)
      for (int ky = 0; ky < k_; ++ky)
        for (int kx = 0; kx < k_; ++kx) {
          const T* src = dcols.row((c * k_ + ky) * k_ + kx).data() + static_cast<Eigen::Index>(b) * HW;
          T* dst = dx.row(b).data() + c * H * W;
          // ix = ox + kx − pad within [0, W): one contiguous run per output row, which the compiler vectorises
          const int ox0 = std::max(0, pad_ - kx), ox1 = std::min(o.w, W + pad_ - kx);
          for (int oy = 0; oy < o.h; ++oy) {
            const int iy = oy + ky - pad_;
            if (iy < 0 || iy >= H) continue;
            T* d = dst + iy * W + kx - pad_;
            const T* s = src + oy * o.w;
            for (int ox = ox0; ox < ox1; ++ox) d[ox] += s[ox];
          }
        }
  }
  return dx;
}

// ---------------------------------------------------------------- Linear
template <typename T>
Linear<T>::Linear(int in, int out)
    : in_(in), out_(out), w_(Mat<T>::Zero(out, in)), b_(Mat<T>::Zero(1, out)),
      gw_(Mat<T>::Zero(out, in)), gb_(Mat<T>::Zero(1, out)) {
  if (in < 1 || out < 1) throw std::invalid_argument("linear: sizes must be positive");
}

template <typename T>
Mat<T> Linear<T>::forward(const Mat<T>& x, bool) {
  x_ = x;
  Mat<T> y = x * w_.transpose();
  y.rowwise() += b_.row(0);
  return y;
}

template <typename T>
Mat<T> Linear<T>::backward(const Mat<T>& dy) {
  gw_.noalias() += dy.transpose() * x_;
  gb_ += dy.colwise().sum();
  return backward_input(dy);
}
template <typename T>
Mat<T> Linear<T>::backward_input(const Mat<T>& dy) {
  stacked_rows(dy.rows(), static_cast<int>(x_.rows()), "linear");
  return dy * w_;
}

// ---------------------------------------------------------------- ReLU
template <typename T>
Mat<T> ReLU<T>::forward(const Mat<T>& x, bool) {
  mask_ = (x.array() > T(0)).template cast<T>();
  return x.cwiseMax(T(0));
}
template <typename T>
Mat<T> ReLU<T>::backward(const Mat<T>& dy) {
  return backward_input(dy);
}
template <typename T>
Mat<T> ReLU<T>::backward_input(const Mat<T>& dy) {
  const int R = stacked_rows(dy.rows(), static_cast<int>(mask_.rows()), "relu");
  if (R == mask_.rows()) return dy.cwiseProduct(mask_);
  return dy.cwiseProduct(mask_.replicate(R / mask_.rows(), 1));
}

// ---------------------------------------------------------------- Pool2d
template <typename T>
Pool2d<T>::Pool2d(Shape in, int k, Kind kind) : in_(in), k_(k), kind_(kind) {
  if (k < 1 || in.h % k != 0 || in.w % k != 0)
    throw std::invalid_argument("pool2d: input " + std::to_string(in.h) + "x" + std::to_string(in.w) +
                                " must be divisible by the window " + std::to_string(k));
}
template <typename T>
nlohmann::json Pool2d<T>::config() const {
  return {{"in", {in_.c, in_.h, in_.w}}, {"k", k_}};
}

template <typename T>
Mat<T> Pool2d<T>::forward(const Mat<T>& x, bool) {
  const Shape o = out_shape();
  const int B = static_cast<int>(x.rows());
  batch_ = B;
  Mat<T> y(B, o.size());
  if (kind_ == Kind::max) argmax_.assign(static_cast<std::size_t>(B) * o.size(), 0);
  const T inv = T(1) / T(k_ * k_);
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < in_.c; ++c)
      for (int oy = 0; oy < o.h; ++oy)
        for (int ox = 0; ox < o.w; ++ox) {
          const int oi = (c * o.h + oy) * o.w + ox;
          T acc = kind_ == Kind::max ? -std::numeric_limits<T>::infinity() : T(0);
          int best = 0;
          for (int ky = 0; ky < k_; ++ky)
            for (int kx = 0; kx < k_; ++kx) {
              const int ii = (c * in_.h + oy * k_ + ky) * in_.w + ox * k_ + kx;
              const T v = x(b, ii);
              if (kind_ == Kind::max) {
                if (v > acc) { acc = v; best = ii; }
              } else {
                acc += v;
              }
            }
          if (kind_ == Kind::max) {
            y(b, oi) = acc;
            argmax_[static_cast<std::size_t>(b) * o.size() + oi] = best;
          } else {
            y(b, oi) = acc * inv;
          }
        }
  return y;
}

template <typename T>
Mat<T> Pool2d<T>::backward(const Mat<T>& dy) {
  return backward_input(dy);
}

template <typename T>
Mat<T> Pool2d<T>::backward_input(const Mat<T>& dy) {
  const Shape o = out_shape();
  const int R = stacked_rows(dy.rows(), batch_, kind_ == Kind::max ? "maxpool2d" : "avgpool2d");
  Mat<T> dx = Mat<T>::Zero(R, in_.size());
  if (kind_ == Kind::max) {  // each output's cotangent to the input position that won the forward's max
    const auto n = static_cast<std::size_t>(o.size());
    for (int b = 0; b < R; ++b) {
      const int* from = argmax_.data() + static_cast<std::size_t>(b % batch_) * n;
      const T* d = dy.row(b).data();
      T* x = dx.row(b).data();
      for (std::size_t i = 0; i < n; ++i) x[from[i]] += d[i];
    }
    return dx;
  }
  const T inv = T(1) / T(k_ * k_);
  for (int b = 0; b < R; ++b)
    for (int c = 0; c < in_.c; ++c)
      for (int oy = 0; oy < o.h; ++oy)
        for (int ox = 0; ox < o.w; ++ox) {
          const int oi = (c * o.h + oy) * o.w + ox;
          for (int ky = 0; ky < k_; ++ky)
            for (int kx = 0; kx < k_; ++kx)
              dx(b, (c * in_.h + oy * k_ + ky) * in_.w + ox * k_ + kx) += dy(b, oi) * inv;
        }
  return dx;
}

// ---------------------------------------------------------------- BatchNorm
template <typename T>
BatchNorm<T>::BatchNorm(Shape s, double eps, double momentum)
    : s_(s), eps_(eps), momentum_(momentum), gamma_(Mat<T>::Ones(1, s.c)), beta_(Mat<T>::Zero(1, s.c)),
      ggamma_(Mat<T>::Zero(1, s.c)), gbeta_(Mat<T>::Zero(1, s.c)), rmean_(Mat<T>::Zero(1, s.c)),
      rvar_(Mat<T>::Ones(1, s.c)) {}

template <typename T>
nlohmann::json BatchNorm<T>::config() const {
  return {{"c", s_.c}, {"h", s_.h}, {"w", s_.w}, {"eps", eps_}, {"momentum", momentum_}};
}

template <typename T>
Mat<T> BatchNorm<T>::forward(const Mat<T>& x, bool train) {
  const int B = static_cast<int>(x.rows()), HW = s_.h * s_.w;
  last_train_ = train;
  inv_std_.resize(s_.c);
  xhat_.resize(B, s_.size());
  Mat<T> y(B, s_.size());
  for (int c = 0; c < s_.c; ++c) {
    double mean, var;
    if (train) {
      double s = 0, ss = 0;
      for (int b = 0; b < B; ++b) {
        const auto seg = x.row(b).segment(c * HW, HW);
        s += static_cast<double>(seg.sum());
      }
      const double n = static_cast<double>(B) * HW;
      mean = s / n;
      for (int b = 0; b < B; ++b)
        ss += static_cast<double>((x.row(b).segment(c * HW, HW).array() - T(mean)).square().sum());
      var = ss / n;
      rmean_(0, c) = static_cast<T>((1 - momentum_) * rmean_(0, c) + momentum_ * mean);
      const double unbiased = n > 1 ? var * n / (n - 1) : var;
      rvar_(0, c) = static_cast<T>((1 - momentum_) * rvar_(0, c) + momentum_ * unbiased);
    } else {
      mean = rmean_(0, c);
      var = rvar_(0, c);
    }
    const T inv = static_cast<T>(1.0 / std::sqrt(var + eps_));
    inv_std_(c) = inv;
    for (int b = 0; b < B; ++b) {
      xhat_.row(b).segment(c * HW, HW) = (x.row(b).segment(c * HW, HW).array() - T(mean)) * inv;
      y.row(b).segment(c * HW, HW) = xhat_.row(b).segment(c * HW, HW).array() * gamma_(0, c) + beta_(0, c);
    }
  }
  return y;
}

template <typename T>
Mat<T> BatchNorm<T>::backward(const Mat<T>& dy) {
  const int B = static_cast<int>(dy.rows()), HW = s_.h * s_.w;
  Mat<T> dx(B, s_.size());
  const T n = static_cast<T>(B) * HW;
  for (int c = 0; c < s_.c; ++c) {
    T sdy = 0, sdyx = 0;
    for (int b = 0; b < B; ++b) {
      sdy += dy.row(b).segment(c * HW, HW).sum();
      sdyx += dy.row(b).segment(c * HW, HW).dot(xhat_.row(b).segment(c * HW, HW));
    }
    ggamma_(0, c) += sdyx;
    gbeta_(0, c) += sdy;
    const T g = gamma_(0, c), inv = inv_std_(c);
    for (int b = 0; b < B; ++b) {
      if (last_train_) {
        dx.row(b).segment(c * HW, HW) =
            (g * inv / n) * (n * dy.row(b).segment(c * HW, HW).array() - sdy -
                             xhat_.row(b).segment(c * HW, HW).array() * sdyx);
      } else {
        dx.row(b).segment(c * HW, HW) = dy.row(b).segment(c * HW, HW) * (g * inv);
      }
    }
  }
  return dx;
}

template <typename T>
Mat<T> BatchNorm<T>::backward_input(const Mat<T>& dy) {
  if (last_train_) throw std::logic_error("batchnorm.backward_input: needs an evaluation-mode forward (samples are coupled in training mode)");
  stacked_rows(dy.rows(), static_cast<int>(xhat_.rows()), "batchnorm");
  const int HW = s_.h * s_.w;
  Mat<T> dx(dy.rows(), s_.size());
  for (int c = 0; c < s_.c; ++c)
    dx.middleCols(c * HW, HW) = dy.middleCols(c * HW, HW) * (gamma_(0, c) * inv_std_(c));
  return dx;
}

// ---------------------------------------------------------------- Upsample2d
template <typename T>
Upsample2d<T>::Upsample2d(Shape in, int k) : in_(in), k_(k) {
  if (k < 1) throw std::invalid_argument("upsample2d: factor must be >= 1, got " + std::to_string(k));
}

template <typename T>
Mat<T> Upsample2d<T>::forward(const Mat<T>& x, bool) {
  const Shape o = out_shape();
  const int B = static_cast<int>(x.rows());
  Mat<T> y(B, o.size());
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < in_.c; ++c)
      for (int oy = 0; oy < o.h; ++oy) {
        const T* src = x.row(b).data() + (c * in_.h + oy / k_) * in_.w;
        T* dst = y.row(b).data() + (c * o.h + oy) * o.w;
        for (int ox = 0; ox < o.w; ++ox) dst[ox] = src[ox / k_];
      }
  return y;
}

template <typename T>
Mat<T> Upsample2d<T>::backward_input(const Mat<T>& dy) {
  const Shape o = out_shape();
  const int R = static_cast<int>(dy.rows());
  Mat<T> dx = Mat<T>::Zero(R, in_.size());
  for (int b = 0; b < R; ++b)
    for (int c = 0; c < in_.c; ++c)
      for (int oy = 0; oy < o.h; ++oy) {
        T* dst = dx.row(b).data() + (c * in_.h + oy / k_) * in_.w;
        const T* src = dy.row(b).data() + (c * o.h + oy) * o.w;
        for (int ox = 0; ox < o.w; ++ox) dst[ox / k_] += src[ox];
      }
  return dx;
}

// ---------------------------------------------------------------- NonnegConv2d
template <typename T>
NonnegConv2d<T>::NonnegConv2d(Shape in, int out_channels, int k, int pad)
    : conv_(in, out_channels, k, pad), rho_(Mat<T>::Zero(out_channels, in.c * k * k)),
      grho_(Mat<T>::Zero(out_channels, in.c * k * k)) {}

template <typename T>
Mat<T> NonnegConv2d<T>::kernels() const {
  // softplus, written so that it neither overflows for large ρ nor loses precision for very negative ρ
  return rho_.unaryExpr([](T r) { return r > T(0) ? r + std::log1p(std::exp(-r)) : std::log1p(std::exp(r)); });
}

template <typename T>
Mat<T> NonnegConv2d<T>::slope() const {
  return (T(1) / (T(1) + (-rho_.array()).exp())).matrix();
}

template <typename T>
Mat<T> NonnegConv2d<T>::forward(const Mat<T>& x, bool train) {
  conv_.weight() = kernels();
  batch_ = static_cast<int>(x.rows());
  return conv_.forward(x, train);
}

template <typename T>
Mat<T> NonnegConv2d<T>::backward(const Mat<T>& dy) {
  conv_.grad_weight().setZero();
  Mat<T> dx = conv_.backward(dy);
  grho_.array() += conv_.grad_weight().array() * slope().array();
  return dx;
}

template <typename T>
nlohmann::json NonnegConv2d<T>::config() const {
  return conv_.config();
}

template <typename T>
void init_optical(Sequential<T>& net, std::mt19937_64& rng, double spread) {
  if (!(spread >= 0 && spread < 1)) throw std::invalid_argument("init_optical: spread must be in [0, 1)");
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (const auto& l : net.layers()) {
    if (l->type() != "nonneg_conv2d") continue;
    Mat<T>& rho = *l->params().front().value;
    const double mean = 1.0 / static_cast<double>(rho.cols());
    for (Eigen::Index i = 0; i < rho.size(); ++i) {
      const double kappa = mean * (1.0 + spread * u(rng));
      rho.data()[i] = static_cast<T>(std::log(std::expm1(kappa)));  // softplus⁻¹
    }
  }
}

// ---------------------------------------------------------------- Sequential
template <typename T>
Sequential<T>& Sequential<T>::conv(int out_channels, int k, int pad) {
  add(std::make_unique<Conv2d<T>>(cur_shape(), out_channels, k, pad));
  return *this;
}
template <typename T>
Sequential<T>& Sequential<T>::linear(int out) {
  add(std::make_unique<Linear<T>>(cur_shape().size(), out));
  return *this;
}
template <typename T>
Sequential<T>& Sequential<T>::relu() {
  add(std::make_unique<ReLU<T>>(cur_shape()));
  return *this;
}
template <typename T>
Sequential<T>& Sequential<T>::maxpool(int k) {
  add(std::make_unique<Pool2d<T>>(cur_shape(), k, Pool2d<T>::Kind::max));
  return *this;
}
template <typename T>
Sequential<T>& Sequential<T>::avgpool(int k) {
  add(std::make_unique<Pool2d<T>>(cur_shape(), k, Pool2d<T>::Kind::avg));
  return *this;
}
template <typename T>
Sequential<T>& Sequential<T>::batchnorm() {
  add(std::make_unique<BatchNorm<T>>(cur_shape()));
  return *this;
}

template <typename T>
Sequential<T>& Sequential<T>::upsample(int k) {
  add(std::make_unique<Upsample2d<T>>(cur_shape(), k));
  return *this;
}
template <typename T>
Sequential<T>& Sequential<T>::nonneg_conv(int out_channels, int k, int pad) {
  add(std::make_unique<NonnegConv2d<T>>(cur_shape(), out_channels, k, pad));
  return *this;
}

template <typename T>
Mat<T> Sequential<T>::forward_range(const Mat<T>& x, std::size_t start, std::size_t stop, bool train) {
  Mat<T> h = x;
  for (std::size_t i = start; i < stop; ++i) h = layers_[i]->forward(h, train);
  return h;
}
template <typename T>
Mat<T> Sequential<T>::forward(const Mat<T>& x, bool train) {
  return forward_range(x, 0, layers_.size(), train);
}
template <typename T>
Mat<T> Sequential<T>::backward_range(const Mat<T>& dy, std::size_t start, std::size_t stop) {
  Mat<T> g = dy;
  for (std::size_t i = stop; i-- > start;) g = layers_[i]->backward(g);
  return g;
}
template <typename T>
Mat<T> Sequential<T>::backward(const Mat<T>& dy) {
  return backward_range(dy, 0, layers_.size());
}
template <typename T>
std::vector<Param<T>> Sequential<T>::params() {
  std::vector<Param<T>> out;
  for (std::size_t i = 0; i < layers_.size(); ++i)
    for (auto p : layers_[i]->params()) {
      p.name = std::to_string(i) + "." + layers_[i]->type() + "." + p.name;
      out.push_back(p);
    }
  return out;
}
template <typename T>
void Sequential<T>::zero_grad() {
  for (auto& p : params()) p.grad->setZero();
}
template <typename T>
std::vector<Mat<T>*> Sequential<T>::state() {
  std::vector<Mat<T>*> s;
  for (auto& p : params()) s.push_back(p.value);
  for (const auto& l : layers_)
    for (auto& b : l->buffers()) s.push_back(b.value);
  return s;
}
template <typename T>
std::size_t Sequential<T>::num_params() {
  std::size_t n = 0;
  for (auto& p : params()) n += static_cast<std::size_t>(p.value->size());
  return n;
}
template <typename T>
nlohmann::json Sequential<T>::arch() const {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : layers_) layers.push_back({{"type", l->type()}, {"config", l->config()}});
  return {{"in", {in_.c, in_.h, in_.w}}, {"layers", layers}};
}

template <typename T>
Sequential<T> sequential_from_arch(const nlohmann::json& arch) {
  const auto in = arch.at("in");
  Sequential<T> net(Shape{in.at(0).get<int>(), in.at(1).get<int>(), in.at(2).get<int>()});
  for (const auto& l : arch.at("layers")) {
    const std::string t = l.at("type");
    const auto& c = l.at("config");
    if (t == "conv2d") net.conv(c.at("out_channels"), c.at("k"), c.at("pad"));
    else if (t == "linear") net.linear(c.at("out"));
    else if (t == "relu") net.relu();
    else if (t == "maxpool2d") net.maxpool(c.at("k"));
    else if (t == "avgpool2d") net.avgpool(c.at("k"));
    else if (t == "batchnorm") net.batchnorm();
    else if (t == "upsample2d") net.upsample(c.at("k"));
    else if (t == "nonneg_conv2d") net.nonneg_conv(c.at("out_channels"), c.at("k"), c.at("pad"));
    else throw std::invalid_argument("model arch: unknown layer type '" + t + "'");
  }
  return net;
}

// ---------------------------------------------------------------- losses
template <typename T>
Mat<T> softmax(const Mat<T>& logits, double temperature) {
  Mat<T> z = logits / static_cast<T>(temperature);
  for (Eigen::Index i = 0; i < z.rows(); ++i) {
    const T m = z.row(i).maxCoeff();
    z.row(i) = (z.row(i).array() - m).exp();
    z.row(i) /= z.row(i).sum();
  }
  return z;
}

template <typename T>
double softmax_cross_entropy(const Mat<T>& logits, const std::vector<int>& labels, Mat<T>* dlogits) {
  const Eigen::Index B = logits.rows();
  if (static_cast<Eigen::Index>(labels.size()) != B)
    throw std::invalid_argument("softmax_cross_entropy: one label per row required");
  const Mat<T> p = softmax(logits);
  double loss = 0;
  for (Eigen::Index i = 0; i < B; ++i)
    loss -= std::log(std::max(static_cast<double>(p(i, labels[i])), 1e-300));
  if (dlogits) {
    *dlogits = p;
    for (Eigen::Index i = 0; i < B; ++i) (*dlogits)(i, labels[i]) -= T(1);
    *dlogits /= static_cast<T>(B);
  }
  return loss / static_cast<double>(B);
}

template <typename T>
double accuracy(const Mat<T>& logits, const std::vector<int>& labels) {
  int ok = 0;
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    Eigen::Index j;
    logits.row(i).maxCoeff(&j);
    ok += (static_cast<int>(j) == labels[i]);
  }
  return logits.rows() ? static_cast<double>(ok) / static_cast<double>(logits.rows()) : 0.0;
}

#define HILO_INST(T)                                                                       \
  template class Conv2d<T>;                                                                \
  template class Linear<T>;                                                                \
  template class ReLU<T>;                                                                  \
  template class Pool2d<T>;                                                                \
  template class BatchNorm<T>;                                                             \
  template class Upsample2d<T>;                                                            \
  template class NonnegConv2d<T>;                                                          \
  template void init_optical<T>(Sequential<T>&, std::mt19937_64&, double);                 \
  template class Sequential<T>;                                                            \
  template Sequential<T> sequential_from_arch<T>(const nlohmann::json&);                   \
  template Mat<T> softmax<T>(const Mat<T>&, double);                                       \
  template double softmax_cross_entropy<T>(const Mat<T>&, const std::vector<int>&, Mat<T>*); \
  template double accuracy<T>(const Mat<T>&, const std::vector<int>&);
HILO_INST(float)
HILO_INST(double)
#undef HILO_INST

}  // namespace hilo::distill
