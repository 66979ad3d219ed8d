#pragma once
// hilod's leveled, structured log, written through spdlog to stderr and optionally a rotating file.
//
// A line is a message plus context fields (a JSON object: command, client, role, error code, job id...).
//   text: 2026-12-01T18:40:00.123Z [warning] hilod: error reply cmd="capture" client="127.0.0.1" code="wrong_type"
//   json: {"time":"2026-12-01T18:40:00.123Z","level":"warning","logger":"hilod","msg":"error reply","cmd":"capture",...}
// Times are UTC with milliseconds. In json every line is one object; field values keep their JSON type and
// invalid UTF-8 in them (a client's bytes) is replaced by U+FFFD, so every line parses.
// The rotating file starts a new file when the next line would pass file_max_bytes and keeps file_count
// old ones (PATH.1 ... PATH.<file_count>, oldest dropped).
// A Log is a cheap handle (copies share the sinks); it is passed in, never looked up in a registry.
// Thread-safe: jobs, the ZAP thread and the I/O thread log through copies of one Log.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace spdlog {
class logger;
}
namespace CLI {
class App;
}

namespace hilo::controller {

enum class LogLevel { trace, debug, info, warn, error, critical, off };

struct LogOptions {
  std::string level = "info";         // trace, debug, info, warn, error, critical, off
  std::string format = "text";        // text | json
  std::filesystem::path file;         // empty: stderr only; else stderr and this rotating file
  std::size_t file_max_bytes = 10u << 20;  // rotate before a file passes this size; [1024, 1 GiB]
  std::size_t file_count = 5;              // rotated files kept besides the current one; [1, 100]
  bool to_stderr = true;

  // "" when valid, else the first violated rule, e.g. "log.level must be one of trace, ..., got 'loud'".
  [[nodiscard]] std::string validate() const;
};

// Registers --log-level, --log-format, --log-file, --log-file-max-bytes, --log-file-count on `app`.
void add_log_options(CLI::App& app, LogOptions& o);

class Log {
 public:
  // stderr only, info, text: for in-process daemons and tools that configure nothing.
  Log();
  // Throws std::runtime_error when the options are invalid or the log file cannot be opened.
  explicit Log(const LogOptions& o, std::string name = "hilod");

  // `fields`: a JSON object (anything else is logged as the field "context").
  void log(LogLevel level, std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) const;
  void trace(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) const { log(LogLevel::trace, m, f); }
  void debug(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) const { log(LogLevel::debug, m, f); }
  void info(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) const { log(LogLevel::info, m, f); }
  void warn(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) const { log(LogLevel::warn, m, f); }
  void error(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) const { log(LogLevel::error, m, f); }
  void critical(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) const { log(LogLevel::critical, m, f); }
  bool enabled(LogLevel level) const;
  void flush() const;

 private:
  std::shared_ptr<spdlog::logger> logger_;
  bool json_ = false;
};

}  // namespace hilo::controller
