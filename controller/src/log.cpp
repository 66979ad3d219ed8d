#include "hilo/controller/log.hpp"

#include <array>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace hilo::controller {

using nlohmann::json;

namespace {

constexpr std::array<std::string_view, 7> kLevels = {"trace", "debug", "info", "warn", "error", "critical", "off"};

spdlog::level::level_enum to_spdlog(LogLevel l) { return static_cast<spdlog::level::level_enum>(static_cast<int>(l)); }

std::optional<LogLevel> level_from_string(std::string_view s) {
  for (std::size_t i = 0; i < kLevels.size(); ++i) {
    if (kLevels[i] == s) return static_cast<LogLevel>(i);
  }
  return std::nullopt;
}

// The time, level and logger name come from the pattern; the payload (%v) is the message and fields,
// already formatted for the chosen format.
constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%eZ [%l] %n: %v";
constexpr const char* kJsonPattern = R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n",%v})";

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string LogOptions::validate() const {
  if (!level_from_string(level)) return "log.level must be one of trace, debug, info, warn, error, critical, off, got '" + level + "'";
  if (format != "text" && format != "json") return "log.format must be text or json, got '" + format + "'";
  if (file_max_bytes < 1024 || file_max_bytes > (std::size_t{1} << 30)) {
    return "log.file_max_bytes must be in [1024, 1073741824], got " + std::to_string(file_max_bytes);
  }
  if (file_count < 1 || file_count > 100) return "log.file_count must be in [1, 100], got " + std::to_string(file_count);
  return {};
}

void add_log_options(CLI::App& app, LogOptions& o) {
  app.add_option("--log-level", o.level, "least severe level logged: trace, debug, info, warn, error, critical, off")
      ->capture_default_str();
  app.add_option("--log-format", o.format, "text (one readable line) or json (one object per line)")->capture_default_str();
  app.add_option("--log-file", o.file, "also log to this file, rotated by size (stderr is always logged)");
  app.add_option("--log-file-max-bytes", o.file_max_bytes, "rotate the log file before it passes this size")
      ->capture_default_str();
  app.add_option("--log-file-count", o.file_count, "rotated log files kept besides the current one")->capture_default_str();
}

Log::Log() : Log(LogOptions{}) {}

Log::Log(const LogOptions& o, std::string name) : json_(o.format == "json") {
  if (auto e = o.validate(); !e.empty()) throw std::runtime_error(e);
  std::vector<spdlog::sink_ptr> sinks;
  if (o.to_stderr) sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (!o.file.empty()) {
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(o.file.string(), o.file_max_bytes, o.file_count));
    } catch (const spdlog::spdlog_ex& e) {
      throw std::runtime_error("log file " + o.file.string() + ": " + e.what());
    }
  }
  logger_ = std::make_shared<spdlog::logger>(std::move(name), sinks.begin(), sinks.end());
  logger_->set_formatter(std::make_unique<spdlog::pattern_formatter>(json_ ? kJsonPattern : kTextPattern,
                                                                    spdlog::pattern_time_type::utc));
  logger_->set_level(to_spdlog(*level_from_string(o.level)));
  // Daemon logs are few lines; each one reaches the file before the next request is handled.
  logger_->flush_on(spdlog::level::trace);
}

bool Log::enabled(LogLevel level) const { return logger_->should_log(to_spdlog(level)); }

void Log::flush() const { logger_->flush(); }

void Log::log(LogLevel level, std::string_view msg, const json& fields) const {
  if (!enabled(level)) return;
  std::string payload;
  if (json_) {
    json obj = json::object();
    obj["msg"] = msg;
    if (fields.is_object()) {
      for (const auto& [k, v] : fields.items()) {
        if (k != "msg") obj[k] = v;
      }
    } else if (!fields.is_null()) {
      obj["context"] = fields;
    }
    payload = dump(obj);
    payload = payload.substr(1, payload.size() - 2);  // the pattern supplies the braces
  } else {
    payload.assign(msg);
    if (fields.is_object()) {
      for (const auto& [k, v] : fields.items()) payload += " " + k + "=" + dump(v);
    } else if (!fields.is_null()) {
      payload += " context=" + dump(fields);
    }
  }
  logger_->log(to_spdlog(level), spdlog::string_view_t(payload.data(), payload.size()));
}

}  // namespace hilo::controller
