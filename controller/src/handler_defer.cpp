// The `defer` command (docs/protocol.md): inference with deferral. The deployed student's backend
// classifies measured feature rows; its least confident inputs are handed to the digital teacher,
// which classifies the clean (privileged) input the request carries for each row. The rule is
// distill/deferral.hpp's decide(), the same the pipeline report's deferral curve uses.
#include <cmath>
#include <cstring>

#include "handler_detail.hpp"
#include "hilo/calibration/features.hpp"
#include "hilo/calibration/hil.hpp"
#include "hilo/calibration/saved.hpp"
#include "hilo/controller/security.hpp"
#include "hilo/distill/deferral.hpp"
#include "hilo/distill/model_io.hpp"
#include "hilo/distill/student.hpp"
#include "hilo/distill/train.hpp"

namespace hilo::controller::handler_detail {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxInputs = 65536;  // per request: the reply holds one JSON object per input

// A model file argument: a path confined to the data directory (security.hpp get_path), a file there.
std::variant<fs::path, Refusal> model_path(const Request& req, const std::string& key, const fs::path& data_dir) {
  auto p = get_path(req, key, data_dir);
  if (auto* e = std::get_if<ProtocolError>(&p)) return Refusal{e->code, e->message};
  const auto& path = std::get<fs::path>(p);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    return Refusal{ErrorCode::not_found, "args." + key + ": no model file '" + req.args[key].get<std::string>() + "' in the data directory"};
  return path;
}

// The rows of an array part as doubles (uint8 levels scaled by 1/255 when `levels`).
distill::MatD rows_of(const ArrayView& v, std::size_t rows, std::size_t cols, bool levels) {
  distill::MatD m(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  const std::size_t n = rows * cols;
  for (std::size_t i = 0; i < n; ++i) {
    double x = 0;
    if (v.dtype == "|u1" || v.dtype == "<u1") {
      x = double(std::uint8_t(v.bytes[i])) / (levels ? 255.0 : 1.0);
    } else if (v.dtype == "<u2") {
      std::uint16_t u;
      std::memcpy(&u, v.bytes.data() + 2 * i, 2);
      x = u;
    } else if (v.dtype == "<f4") {
      float f;
      std::memcpy(&f, v.bytes.data() + 4 * i, 4);
      x = f;
    } else {
      std::memcpy(&x, v.bytes.data() + 8 * i, 8);
    }
    m(static_cast<Eigen::Index>(i / cols), static_cast<Eigen::Index>(i % cols)) = x;
  }
  return m;
}

std::string shape_text(const std::vector<std::size_t>& s) {
  std::string t = "[";
  for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

// Raw camera frames → the student's feature rows through a saved bench calibration: for each frame
// extract_features (dark, flat, registration, gain, tile windows) then maps_to_features (÷ counts per
// unit, signing, pooling) — what the pipeline's measurement does with a frame (calibration/hil.hpp).
// The calibration and the counts per unit come from the arguments, else from the model's meta "bench"
// (the pipeline writes it into every compensated model: the calibration relative to the model's folder).
std::variant<distill::MatD, Refusal> features_from_frames(const Request& req, const ArrayView& frames, const fs::path& model,
                                                          const nlohmann::json& meta, const distill::OpticalStudent& student,
                                                          const fs::path& data_dir) {
  const json bench = meta.value("bench", json::object());
  fs::path dir;
  if (req.args.contains("calibration")) {
    auto p = get_path(req, "calibration", data_dir);
    if (auto* e = std::get_if<ProtocolError>(&p)) return Refusal{e->code, e->message};
    dir = std::get<fs::path>(p);
  } else if (bench.contains("calibration") && bench["calibration"].is_string()) {
    const fs::path stored = (model.parent_path() / bench["calibration"].get<std::string>()).lexically_normal();
    auto p = confine_stored_path(data_dir, stored.string());
    if (auto* e = std::get_if<std::string>(&p))
      return Refusal{ErrorCode::forbidden_path, "the student model's bench.calibration: " + *e};
    dir = std::get<fs::path>(p);
  } else {
    return Refusal{ErrorCode::missing_field, "args.calibration (a saved bench calibration directory) is required with "
                                             "args.frames: the student model names none (the pipeline's compensated "
                                             "models do)"};
  }
  double cpu = 0;
  if (req.args.contains("counts_per_unit")) {
    if (!req.args["counts_per_unit"].is_number())
      return Refusal{ErrorCode::wrong_type, "args.counts_per_unit must be a number"};
    cpu = req.args["counts_per_unit"].get<double>();
  } else if (bench.contains("counts_per_unit") && bench["counts_per_unit"].is_number()) {
    cpu = bench["counts_per_unit"].get<double>();
  } else {
    return Refusal{ErrorCode::missing_field, "args.counts_per_unit is required with args.frames: the student model names none"};
  }
  if (!(cpu > 0 && std::isfinite(cpu))) return Refusal{ErrorCode::bad_argument, "counts_per_unit must be > 0, got " + std::to_string(cpu)};
  calibration::SavedCalibration saved;
  try {
    saved = calibration::load_calibration(dir);
  } catch (const std::exception& e) {
    return Refusal{ErrorCode::not_found, std::string("the bench calibration: ") + e.what()};
  }
  // One frame at a time (a request may carry 512 MB of frames; as doubles all at once, four times that).
  const std::size_t n = frames.shape[0], rows = frames.shape[1], cols = frames.shape[2];
  const std::size_t frame_bytes = rows * cols * dtype_itemsize(frames.dtype);
  distill::MatD a(static_cast<Eigen::Index>(n), student.feature_dim());
  try {
    for (std::size_t i = 0; i < n; ++i) {
      const ArrayView one{frames.dtype, {rows, cols}, frames.bytes.substr(i * frame_bytes, frame_bytes)};
      const distill::MatD frame = rows_of(one, rows, cols, false);
      if (!frame.allFinite()) return Refusal{ErrorCode::bad_argument, "args.frames must be finite"};
      a.row(static_cast<Eigen::Index>(i)) =
          calibration::maps_to_features(calibration::extract_features(frame.array(), saved.calibration), student, cpu);
    }
  } catch (const std::invalid_argument& e) {
    return Refusal{ErrorCode::bad_argument, "args.frames is " + shape_text(frames.shape) + ": " + e.what()};
  }
  return a;
}

}  // namespace

// defer {"student", "features": <[n, D] f4/f8> | "frames": <[n, rows, cols] camera counts>, "rate" | "threshold",
//        "teacher" + "inputs" (optional), with frames "calibration", "counts_per_unit" (optional)}.
Reply cmd_defer(const Request& req, Context& ctx) {
  if (auto e = check_known_args(req, {"student", "teacher", "features", "frames", "calibration", "counts_per_unit", "inputs",
                                      "rate", "threshold"}))
    return error_reply(*e);
  auto refuse = [&](ErrorCode c, const std::string& m) { return error_reply(req.id, c, m); };
  if (!req.args.contains("student")) return refuse(ErrorCode::missing_field, "args.student (the deployed student model file) is required");
  const bool has_rate = req.args.contains("rate"), has_threshold = req.args.contains("threshold");
  if (has_rate == has_threshold)
    return refuse(has_rate ? ErrorCode::bad_argument : ErrorCode::missing_field,
                  "exactly one of args.rate (share of these inputs to defer) and args.threshold (confidence below which an "
                  "input is deferred) is required");
  const char* rule_key = has_rate ? "rate" : "threshold";
  if (!req.args[rule_key].is_number()) return refuse(ErrorCode::wrong_type, std::string("args.") + rule_key + " must be a number");
  const double value = req.args[rule_key].get<double>();
  if (!(value >= 0.0 && value <= 1.0))
    return refuse(ErrorCode::bad_argument, std::string("args.") + rule_key + " must be in [0, 1], got " + req.args[rule_key].dump());
  if (req.args.contains("teacher") != req.args.contains("inputs"))
    return refuse(ErrorCode::bad_argument, "args.teacher and args.inputs go together: the teacher classifies the clean inputs "
                                           "of the deferred rows (without both, deferred rows carry no class)");
  const bool with_teacher = req.args.contains("teacher");

  const bool with_frames = req.args.contains("frames");
  if (with_frames == req.args.contains("features"))
    return refuse(with_frames ? ErrorCode::bad_argument : ErrorCode::missing_field,
                  "exactly one of args.features (the student's feature rows) and args.frames (raw camera frames, turned "
                  "into features through a saved bench calibration) is required");
  if (!with_frames && (req.args.contains("calibration") || req.args.contains("counts_per_unit")))
    return refuse(ErrorCode::bad_argument, "args.calibration and args.counts_per_unit go with args.frames");
  static constexpr std::string_view kFeatureTypes[] = {"<f4", "<f8"};
  static constexpr std::string_view kFrameTypes[] = {"|u1", "<u1", "<u2", "<f4", "<f8"};
  const char* rows_key = with_frames ? "frames" : "features";
  auto fa = with_frames ? get_array(req, "frames", kFrameTypes, 3, 3) : get_array(req, "features", kFeatureTypes, 2, 2);
  if (auto* e = err_of(fa)) return error_reply(*e);
  const ArrayView features = std::get<ArrayView>(fa);
  const std::size_t n = features.shape[0];
  if (n == 0) return refuse(ErrorCode::bad_argument, std::string("args.") + rows_key + " must hold at least one row");
  if (n > kMaxInputs)
    return refuse(ErrorCode::too_large, std::string("args.") + rows_key + " holds " + std::to_string(n) + " rows; at most " +
                                            std::to_string(kMaxInputs) + " per request");
  std::optional<ArrayView> inputs;
  if (with_teacher) {
    static constexpr std::string_view kInputTypes[] = {"|u1", "<u1", "<f4", "<f8"};
    auto ia = get_array(req, "inputs", kInputTypes, 2, 4);
    if (auto* e = err_of(ia)) return error_reply(*e);
    inputs = std::get<ArrayView>(ia);
    if (inputs->shape[0] != n)
      return refuse(ErrorCode::bad_argument, "args.inputs has " + std::to_string(inputs->shape[0]) + " rows, args." + rows_key +
                                                 " " + std::to_string(n) + ": one clean input per row");
  }
  if (auto r = expect_parts(req, with_teacher ? 2 : 1)) return *r;

  auto sp = model_path(req, "student", ctx.data_dir);
  if (auto* r = std::get_if<Refusal>(&sp)) return refuse(r->code, r->message);
  std::optional<distill::OpticalStudent> student;
  json meta;
  try {
    const distill::ModelFile m = distill::read_model(std::get<fs::path>(sp));
    meta = m.meta;
    student.emplace(distill::OpticalStudent::from_model(m));
  } catch (const std::exception& e) {
    return refuse(ErrorCode::bad_argument, std::string("args.student is not a student model: ") + e.what());
  }
  distill::MatD a;
  if (with_frames) {
    auto r = features_from_frames(req, features, std::get<fs::path>(sp), meta, *student, ctx.data_dir);
    if (auto* e = std::get_if<Refusal>(&r)) return refuse(e->code, e->message);
    a = std::move(std::get<distill::MatD>(r));
  } else {
    if (features.shape[1] != std::size_t(student->feature_dim()))
      return refuse(ErrorCode::bad_argument, "args.features is " + shape_text(features.shape) + "; the student's backend takes " +
                                                 std::to_string(student->feature_dim()) + " features per row");
    a = rows_of(features, n, features.shape[1], false);
    if (!a.allFinite()) return refuse(ErrorCode::bad_argument, "args.features must be finite");
  }
  const distill::MatD logits = student->backend_forward(a);

  std::optional<distill::MatD> teacher_logits;
  if (with_teacher) {
    auto tp = model_path(req, "teacher", ctx.data_dir);
    if (auto* r = std::get_if<Refusal>(&tp)) return refuse(r->code, r->message);
    std::optional<distill::Sequential<float>> teacher;
    try {
      teacher.emplace(distill::sequential_from_model<float>(distill::read_model(std::get<fs::path>(tp))));
    } catch (const std::exception& e) {
      return refuse(ErrorCode::bad_argument, std::string("args.teacher is not a teacher model: ") + e.what());
    }
    const distill::Shape in = teacher->in_shape();
    std::size_t per_row = 1;
    for (std::size_t i = 1; i < inputs->shape.size(); ++i) per_row *= inputs->shape[i];
    if (per_row != std::size_t(in.size()))
      return refuse(ErrorCode::bad_argument, "args.inputs is " + shape_text(inputs->shape) + "; the teacher takes " +
                                                 std::to_string(in.c) + " x " + std::to_string(in.h) + " x " + std::to_string(in.w) +
                                                 " per input ([n, c, h, w], [n, h, w] for one channel, or [n, c*h*w] rows)");
    if (int(teacher->out_shape().size()) != student->classes())
      return refuse(ErrorCode::bad_argument, "the teacher has " + std::to_string(teacher->out_shape().size()) +
                                                 " classes, the student " + std::to_string(student->classes()));
    const distill::MatD x = rows_of(*inputs, n, per_row, true);
    if (!x.allFinite() || x.minCoeff() < 0.0 || x.maxCoeff() > 1.0)
      return refuse(ErrorCode::bad_argument, "args.inputs must be uint8 levels or floats in [0, 1]");
    teacher_logits = distill::predict(*teacher, distill::Mat<float>(x.cast<float>())).cast<double>();
  }

  const double threshold = has_rate ? distill::deferral_thresholds(logits, {value})[0] : value;
  const auto decisions = distill::decide(logits, teacher_logits ? &*teacher_logits : nullptr, threshold);
  json rows = json::array();
  std::size_t n_deferred = 0;
  for (const auto& d : decisions) {
    n_deferred += d.deferred;
    json row = {{"class", d.decision() >= 0 ? json(d.decision()) : json(nullptr)}, {"confidence", d.confidence},
                {"deferred", d.deferred}, {"model_class", d.model_class}};
    rows.push_back(std::move(row));
  }
  return ok_reply(req.id, {{"rule", distill::deferral_rule()},
                           {"threshold", threshold},
                           {"threshold_source", has_rate ? "rate over this request's inputs" : "given"},
                           {"count", n},
                           {"deferred", n_deferred},
                           {"rate", double(n_deferred) / double(n)},
                           {"teacher", with_teacher},
                           {"source", with_frames ? "frames (through the saved bench calibration)" : "features"},
                           {"decisions", std::move(rows)}});
}

}  // namespace hilo::controller::handler_detail
