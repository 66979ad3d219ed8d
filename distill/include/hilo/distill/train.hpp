#pragma once
// Training loops for digital classifiers (the teacher), with progress reporting and cancellation.
// The loops live in the library so that the daemon and `hilo-train` run the same code.
#include <atomic>
#include <cstdint>
#include <chrono>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/data.hpp"
#include "hilo/distill/layers.hpp"
#include "hilo/distill/optim.hpp"
#include "hilo/io/progress.hpp"

namespace hilo::distill {

// VGG-ish teacher: per entry c of `channels`: conv3×3(pad 1) → batch norm → ReLU → maxpool 2×2;
// then linear(hidden) → batch norm → ReLU → linear(classes). The input to the last linear layer is the
// teacher's penultimate feature (used by the shared-classifier loss).
struct TeacherArch {
  std::vector<int> channels{16, 32};
  int hidden = 128;
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TeacherArch, channels, hidden)
Sequential<float> make_teacher(const TeacherArch& a, Shape in, int classes);

// The convergence rule: stop when the validation accuracy stops improving. After epoch e with validation
// accuracy v_e, the epoch improves when v_e > best + min_delta (best: v of the last improving epoch; the
// first epoch always improves); training stops after `patience` epochs in a row without improvement, or at
// TrainOptions::epochs (then the cap), whichever comes first. The model keeps the parameters (and the
// batch-norm statistics) of the last improving epoch (the best one), not those of the last epoch. The learning-rate schedule still runs
// over the cap, so a stop at epoch e < epochs leaves the cosine schedule unfinished. patience 0 (the
// default) is off: every epoch runs and the last epoch's parameters are kept, as before the rule.
// Accuracies are fractions (min_delta 0.001 = 0.1 point). Needs a validation split when on.
//
// With TrainOptions::schedule "plateau" the rate is not annealed over the cap: it stays at lr·factor^k, and
// where the rule above would stop, the rate drops instead (k → k+1, the count of epochs without improvement
// restarts, training continues from the current parameters) until `drops` drops are spent; the next time
// patience runs out training stops ("patience"). So training ends where the validation accuracy has stopped
// improving at the smallest rate, independent of the cap (which then only bounds the cost).
struct EarlyStop {
  int patience = 0;       // epochs without improvement before stopping, >= 0; 0: off
  double min_delta = 0;   // in [0, 1)
  int drops = 2;          // schedule "plateau" only: rate drops before the stop, in [0, 10]
  double factor = 0.1;    // schedule "plateau" only: the rate's factor at each drop, in (0, 1)
  [[nodiscard]] bool enabled() const { return patience > 0; }
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EarlyStop, patience, min_delta, drops, factor)

// Input augmentation while training: each training image of a batch, independently, is translated by an
// integer number of pixels (dx, dy each uniform in [−shift_px, shift_px], the uncovered border zero) and,
// with hflip, mirrored left–right with probability ½ (for classes that are symmetric under it, e.g.
// Fashion-MNIST's garments, not digits). Drawn from the loop's generator only when on, so a run without it
// keeps its batch order and history. Teacher outputs that distillation reads are of the clean images
// (cached once), so KD/GD/shared then match the teacher's view of the unshifted image — the privileged
// input of generalized distillation. Validation, test and every feature pass see the images unchanged.
struct InputAugment {
  int shift_px = 0;    // in [0, 8]
  bool hflip = false;
  [[nodiscard]] bool enabled() const { return shift_px > 0 || hflip; }
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(InputAugment, shift_px, hflip)
// Applies `a` to the rows of x (N × c·h·w, channel-major images of `shape`) in place, drawing from rng.
template <typename T>
void augment_inputs(Mat<T>& x, Shape shape, const InputAugment& a, std::mt19937_64& rng);

struct TrainOptions {
  int epochs = 6;
  int batch_size = 128;
  OptimizerOptions optimizer{};
  // "cosine" (lr·½(1+cos(π·t/T)) per step, T the steps of `epochs`) | "constant" | "plateau" (lr, dropped
  // by early_stop.factor when validation stops improving; needs early_stop.patience > 0, see EarlyStop)
  std::string schedule = "cosine";
  std::uint64_t seed = 1;           // init and batch order
  int threads = 1;                  // Eigen / OpenMP threads, applied by the thread's owner (threads.hpp), not here
  EarlyStop early_stop{};           // the convergence rule (off by default); `epochs` is then the cap
  // Also evaluate the test split after every epoch, into EpochRecord::extra["test_acc"] (the weights of
  // that epoch): for comparisons at equal epochs or equal training time from one run. Reported only,
  // never used to select or stop; costs one test-set pass per epoch.
  bool log_test_acc = false;
  InputAugment augment{};           // training images only (off by default)
  [[nodiscard]] std::string validate() const;  // "" when valid, else the violated rule
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainOptions, epochs, batch_size, optimizer, schedule, seed, threads,
                                                early_stop, log_test_acc, augment)

struct EpochRecord {
  int epoch = 0;
  double loss = 0, train_acc = 0, val_acc = 0, lr = 0, seconds = 0;
  nlohmann::json extra = nlohmann::json::object();  // method-specific terms (e.g. mean NTK distance)
};

struct History {
  std::vector<EpochRecord> epochs;
  double test_acc = std::numeric_limits<double>::quiet_NaN();
  double best_val_acc = 0;
  bool cancelled = false;
  // Set only when the convergence rule (EarlyStop) was on: why training ended ("patience": that many
  // epochs without improvement; "cap": the epoch limit came first; "cancelled"), after which epoch, and
  // the best epoch whose parameters the model keeps. to_json writes them as "stop" only then, so the
  // history of a run without the rule is what it was before the rule existed.
  std::string stop_reason;
  int stopped_epoch = 0, best_epoch = 0;
  // Method-specific results of the whole run (e.g. the shared classifier's teacher accuracy before and
  // after adaptive teaching); to_json writes them as "summary" only when there are any.
  nlohmann::json summary = nlohmann::json::object();
  nlohmann::json to_json() const;
};

struct Progress {
  std::string job;
  int epoch = 0, epochs = 0;
  std::size_t step = 0, steps = 0;
  double loss = 0;
};

// How a caller watches and stops a job. `work` (io/progress.hpp) is the one progress-and-stop shape of
// every layer: every `progress_every` steps it gets (steps done, steps in all epochs, the job's name),
// and its stop token is polled before every step; a stopped job returns with History::cancelled = true
// before its next step. on_step gets the same moments with the running loss; on_epoch each epoch's
// record. All run on the training thread.
struct JobControl {
  io::WorkControl work;
  std::function<void(const Progress&)> on_step;
  std::function<void(const EpochRecord&)> on_epoch;
  int progress_every = 20;  // steps
  bool cancelled() const { return work.stop_requested(); }
  // Reports step p.step of epoch p.epoch to `work` and on_step.
  void step(const Progress& p) const {
    work.report(std::int64_t(p.epoch - 1) * std::int64_t(p.steps) + std::int64_t(p.step),
                std::int64_t(p.epochs) * std::int64_t(p.steps), p.job);
    if (on_step) on_step(p);
  }
};

// Ends an epoch of `steps` steps whose per-step loss and accuracy summed to loss_sum and acc_sum, begun
// at `start`: builds its record (with validation accuracy, learning rate, wall time and `extra`),
// appends it to `h` (updating best_val_acc) and reports it through ctl.on_epoch.
void close_epoch(History& h, const JobControl& ctl, int epoch, double loss_sum, double acc_sum, std::size_t steps,
                 std::chrono::steady_clock::time_point start, double val_acc, double lr,
                 nlohmann::json extra = nlohmann::json::object());

// Learning rate at global step t of `total` steps for the schedule (TrainOptions::schedule) with base rate lr.
double scheduled_lr(const std::string& schedule, double lr, std::size_t t, std::size_t total);

// Evaluation chunk (rows per forward pass) of predict and the jobs' precomputations: below the size
// where a convolution's im2col buffer (Cin·k²·Ho·Wo values per image: 307 kB for the student's 7×7
// kernels on 28×28 in double, 113 kB for the teacher's second layer) outgrows glibc's 32 MB ceiling
// for reusing freed heap memory, after which every call page-faults fresh memory (docs/distill.md).
inline constexpr int kEvalBatch = 64;

// Logits in evaluation mode, in chunks of `batch` rows.
template <typename T>
Mat<T> predict(Sequential<T>& net, const Mat<T>& x, int batch = kEvalBatch);

// Cross-entropy training (train_loop, loop.hpp) with the optimiser and schedule of `o`; He initialisation
// and batch order from o.seed; val accuracy after every epoch, test accuracy at the end (not when
// cancelled). The network keeps the final weights.
History train_classifier(Sequential<float>& net, const Splits& data, const TrainOptions& o, const JobControl& ctl);

}  // namespace hilo::distill
