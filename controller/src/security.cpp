#include "hilo/controller/security.hpp"

#include <array>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>

#include <zmq_addon.hpp>

namespace hilo::controller {

namespace fs = std::filesystem;

std::string_view to_string(Role r) { return r == Role::control ? "control" : "read_only"; }

std::optional<Role> role_from_string(std::string_view s) {
  if (s == "control") return Role::control;
  if (s == "read_only") return Role::read_only;
  return std::nullopt;
}

Role required_role(std::string_view cmd) {
  static constexpr std::string_view kReadOnly[] = {"ping",      "version",     "devices.list", "devices.status",
                                                   "jobs.list", "jobs.status", "runs.list",    "runs.get",
                                                   "daemon.stats"};
  for (auto c : kReadOnly) {
    if (c == cmd) return Role::read_only;
  }
  return Role::control;
}

bool is_z85_key(std::string_view z85) {
  if (z85.size() != 40) return false;
  const std::string s(z85);
  std::array<std::uint8_t, 32> raw{};
  return zmq_z85_decode(raw.data(), s.c_str()) != nullptr;
}

std::variant<std::vector<ClientKey>, std::string> parse_client_keys(std::string_view text, std::string_view source) {
  std::vector<ClientKey> keys;
  std::istringstream in{std::string(text)};
  std::string line;
  int n = 0;
  auto err = [&](const std::string& m) { return std::string(source) + ":" + std::to_string(n) + ": " + m; };
  while (std::getline(in, line)) {
    ++n;
    // '#' is a Z85 character, so a comment starts only at a word's start outside the key's position.
    std::istringstream words(line);
    std::string role, key, name, extra;
    if (!(words >> role) || role.starts_with('#')) continue;
    if (!(words >> key)) return err("expected \"<role> <z85 public key> [name]\"");
    if ((words >> name) && name.starts_with('#')) name.clear();
    if (!name.empty() && (words >> extra) && !extra.starts_with('#')) {
      return err("unexpected text after the name: '" + extra + "' (comments start with '#')");
    }
    const auto r = role_from_string(role);
    if (!r) return err("role must be read_only or control, got '" + role + "'");
    if (!is_z85_key(key)) return err("public key must be 40 Z85 characters (zmq_curve_keypair), got '" + key + "'");
    for (const auto& k : keys) {
      if (k.public_key == key) return err("key " + key.substr(0, 8) + "... is listed twice");
    }
    keys.push_back({key, *r, name.empty() ? key.substr(0, 8) : name});
  }
  if (keys.empty()) return std::string(source) + ": the allow-list names no client key";
  return keys;
}

std::variant<std::vector<ClientKey>, std::string> load_client_keys(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return file.string() + ": cannot open the client key allow-list";
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_client_keys(ss.str(), file.string());
}

std::variant<fs::path, std::string> confine_path(const fs::path& root, std::string_view rel) {
  if (rel.empty()) return std::string("path is empty");
  if (rel.find('\0') != std::string_view::npos) return std::string("path contains a NUL byte");
  const fs::path p(rel);
  if (p.is_absolute() || p.has_root_name() || p.has_root_directory()) {
    return "path '" + std::string(rel) + "' is absolute; paths are relative to the data directory";
  }
  for (const auto& part : p) {
    if (part == "..") return "path '" + std::string(rel) + "' contains '..'";
  }
  std::error_code ec;
  const fs::path base = fs::canonical(root, ec);
  if (ec) return "data directory " + root.string() + " cannot be resolved: " + ec.message();
  // weakly_canonical resolves the existing prefix (following symlinks) and appends the rest.
  const fs::path resolved = fs::weakly_canonical(base / p, ec);
  if (ec) return "path '" + std::string(rel) + "' cannot be resolved: " + ec.message();
  auto b = base.begin();
  auto r = resolved.begin();
  for (; b != base.end(); ++b, ++r) {
    if (r == resolved.end() || *r != *b) {
      return "path '" + std::string(rel) + "' resolves outside the data directory (through a symbolic link)";
    }
  }
  return (root / p).lexically_normal();
}

std::variant<fs::path, std::string> confine_stored_path(const fs::path& root, std::string_view path) {
  // What the daemon stores is (root / relative).lexically_normal(): absolute, or relative to the working
  // directory when root is. Its part below root is checked as a request path would be.
  const fs::path p = fs::path(path).lexically_normal();
  const auto under = [&p](const fs::path& base) -> std::optional<fs::path> {
    const fs::path b = base.lexically_normal();
    if (p.is_absolute() != b.is_absolute()) return std::nullopt;
    const fs::path rel = p.lexically_relative(b);
    if (rel.empty() || rel == "." || *rel.begin() == "..") return std::nullopt;
    return rel;
  };
  auto rel = under(root);
  if (!rel && p.is_absolute()) {
    std::error_code ec;
    const fs::path base = fs::canonical(root, ec);
    if (!ec) rel = under(base);
  }
  if (rel) return confine_path(root, rel->string());
  if (p.is_absolute()) return "path '" + std::string(path) + "' is outside the data directory " + root.string();
  return confine_path(root, path);  // relative to the data directory, as in a request
}

std::variant<fs::path, ProtocolError> get_path(const Request& req, std::string_view key, const fs::path& data_dir) {
  const std::string k(key);
  if (!req.args.contains(k)) return ProtocolError{ErrorCode::missing_field, "args." + k + " is required", req.id};
  if (!req.args[k].is_string()) {
    return ProtocolError{ErrorCode::wrong_type, "args." + k + " must be a path (string) relative to the data directory",
                         req.id};
  }
  auto r = confine_path(data_dir, req.args[k].get_ref<const std::string&>());
  if (auto* e = std::get_if<std::string>(&r)) return ProtocolError{ErrorCode::forbidden_path, "args." + k + ": " + *e, req.id};
  return std::get<fs::path>(r);
}

std::optional<Role> role_from_user_id(std::string_view user_id) {
  const auto colon = user_id.find(':');
  return role_from_string(user_id.substr(0, colon));
}

// ------------------------------------------------------------------------------------------ ZapHandler

ZapHandler::ZapHandler(zmq::context_t& zmq, const std::vector<ClientKey>& keys, Log log)
    : sock_(zmq, zmq::socket_type::rep), log_(std::move(log)) {
  set_keys(keys);
  sock_.set(zmq::sockopt::linger, 0);
  sock_.bind("inproc://zeromq.zap.01");
  thread_ = std::thread([this] { run(); });
}

void ZapHandler::set_keys(const std::vector<ClientKey>& keys) {
  std::map<std::string, ClientKey> by_raw;
  for (const auto& k : keys) {
    std::array<std::uint8_t, 32> raw{};
    if (!zmq_z85_decode(raw.data(), k.public_key.c_str())) continue;  // parse_client_keys checked them
    by_raw.emplace(std::string(reinterpret_cast<const char*>(raw.data()), raw.size()), k);
  }
  std::lock_guard lk(keys_mu_);
  keys_ = std::move(by_raw);
}

std::size_t ZapHandler::key_count() const {
  std::lock_guard lk(keys_mu_);
  return keys_.size();
}

ZapHandler::~ZapHandler() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ZapHandler::run() {
  while (!stop_) {
    zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) == 0) continue;
      std::vector<zmq::message_t> req;
      if (!zmq::recv_multipart(sock_, std::back_inserter(req), zmq::recv_flags::dontwait)) continue;
      answer(req);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
      if (log_) log_(std::string("ZAP handler: ") + e.what());
    }
  }
  sock_.close();
}

void ZapHandler::answer(std::vector<zmq::message_t>& req) {
  // Request: version "1.0", request id, domain, address, routing id, mechanism, credentials...
  const std::string version = req.size() > 0 ? req[0].to_string() : "";
  const std::string request_id = req.size() > 1 ? req[1].to_string() : "";
  const std::string address = req.size() > 3 ? req[3].to_string() : "?";
  const std::string mechanism = req.size() > 5 ? req[5].to_string() : "";
  std::string status = "400", text = "client key not in the allow-list", user;
  if (version != "1.0") {
    text = "unsupported ZAP version";
  } else if (mechanism != "CURVE") {
    text = "only CURVE clients are admitted";
  } else if (req.size() == 7 && req[6].size() == 32) {
    std::lock_guard lk(keys_mu_);
    if (const auto it = keys_.find(req[6].to_string()); it != keys_.end()) {
      status = "200";
      text = "OK";
      user = std::string(to_string(it->second.role)) + ":" + it->second.name;
    }
  }
  std::vector<zmq::message_t> rep;
  rep.emplace_back(std::string_view("1.0"));
  rep.emplace_back(request_id.data(), request_id.size());
  rep.emplace_back(status.data(), status.size());
  rep.emplace_back(text.data(), text.size());
  rep.emplace_back(user.data(), user.size());
  rep.emplace_back();  // metadata
  zmq::send_multipart(sock_, rep);
  if (status == "200") {
    ++allowed_;
    return;
  }
  const auto n = ++denied_;
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (log_ && now - last_log_s_ >= 1.0) {
    last_log_s_ = now;
    log_("denied a " + (mechanism.empty() ? std::string("?") : mechanism) + " client from " + address + ": " + text +
         " (" + std::to_string(n) + " denial(s) so far)");
  }
}

}  // namespace hilo::controller
