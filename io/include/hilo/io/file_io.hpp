#pragma once
// The one crash-safe file writer, shared by every component that stores results (.npy arrays, JSON
// manifests and reports, PNG figures, model files).
#include <cstddef>
#include <filesystem>
#include <span>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace hilo::io {

class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes `bytes` to "<path>.tmp", fsyncs it, renames it over `path`, then fsyncs the directory, so a
// crash at any instant leaves either the old file or the complete new one (and, after the directory
// fsync, the new name survives a power loss). Throws FileError naming the path and the failed step;
// the temporary file is removed on failure.
void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes);

// `j` pretty-printed (2 spaces, a final newline; invalid UTF-8 replaced) through write_file_atomic.
void write_json_atomic(const std::filesystem::path& path, const nlohmann::json& j);

// fsync of a directory, making renames and creations inside it durable. Throws FileError.
void fsync_directory(const std::filesystem::path& dir);

}  // namespace hilo::io
