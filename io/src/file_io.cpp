#include "hilo/io/file_io.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <unistd.h>

namespace hilo::io {

void fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw FileError(dir.string() + ": cannot open directory: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw FileError(dir.string() + ": fsync failed: " + std::strerror(err));
}

void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  const std::string tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw FileError(path.string() + ": cannot create: " + std::strerror(errno));
  auto fail = [&](const std::string& step, int err) {
    ::unlink(tmp.c_str());
    throw FileError(path.string() + ": " + step + " failed: " + std::strerror(err));
  };
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      fail("write", err);
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail("fsync", err);
  }
  if (::close(fd) != 0) fail("close", errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("rename", errno);
  fsync_directory(path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path());
}

void write_json_atomic(const std::filesystem::path& path, const nlohmann::json& j) {
  const std::string s = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  write_file_atomic(path, std::as_bytes(std::span<const char>(s.data(), s.size())));
}

}  // namespace hilo::io
