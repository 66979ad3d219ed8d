#pragma once
// The hilod wire protocol (docs/protocol.md), without any I/O.
//
// A request is a ZeroMQ multipart message: frame 0 is one JSON object
//   {"id": <any JSON>, "cmd": "<name>", "args": {...}, "v": <protocol major, optional>}
// and frames 1..n are binary array payloads referenced from args by a descriptor
//   {"dtype": "|u1" | "<u2" | ..., "shape": [d0, d1, ...], "part": k}   (k >= 1, C order, little endian).
// A reply is frame 0 = {"id": <same>, "ok": true, "result": ...} or
//   {"id": <same>, "ok": false, "error": {"code": "<stable code>", "message": "<text>"}}
// followed by the binary parts that the result's descriptors reference.
//
// parse() checks only the envelope (sizes, JSON, object, id/cmd/args types, version, part count limit);
// each command checks its own arguments when handled. Error codes are stable strings: clients switch on
// them, humans read the message.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace hilo::controller {

inline constexpr int kProtocolVersion = 1;

enum class ErrorCode {
  malformed_json,       // frame 0 is not valid UTF-8 JSON
  not_an_object,        // frame 0 is JSON but not an object
  missing_field,        // a required field (id, cmd, or a command argument) is absent
  wrong_type,           // a field has the wrong JSON type
  unknown_command,      // cmd names no command
  bad_argument,         // an argument has the right type but an invalid value (range, unknown key, shape)
  too_large,            // the message or a result exceeds the configured limits
  bad_parts,            // binary parts missing, extra, or not matching their descriptor
  unsupported_version,  // the request's "v" is not this daemon's protocol major version
  device_error,         // a device failed (the message names the device and the driver's code)
  not_found,            // no job/run with that id
  busy,                 // the devices are in use by a running job
  cancelled,            // the operation was cancelled
  shutting_down,        // the daemon no longer accepts work
  internal,             // a bug or an unexpected failure (storage I/O); the daemon keeps serving
  forbidden,            // the caller's role (read_only) may not run this command
  forbidden_path,       // a path argument is absolute, contains "..", or resolves outside the data directory
  overloaded,           // the daemon's queue of pending requests is full; retry later
  too_many_jobs,        // the job limit (queued + running) is reached; wait or cancel a job
  not_supported,        // the command needs something this daemon's bench does not have
};
std::string_view to_string(ErrorCode c);

struct Limits {
  std::size_t max_json_bytes = 1 << 20;         // frame 0
  std::size_t max_message_bytes = 512u << 20;   // all frames of a request together
  std::size_t max_parts = 16;                   // binary parts per request
  std::size_t max_reply_bytes = 512u << 20;     // binary parts of one reply together
  // Requests read from the socket but not yet answered, all clients together. A request beyond it is
  // answered at once with overloaded (that reply may overtake replies to the client's earlier requests).
  std::size_t max_pending_requests = 1024;
  // Replies queued for one client that does not read them (the ROUTER's send high-water mark). Beyond
  // it a reply is dropped and counted: a client that does not read cannot be told.
  std::size_t max_pending_replies = 1000;
  std::size_t max_jobs = 16;                    // jobs queued + running; a new job beyond it: too_many_jobs

  [[nodiscard]] std::string validate() const;
};

struct Request {
  nlohmann::json id;             // echoed back; any JSON value
  std::string cmd;
  nlohmann::json args;           // always an object
  std::vector<std::string> parts;  // binary frames 1..n (parts[0] is "part": 1)
};

struct ProtocolError {
  ErrorCode code;
  std::string message;
  nlohmann::json id;  // the request's id when it could be read, else null
};

struct Reply {
  nlohmann::json body;             // the JSON of frame 0
  std::vector<std::string> parts;  // binary frames after it
  bool shutdown_after = false;     // the daemon shuts down after sending this reply
  // Events the daemon publishes after sending the reply (topic, body), e.g. "device.state".
  std::vector<std::pair<std::string, nlohmann::json>> events;
};

std::variant<Request, ProtocolError> parse(std::span<const std::string> frames, const Limits& limits);

Reply ok_reply(const nlohmann::json& id, nlohmann::json result);
Reply error_reply(const nlohmann::json& id, ErrorCode code, std::string message);
inline Reply error_reply(const ProtocolError& e) { return error_reply(e.id, e.code, e.message); }
std::vector<std::string> serialize(const Reply& r);

// A binary array as carried in a part. dtype is numpy's descr: "|u1", "<u2", "<f4", "<f8", "<i4", "<i8".
struct ArrayView {
  std::string dtype;
  std::vector<std::size_t> shape;
  std::string_view bytes;  // points into Request::parts; size == product(shape) * itemsize
};

std::size_t dtype_itemsize(std::string_view dtype);  // 0 for dtypes the protocol does not carry

// Reads args[key] as an array descriptor and checks it against req.parts: part index in range, dtype
// known and in `allowed` (empty = any), rank in [min_rank, max_rank], byte size matching the shape.
std::variant<ArrayView, ProtocolError> get_array(const Request& req, std::string_view key,
                                                 std::span<const std::string_view> allowed, std::size_t min_rank,
                                                 std::size_t max_rank);

// Appends `bytes` as the next binary part of `reply` and returns its descriptor.
nlohmann::json attach_array(Reply& reply, std::string dtype, std::vector<std::size_t> shape, std::string bytes);

// Argument readers: absent → default (or missing_field when required); wrong JSON type → wrong_type.
std::variant<std::int64_t, ProtocolError> get_int(const Request& req, std::string_view key,
                                                  std::optional<std::int64_t> dflt = std::nullopt);
std::variant<double, ProtocolError> get_number(const Request& req, std::string_view key,
                                               std::optional<double> dflt = std::nullopt);
std::variant<std::string, ProtocolError> get_string(const Request& req, std::string_view key,
                                                    std::optional<std::string> dflt = std::nullopt);
std::variant<bool, ProtocolError> get_bool(const Request& req, std::string_view key,
                                          std::optional<bool> dflt = std::nullopt);
// bad_argument naming the first key of args not in `known`.
std::optional<ProtocolError> check_known_args(const Request& req, std::initializer_list<std::string_view> known);

}  // namespace hilo::controller
