#pragma once
// Who may drive the bench, and where path arguments may point (docs/protocol.md, "Security").
//
// Roles: every command needs a role; read_only may observe (ping, version, device status, job and run
// listings, runs.get), control may also change the bench or start and stop work. A command this file
// does not name needs control, so a new command is safe until someone decides otherwise.
//
// Client allow-list: with CurveZMQ on, each client's long-term public key must be listed with its role.
// ZapHandler answers libzmq's ZAP requests (RFC 27) for the whole zmq context and puts
// "<role>:<name>" in the ZAP user id, which reaches the daemon as every message's "User-Id" property.
//
// Paths: a path argument is relative to the data directory; confine_path() refuses empty, absolute and
// ".."-containing paths and anything whose existing part resolves (symlinks followed) outside the
// directory. The check is made when the request is handled: a process that can write the data
// directory could still swap a component afterwards (the data directory is the daemon's own).
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include <zmq.hpp>

#include "hilo/controller/protocol.hpp"

namespace hilo::controller {

enum class Role { read_only, control };  // ordered: control can do everything read_only can
std::string_view to_string(Role r);
std::optional<Role> role_from_string(std::string_view s);  // "read_only" | "control"

// The role `cmd` needs (unknown names: control).
Role required_role(std::string_view cmd);

// A Z85 CurveZMQ key: 40 characters that decode to 32 bytes.
bool is_z85_key(std::string_view z85);

struct ClientKey {
  std::string public_key;  // Z85, 40 characters
  Role role = Role::read_only;
  std::string name;        // for logs; defaults to the key's first 8 characters
};

// Allow-list text: one client per line, "<role> <z85 public key> [name]"; a word starting with '#'
// (other than the key, since '#' is a Z85 character) starts a comment; blank lines are skipped. Returns the keys, or a message naming `source`, the line and the violated rule.
// A key listed twice is an error (its role would be ambiguous). An empty list is an error.
std::variant<std::vector<ClientKey>, std::string> parse_client_keys(std::string_view text, std::string_view source);
std::variant<std::vector<ClientKey>, std::string> load_client_keys(const std::filesystem::path& file);

// root / rel, lexically normalised, if rel stays inside root (see the header comment); else a message.
// root must exist.
std::variant<std::filesystem::path, std::string> confine_path(const std::filesystem::path& root, std::string_view rel);
// A path the daemon stored itself (a job's resolved parameters, a deploy run's config.json): root /
// relative, lexically normalised (absolute, or relative to the working directory when root is), accepted
// only when it lies lexically under root (as given, or canonical for an absolute path) and its part below
// root passes confine_path (no '..', no symbolic link out). A relative path not under root is read as
// relative to root (confine_path's rules).
std::variant<std::filesystem::path, std::string> confine_stored_path(const std::filesystem::path& root, std::string_view path);

// Reads args[key] as a path confined to data_dir: missing_field, wrong_type, or forbidden_path.
std::variant<std::filesystem::path, ProtocolError> get_path(const Request& req, std::string_view key,
                                                            const std::filesystem::path& data_dir);

// The role a message was authenticated with, from its ZAP user id "<role>:<name>"; nullopt if absent
// or unreadable.
std::optional<Role> role_from_user_id(std::string_view user_id);

// Answers ZAP requests on inproc://zeromq.zap.01 of `zmq` on a dedicated thread, so a handshake never
// waits for a command the I/O thread is handling. Only CURVE clients whose key is in the allow-list are
// admitted; every other request (unknown key, other mechanism) is denied with status 400, counted and
// logged (at most one log line per second, carrying the running count). The allow-list can be replaced
// while it runs (set_keys, on SIGHUP).
class ZapHandler {
 public:
  using Log = std::function<void(const std::string&)>;
  // Binds the ZAP endpoint (throws zmq::error_t when another handler is already bound in `zmq`).
  ZapHandler(zmq::context_t& zmq, const std::vector<ClientKey>& keys, Log log);
  ~ZapHandler();  // stops and joins the thread (within ~100 ms)
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Replaces the allow-list; handshakes after the call see the new one (connections already admitted stay).
  // Thread-safe with the handler's thread.
  void set_keys(const std::vector<ClientKey>& keys);
  std::size_t key_count() const;

  std::uint64_t allowed() const { return allowed_.load(); }
  std::uint64_t denied() const { return denied_.load(); }

 private:
  void run();
  void answer(std::vector<zmq::message_t>& req);

  zmq::socket_t sock_;                     // used only by thread_ once it runs
  mutable std::mutex keys_mu_;
  std::map<std::string, ClientKey> keys_;  // by the raw 32-byte key; guarded by keys_mu_
  Log log_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> allowed_{0}, denied_{0};
  double last_log_s_ = -1e300;
  std::thread thread_;
};

}  // namespace hilo::controller
