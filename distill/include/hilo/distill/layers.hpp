#pragma once
// Layers with forward and analytic backward, batched, templated on the scalar type.
//
// Activations are row-major matrices: one row per sample, columns = one sample flattened in C order
// (channel, row, column), exactly like numpy's x.reshape(B, -1) of a (B, C, H, W) array.
// float is used for training speed; double for gradient checks (both are instantiated).
//
// Contract of every layer: forward(x, train) caches what backward needs; backward(dy) returns dL/dx
// and *accumulates* dL/dθ into the parameters' grad arrays (zero them with zero_grad()).
// backward must follow the forward of the same batch. Layers that couple samples (batch norm in
// training mode) are the only ones whose per-sample gradients are not independent; the NTK is always
// computed in evaluation mode (running statistics), where every layer acts on each sample alone.
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <nlohmann/json.hpp>

namespace hilo::distill {

template <typename T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
using MatD = Mat<double>;

// Shape of one sample (channels, height, width); a flat vector is {n, 1, 1}.
struct Shape {
  int c = 1, h = 1, w = 1;
  int size() const { return c * h * w; }
  bool operator==(const Shape&) const = default;
};

// A trainable array and its gradient (same shape). `name` is stable and used in model files.
template <typename T>
struct Param {
  std::string name;
  Mat<T>* value = nullptr;
  Mat<T>* grad = nullptr;
};

template <typename T>
class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string type() const = 0;
  virtual Shape out_shape() const = 0;
  virtual Mat<T> forward(const Mat<T>& x, bool train) = 0;
  virtual Mat<T> backward(const Mat<T>& dy) = 0;
  virtual std::vector<Param<T>> params() { return {}; }
  // Non-trainable state saved in model files (batch-norm running statistics).
  virtual std::vector<Param<T>> buffers() { return {}; }
  virtual nlohmann::json config() const = 0;
  // The exact NTK's pass (layers_ntk.cpp), after a forward of B samples in evaluation mode. dy may stack
  // m cotangents of that batch: R = m·B rows, row r belonging to sample r mod B (one stack per output
  // class in ntk_exact).
  // backward_input: dL/dx for every row of dy (R rows), the input gradient alone: no parameter
  // gradient is touched. Throws std::logic_error after a training-mode forward of batch norm (samples
  // are coupled there) or when R is not a multiple of B.
  virtual Mat<T> backward_input(const Mat<T>& dy) = 0;
  // Adds Σ_s Σ_p g_si,p g_sj,p to theta (B × B) over the m stacks s and this layer's parameters p, where
  // g_si = ∂(Σ_k dy_(sB+i),k y_ik)/∂θ for sample i alone. Layers without parameters add nothing.
  virtual void ntk_accumulate(const Mat<T>& /*dy*/, MatD& /*theta*/) {}
  // The per-sample gradients of every row of dy, flattened: R × (number of this layer's parameters).
  // For ntk_accumulate, tests and the naive reference; memory is R·P.
  virtual Mat<T> per_sample_grads(const Mat<T>& dy) { return Mat<T>(dy.rows(), 0); }
};

// 2-D convolution (cross-correlation, like torch.nn.Conv2d), stride 1, zero padding `pad`.
// Weights W: Cout × (Cin·k·k) (row = output channel, columns in (cin, ky, kx) order), bias: 1 × Cout.
// Forward: im2col of the whole batch into (Cin·k·k) × (B·Ho·Wo), one GEMM.
template <typename T>
class Conv2d : public Layer<T> {
 public:
  Conv2d(Shape in, int out_channels, int k, int pad);
  std::string type() const override { return "conv2d"; }
  Shape out_shape() const override { return {cout_, in_.h + 2 * pad_ - k_ + 1, in_.w + 2 * pad_ - k_ + 1}; }
  Mat<T> forward(const Mat<T>& x, bool train) override;
  Mat<T> backward(const Mat<T>& dy) override;
  Mat<T> backward_input(const Mat<T>& dy) override;
  // The parameter half of backward: accumulates the weight and bias gradients for dy, computes no
  // input gradient (for a first layer, whose input carries no parameters: it saves the
  // (Cin·k·k) × (B·Ho·Wo) temporary and the col2im pass).
  void backward_params(const Mat<T>& dy);
  std::vector<Param<T>> params() override { return {{"weight", &w_, &gw_}, {"bias", &b_, &gb_}}; }
  nlohmann::json config() const override;
  void ntk_accumulate(const Mat<T>& dy, MatD& theta) override;
  Mat<T> per_sample_grads(const Mat<T>& dy) override;
  Mat<T>& weight() { return w_; }
  Mat<T>& bias() { return b_; }
  Mat<T>& grad_weight() { return gw_; }
  // im2col of the last forward: (Cin·k·k) × (B·Ho·Wo); sample b occupies columns [b·Ho·Wo, (b+1)·Ho·Wo).
  const Mat<T>& columns() const { return cols_; }

 private:
  Shape in_;
  int cout_, k_, pad_;
  Mat<T> w_, b_, gw_, gb_;
  Mat<T> cols_;  // (Cin·k·k) × (B·Ho·Wo)
  int batch_ = 0;
};

// Fully connected: y = x Wᵀ + b, W: out × in, b: 1 × out.
template <typename T>
class Linear : public Layer<T> {
 public:
  Linear(int in, int out);
  std::string type() const override { return "linear"; }
  Shape out_shape() const override { return {out_, 1, 1}; }
  Mat<T> forward(const Mat<T>& x, bool train) override;
  Mat<T> backward(const Mat<T>& dy) override;
  Mat<T> backward_input(const Mat<T>& dy) override;
  std::vector<Param<T>> params() override { return {{"weight", &w_, &gw_}, {"bias", &b_, &gb_}}; }
  nlohmann::json config() const override { return {{"in", in_}, {"out", out_}}; }
  // Θ_l = (dy dyᵀ) ⊙ (x xᵀ) + dy dyᵀ: exact, without per-sample gradients.
  void ntk_accumulate(const Mat<T>& dy, MatD& theta) override;
  Mat<T> per_sample_grads(const Mat<T>& dy) override;
  Mat<T>& weight() { return w_; }
  Mat<T>& bias() { return b_; }
  const Mat<T>& input() const { return x_; }

 private:
  int in_, out_;
  Mat<T> w_, b_, gw_, gb_, x_;
};

template <typename T>
class ReLU : public Layer<T> {
 public:
  explicit ReLU(Shape s) : s_(s) {}
  std::string type() const override { return "relu"; }
  Shape out_shape() const override { return s_; }
  Mat<T> forward(const Mat<T>& x, bool train) override;
  Mat<T> backward(const Mat<T>& dy) override;
  Mat<T> backward_input(const Mat<T>& dy) override;
  nlohmann::json config() const override { return {{"c", s_.c}, {"h", s_.h}, {"w", s_.w}}; }

 private:
  Shape s_;
  Mat<T> mask_;
};

// k×k pooling with stride k (H and W must be divisible by k). Max pooling routes the gradient to the
// first maximum of each window (ties: lowest index), which is where finite differences agree a.e.
template <typename T>
class Pool2d : public Layer<T> {
 public:
  enum class Kind { max, avg };
  Pool2d(Shape in, int k, Kind kind);
  std::string type() const override { return kind_ == Kind::max ? "maxpool2d" : "avgpool2d"; }
  Shape out_shape() const override { return {in_.c, in_.h / k_, in_.w / k_}; }
  Mat<T> forward(const Mat<T>& x, bool train) override;
  Mat<T> backward(const Mat<T>& dy) override;
  Mat<T> backward_input(const Mat<T>& dy) override;
  nlohmann::json config() const override;

 private:
  Shape in_;
  int k_;
  Kind kind_;
  std::vector<int> argmax_;
  int batch_ = 0;
};

// Nearest-neighbour upsampling by an integer factor k: y(c, k·i + a, k·j + b) = x(c, i, j) for a, b < k
// (torch.nn.Upsample(scale_factor=k, mode="nearest")). Its adjoint sums each k×k block.
template <typename T>
class Upsample2d : public Layer<T> {
 public:
  Upsample2d(Shape in, int k);
  std::string type() const override { return "upsample2d"; }
  Shape out_shape() const override { return {in_.c, in_.h * k_, in_.w * k_}; }
  Mat<T> forward(const Mat<T>& x, bool train) override;
  Mat<T> backward(const Mat<T>& dy) override { return backward_input(dy); }
  Mat<T> backward_input(const Mat<T>& dy) override;
  nlohmann::json config() const override { return {{"k", k_}}; }

 private:
  Shape in_;
  int k_;
};

// A non-negative convolution, the incoherent optical layer of a student written as a network layer:
// kernels κ = softplus(ρ) (Cout × Cin·k·k, ρ the trainable "rho"), no bias, stride 1, zero padding `pad`
// (pad = (k − 1)/2 gives "same" maps). An intensity PSF is non-negative, so every map it images is the
// input cross-correlated with a non-negative kernel. Parameters initialise to 0 under init_he (flat
// kernels); init_optical draws them.
template <typename T>
class NonnegConv2d : public Layer<T> {
 public:
  NonnegConv2d(Shape in, int out_channels, int k, int pad);
  std::string type() const override { return "nonneg_conv2d"; }
  Shape out_shape() const override { return conv_.out_shape(); }
  Mat<T> forward(const Mat<T>& x, bool train) override;
  Mat<T> backward(const Mat<T>& dy) override;
  Mat<T> backward_input(const Mat<T>& dy) override { return conv_.backward_input(dy); }
  std::vector<Param<T>> params() override { return {{"rho", &rho_, &grho_}}; }
  nlohmann::json config() const override;
  void ntk_accumulate(const Mat<T>& dy, MatD& theta) override;
  // ∂(dy · y)/∂ρ per row: the conv's weight gradients times softplus'(ρ) = sigmoid(ρ).
  Mat<T> per_sample_grads(const Mat<T>& dy) override;
  // κ = softplus(ρ), Cout × (Cin·k·k) in the conv weight's layout.
  Mat<T> kernels() const;

 private:
  // ∂κ/∂ρ = softplus'(ρ) = sigmoid(ρ), elementwise, in ρ's layout.
  Mat<T> slope() const;
  Conv2d<T> conv_;  // its weight holds κ during a forward; its bias stays 0
  Mat<T> rho_, grho_;
  int batch_ = 0;  // rows of the last forward
};

// Batch normalisation over (B, H, W) per channel; works for flat inputs with h = w = 1.
// Train: batch mean/biased variance, running stats updated with `momentum` (torch convention:
// running = (1−m)·running + m·batch, unbiased variance in the running estimate). Eval: running stats.
template <typename T>
class BatchNorm : public Layer<T> {
 public:
  explicit BatchNorm(Shape s, double eps = 1e-5, double momentum = 0.1);
  std::string type() const override { return "batchnorm"; }
  Shape out_shape() const override { return s_; }
  Mat<T> forward(const Mat<T>& x, bool train) override;
  Mat<T> backward(const Mat<T>& dy) override;
  Mat<T> backward_input(const Mat<T>& dy) override;
  std::vector<Param<T>> params() override { return {{"gamma", &gamma_, &ggamma_}, {"beta", &beta_, &gbeta_}}; }
  std::vector<Param<T>> buffers() override { return {{"running_mean", &rmean_, nullptr}, {"running_var", &rvar_, nullptr}}; }
  nlohmann::json config() const override;
  void ntk_accumulate(const Mat<T>& dy, MatD& theta) override;
  Mat<T> per_sample_grads(const Mat<T>& dy) override;

 private:
  Shape s_;
  double eps_, momentum_;
  Mat<T> gamma_, beta_, ggamma_, gbeta_, rmean_, rvar_;
  Mat<T> xhat_;       // B × (C·H·W)
  Vec<T> inv_std_;    // per channel, of the last forward
  bool last_train_ = false;
};

// A chain of layers. Owns them; copyable via clone-by-config (see model_io.hpp).
template <typename T>
class Sequential {
 public:
  explicit Sequential(Shape in) : in_(in) {}
  Shape in_shape() const { return in_; }
  Shape out_shape() const { return layers_.empty() ? in_ : layers_.back()->out_shape(); }
  Shape cur_shape() const { return out_shape(); }
  // Builders append a layer whose input is the current output shape.
  Sequential& conv(int out_channels, int k, int pad);
  Sequential& linear(int out);
  Sequential& relu();
  Sequential& maxpool(int k);
  Sequential& avgpool(int k);
  Sequential& batchnorm();
  Sequential& upsample(int k);
  Sequential& nonneg_conv(int out_channels, int k, int pad);
  void add(std::unique_ptr<Layer<T>> l) { layers_.push_back(std::move(l)); }

  Mat<T> forward(const Mat<T>& x, bool train);
  // Forward up to (excluding) layer `stop`; forward_from continues from layer `start`.
  Mat<T> forward_range(const Mat<T>& x, std::size_t start, std::size_t stop, bool train);
  Mat<T> backward(const Mat<T>& dy);
  Mat<T> backward_range(const Mat<T>& dy, std::size_t start, std::size_t stop);
  std::vector<Param<T>> params();
  // What the trained function depends on: every parameter's value, then every buffer (batch-norm
  // running statistics), in layer order. The pointers stay valid while the network lives.
  std::vector<Mat<T>*> state();
  void zero_grad();
  std::size_t num_params();
  std::size_t size() const { return layers_.size(); }
  Layer<T>& layer(std::size_t i) { return *layers_[i]; }
  const std::vector<std::unique_ptr<Layer<T>>>& layers() const { return layers_; }
  nlohmann::json arch() const;

 private:
  Shape in_;
  std::vector<std::unique_ptr<Layer<T>>> layers_;
};

// Build a network from its arch() description (weights default-initialised).
template <typename T>
Sequential<T> sequential_from_arch(const nlohmann::json& arch);

// Initialise all weights: He-normal for conv/linear weights, zero biases, γ = 1, β = 0.
template <typename T, typename Rng>
void init_he(Sequential<T>& net, Rng& rng);

// Draws every NonnegConv2d's ρ so that its kernels are flat with a ±`spread` relative ripple:
// κ = mean · (1 + spread · u), u ~ U(−1, 1), mean = 1/(Cin·k·k) (each kernel passes the input's mean).
template <typename T>
void init_optical(Sequential<T>& net, std::mt19937_64& rng, double spread = 0.5);

// Copy parameters and buffers between networks of identical architecture, converting scalar type.
template <typename To, typename From>
void copy_weights(Sequential<To>& dst, Sequential<From>& src);

// Mean softmax cross-entropy over the batch; returns the loss and writes dL/dlogits (already /B).
template <typename T>
double softmax_cross_entropy(const Mat<T>& logits, const std::vector<int>& labels, Mat<T>* dlogits);
// Row-wise softmax of logits / temperature (numerically stable).
template <typename T>
Mat<T> softmax(const Mat<T>& logits, double temperature = 1.0);
// Fraction of rows whose argmax equals the label.
template <typename T>
double accuracy(const Mat<T>& logits, const std::vector<int>& labels);

}  // namespace hilo::distill

#include "hilo/distill/detail/init.hpp"
