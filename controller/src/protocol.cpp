#include "hilo/controller/protocol.hpp"

#include <algorithm>
#include <limits>

namespace hilo::controller {

using nlohmann::json;

std::string_view to_string(ErrorCode c) {
  switch (c) {
    case ErrorCode::malformed_json: return "malformed_json";
    case ErrorCode::not_an_object: return "not_an_object";
    case ErrorCode::missing_field: return "missing_field";
    case ErrorCode::wrong_type: return "wrong_type";
    case ErrorCode::unknown_command: return "unknown_command";
    case ErrorCode::bad_argument: return "bad_argument";
    case ErrorCode::too_large: return "too_large";
    case ErrorCode::bad_parts: return "bad_parts";
    case ErrorCode::unsupported_version: return "unsupported_version";
    case ErrorCode::device_error: return "device_error";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::busy: return "busy";
    case ErrorCode::cancelled: return "cancelled";
    case ErrorCode::shutting_down: return "shutting_down";
    case ErrorCode::internal: return "internal";
    case ErrorCode::forbidden: return "forbidden";
    case ErrorCode::forbidden_path: return "forbidden_path";
    case ErrorCode::overloaded: return "overloaded";
    case ErrorCode::too_many_jobs: return "too_many_jobs";
    case ErrorCode::not_supported: return "not_supported";
  }
  return "internal";
}

std::string Limits::validate() const {
  if (max_json_bytes < 64) return "limits.max_json_bytes must be >= 64, got " + std::to_string(max_json_bytes);
  if (max_message_bytes < max_json_bytes) return "limits.max_message_bytes must be >= limits.max_json_bytes";
  if (max_parts < 1) return "limits.max_parts must be >= 1, got 0";
  if (max_reply_bytes < 1) return "limits.max_reply_bytes must be >= 1, got 0";
  if (max_pending_requests < 1 || max_pending_requests > 1000000) {
    return "limits.max_pending_requests must be in [1, 1000000], got " + std::to_string(max_pending_requests);
  }
  if (max_pending_replies < 1 || max_pending_replies > 1000000) {
    return "limits.max_pending_replies must be in [1, 1000000], got " + std::to_string(max_pending_replies);
  }
  if (max_jobs < 1 || max_jobs > 100000) return "limits.max_jobs must be in [1, 100000], got " + std::to_string(max_jobs);
  return {};
}

std::variant<Request, ProtocolError> parse(std::span<const std::string> frames, const Limits& limits) {
  if (frames.empty()) return ProtocolError{ErrorCode::bad_parts, "empty message", nullptr};
  std::size_t total = 0;
  for (const auto& f : frames) total += f.size();
  if (frames[0].size() > limits.max_json_bytes) {
    return ProtocolError{ErrorCode::too_large,
                         "request JSON is " + std::to_string(frames[0].size()) + " bytes, limit " +
                             std::to_string(limits.max_json_bytes),
                         nullptr};
  }
  if (total > limits.max_message_bytes) {
    return ProtocolError{ErrorCode::too_large,
                         "request is " + std::to_string(total) + " bytes, limit " + std::to_string(limits.max_message_bytes),
                         nullptr};
  }
  json j = json::parse(frames[0], nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return ProtocolError{ErrorCode::malformed_json, "frame 0 is not valid JSON", nullptr};
  if (!j.is_object()) {
    return ProtocolError{ErrorCode::not_an_object, std::string("request must be a JSON object, got ") + j.type_name(),
                         nullptr};
  }
  const json id = j.contains("id") ? j["id"] : json(nullptr);
  if (!j.contains("id")) return ProtocolError{ErrorCode::missing_field, "request has no \"id\"", nullptr};
  if (j.contains("v")) {
    if (!j["v"].is_number_integer()) return ProtocolError{ErrorCode::wrong_type, "\"v\" must be an integer", id};
    if (j["v"].get<std::int64_t>() != kProtocolVersion) {
      return ProtocolError{ErrorCode::unsupported_version,
                           "protocol version " + j["v"].dump() + " requested, this daemon speaks " +
                               std::to_string(kProtocolVersion),
                           id};
    }
  }
  if (!j.contains("cmd")) return ProtocolError{ErrorCode::missing_field, "request has no \"cmd\"", id};
  if (!j["cmd"].is_string()) return ProtocolError{ErrorCode::wrong_type, "\"cmd\" must be a string", id};
  json args = json::object();
  if (j.contains("args")) {
    if (!j["args"].is_object()) return ProtocolError{ErrorCode::wrong_type, "\"args\" must be an object", id};
    args = std::move(j["args"]);
  }
  if (frames.size() - 1 > limits.max_parts) {
    return ProtocolError{ErrorCode::bad_parts,
                         std::to_string(frames.size() - 1) + " binary parts, limit " + std::to_string(limits.max_parts),
                         id};
  }
  Request r;
  r.id = id;
  r.cmd = j["cmd"].get<std::string>();
  r.args = std::move(args);
  r.parts.assign(frames.begin() + 1, frames.end());
  return r;
}

Reply ok_reply(const json& id, json result) {
  Reply r;
  r.body = {{"id", id}, {"ok", true}, {"result", std::move(result)}};
  return r;
}

Reply error_reply(const json& id, ErrorCode code, std::string message) {
  Reply r;
  r.body = {{"id", id}, {"ok", false}, {"error", {{"code", std::string(to_string(code))}, {"message", std::move(message)}}}};
  return r;
}

std::vector<std::string> serialize(const Reply& r) {
  std::vector<std::string> frames;
  frames.reserve(1 + r.parts.size());
  // Invalid UTF-8 in strings (e.g. a device name) is replaced rather than thrown.
  frames.push_back(r.body.dump(-1, ' ', false, json::error_handler_t::replace));
  frames.insert(frames.end(), r.parts.begin(), r.parts.end());
  return frames;
}

std::size_t dtype_itemsize(std::string_view d) {
  if (d == "|u1" || d == "<u1" || d == "|i1") return 1;
  if (d == "<u2" || d == "<i2") return 2;
  if (d == "<u4" || d == "<i4" || d == "<f4") return 4;
  if (d == "<u8" || d == "<i8" || d == "<f8") return 8;
  return 0;
}

std::variant<ArrayView, ProtocolError> get_array(const Request& req, std::string_view key,
                                                 std::span<const std::string_view> allowed, std::size_t min_rank,
                                                 std::size_t max_rank) {
  const std::string k(key);
  auto err = [&](ErrorCode c, const std::string& m) { return ProtocolError{c, "args." + k + ": " + m, req.id}; };
  if (!req.args.contains(k)) return err(ErrorCode::missing_field, "missing array descriptor");
  const json& d = req.args[k];
  if (!d.is_object()) return err(ErrorCode::wrong_type, "must be an object {dtype, shape, part}");
  for (const char* f : {"dtype", "shape", "part"}) {
    if (!d.contains(f)) return err(ErrorCode::missing_field, std::string("descriptor has no \"") + f + "\"");
  }
  if (!d["dtype"].is_string()) return err(ErrorCode::wrong_type, "dtype must be a string");
  if (!d["shape"].is_array()) return err(ErrorCode::wrong_type, "shape must be an array of integers");
  if (!d["part"].is_number_integer()) return err(ErrorCode::wrong_type, "part must be an integer");
  ArrayView v;
  v.dtype = d["dtype"].get<std::string>();
  const std::size_t item = dtype_itemsize(v.dtype);
  if (item == 0) return err(ErrorCode::bad_argument, "unsupported dtype '" + v.dtype + "'");
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), v.dtype) == allowed.end()) {
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    return err(ErrorCode::bad_argument, "dtype '" + v.dtype + "' not accepted here (accepted: " + list + ")");
  }
  std::size_t n = 1;
  for (const auto& s : d["shape"]) {
    if (!s.is_number_integer() || s.get<std::int64_t>() < 0) return err(ErrorCode::wrong_type, "shape must hold non-negative integers");
    const auto dim = s.get<std::uint64_t>();
    if (dim != 0 && n > std::numeric_limits<std::size_t>::max() / 16 / dim) return err(ErrorCode::too_large, "shape too large");
    n *= dim;
    v.shape.push_back(dim);
  }
  if (v.shape.size() < min_rank || v.shape.size() > max_rank) {
    return err(ErrorCode::bad_argument, "rank " + std::to_string(v.shape.size()) + " not in [" + std::to_string(min_rank) +
                                            ", " + std::to_string(max_rank) + "]");
  }
  const auto part = d["part"].get<std::int64_t>();
  if (part < 1 || static_cast<std::size_t>(part) > req.parts.size()) {
    return err(ErrorCode::bad_parts, "part " + std::to_string(part) + " does not exist (message has " +
                                         std::to_string(req.parts.size()) + " binary parts)");
  }
  const std::string& bytes = req.parts[static_cast<std::size_t>(part - 1)];
  if (bytes.size() != n * item) {
    return err(ErrorCode::bad_parts, "part " + std::to_string(part) + " has " + std::to_string(bytes.size()) +
                                         " bytes, shape and dtype need " + std::to_string(n * item));
  }
  v.bytes = bytes;
  return v;
}

json attach_array(Reply& reply, std::string dtype, std::vector<std::size_t> shape, std::string bytes) {
  reply.parts.push_back(std::move(bytes));
  return {{"dtype", std::move(dtype)}, {"shape", std::move(shape)}, {"part", reply.parts.size()}};
}

namespace {
ProtocolError missing(const Request& r, std::string_view key) {
  return {ErrorCode::missing_field, "args." + std::string(key) + " is required", r.id};
}
ProtocolError wrong(const Request& r, std::string_view key, const char* what) {
  return {ErrorCode::wrong_type, "args." + std::string(key) + " must be " + what, r.id};
}
}  // namespace

std::variant<std::int64_t, ProtocolError> get_int(const Request& req, std::string_view key, std::optional<std::int64_t> dflt) {
  const std::string k(key);
  if (!req.args.contains(k)) {
    if (dflt) return *dflt;
    return missing(req, key);
  }
  const json& v = req.args[k];
  if (!v.is_number_integer()) return wrong(req, key, "an integer");
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return ProtocolError{ErrorCode::bad_argument, "args." + k + " is out of range", req.id};
  }
  return v.get<std::int64_t>();
}

std::variant<double, ProtocolError> get_number(const Request& req, std::string_view key, std::optional<double> dflt) {
  const std::string k(key);
  if (!req.args.contains(k)) {
    if (dflt) return *dflt;
    return missing(req, key);
  }
  const json& v = req.args[k];
  if (!v.is_number()) return wrong(req, key, "a number");
  return v.get<double>();
}

std::variant<std::string, ProtocolError> get_string(const Request& req, std::string_view key, std::optional<std::string> dflt) {
  const std::string k(key);
  if (!req.args.contains(k)) {
    if (dflt) return *dflt;
    return missing(req, key);
  }
  const json& v = req.args[k];
  if (!v.is_string()) return wrong(req, key, "a string");
  return v.get<std::string>();
}

std::variant<bool, ProtocolError> get_bool(const Request& req, std::string_view key, std::optional<bool> dflt) {
  const std::string k(key);
  if (!req.args.contains(k)) {
    if (dflt) return *dflt;
    return missing(req, key);
  }
  const json& v = req.args[k];
  if (!v.is_boolean()) return wrong(req, key, "true or false");
  return v.get<bool>();
}

std::optional<ProtocolError> check_known_args(const Request& req, std::initializer_list<std::string_view> known) {
  for (const auto& [k, v] : req.args.items()) {
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      std::string list;
      for (auto a : known) list += (list.empty() ? "" : ", ") + std::string(a);
      return ProtocolError{ErrorCode::bad_argument,
                           "unknown argument '" + k + "' for " + req.cmd + " (known: " + (list.empty() ? "none" : list) + ")",
                           req.id};
    }
  }
  return std::nullopt;
}

}  // namespace hilo::controller
