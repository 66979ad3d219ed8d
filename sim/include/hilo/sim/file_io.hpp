#pragma once
// Crash-safe file writes, shared by every component that stores results (.npy arrays, manifests,
// PNG figures, catalogs' side files).
#include <cstddef>
#include <filesystem>
#include <span>
#include <stdexcept>

namespace hilo::sim {

class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes `bytes` to "<path>.tmp", fsyncs it, renames it over `path`, then fsyncs the directory, so a
// crash at any instant leaves either the old file or the complete new one (and, after the directory
// fsync, the new name survives a power loss). Throws FileError naming the path and the failed step;
// the temporary file is removed on failure.
void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes);

// fsync of a directory, making renames and creations inside it durable. Throws FileError.
void fsync_directory(const std::filesystem::path& dir);

}  // namespace hilo::sim
