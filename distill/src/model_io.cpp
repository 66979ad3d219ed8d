#include "hilo/distill/model_io.hpp"

#include <cstddef>
#include <cstring>
#include <fstream>
#include <numeric>

#include "hilo/io/file_io.hpp"

namespace hilo::distill {
namespace fs = std::filesystem;

const NamedArray& ModelFile::at(const std::string& name) const {
  for (const auto& a : arrays)
    if (a.name == name) return a;
  throw ModelFileError("model file has no array named '" + name + "'");
}

bool ModelFile::has(const std::string& name) const {
  for (const auto& a : arrays)
    if (a.name == name) return true;
  return false;
}

void write_model(const fs::path& path, const ModelFile& m) {
  nlohmann::json arrays = nlohmann::json::array();
  std::uint64_t off = 0;
  std::vector<std::uint64_t> offsets;
  for (const auto& a : m.arrays) {
    const std::uint64_t n = std::accumulate(a.shape.begin(), a.shape.end(), std::uint64_t{1},
                                            [](std::uint64_t x, std::int64_t y) { return x * static_cast<std::uint64_t>(y); });
    if (n != a.data.size()) throw ModelFileError("array '" + a.name + "': data size does not match shape");
    const std::uint64_t nbytes = n * (a.f64 ? 8 : 4);
    offsets.push_back(off);
    arrays.push_back({{"name", a.name}, {"dtype", a.f64 ? "<f8" : "<f4"}, {"shape", a.shape}, {"offset", off}, {"nbytes", nbytes}});
    off += (nbytes + 63) / 64 * 64;
  }
  nlohmann::json h = {{"format", "hilo-model"}, {"version", 1}, {"kind", m.kind}, {"meta", m.meta}, {"arrays", arrays}};
  std::string hs = h.dump();
  hs.append((64 - (16 + hs.size()) % 64) % 64, ' ');
  // magic, header length (u64, little-endian), header, then the arrays at their offsets
  const std::size_t head = 16 + hs.size();
  std::vector<std::byte> file(head + off, std::byte{0});
  std::memcpy(file.data(), "HILOMDL1", 8);
  const std::uint64_t n = hs.size();
  for (int i = 0; i < 8; ++i) file[std::size_t(8 + i)] = static_cast<std::byte>(n >> (8 * i));
  std::memcpy(file.data() + 16, hs.data(), hs.size());
  for (std::size_t k = 0; k < m.arrays.size(); ++k) {
    const auto& a = m.arrays[k];
    std::byte* dst = file.data() + head + offsets[k];
    for (std::size_t i = 0; i < a.data.size(); ++i) {
      if (a.f64) {
        std::memcpy(dst + 8 * i, &a.data[i], 8);
      } else {
        const float f = static_cast<float>(a.data[i]);
        std::memcpy(dst + 4 * i, &f, 4);  // hilo targets little-endian hosts only
      }
    }
  }
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  // The project's one durable writer (temporary file, fsync, rename, directory fsync).
  try {
    io::write_file_atomic(path, file);
  } catch (const io::FileError& e) {
    throw ModelFileError(e.what());
  }
}

ModelFile read_model(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelFileError("model file not found: " + path.string());
  std::vector<char> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (b.size() < 16 || std::memcmp(b.data(), "HILOMDL1", 8) != 0)
    throw ModelFileError(path.string() + ": not a hilo model file (magic \"HILOMDL1\" missing)");
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(static_cast<unsigned char>(b[8 + i])) << (8 * i);
  if (16 + n > b.size()) throw ModelFileError(path.string() + ": header length exceeds the file size");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(b.begin() + 16, b.begin() + 16 + static_cast<std::ptrdiff_t>(n));
  } catch (const std::exception& e) {
    throw ModelFileError(path.string() + ": header is not valid JSON: " + e.what());
  }
  if (h.value("format", "") != "hilo-model" || h.value("version", 0) != 1)
    throw ModelFileError(path.string() + ": header must have format \"hilo-model\" and version 1");
  ModelFile m;
  m.kind = h.value("kind", "");
  m.meta = h.value("meta", nlohmann::json::object());
  const std::uint64_t base = 16 + n;
  for (const auto& a : h.at("arrays")) {
    NamedArray na;
    na.name = a.at("name");
    na.shape = a.at("shape").get<std::vector<std::int64_t>>();
    const std::string dt = a.at("dtype");
    if (dt != "<f4" && dt != "<f8") throw ModelFileError(path.string() + ": array '" + na.name + "' dtype must be <f4 or <f8");
    na.f64 = dt == "<f8";
    std::uint64_t cnt = 1;
    for (auto s : na.shape) {
      if (s < 0) throw ModelFileError(path.string() + ": negative dimension in '" + na.name + "'");
      cnt *= static_cast<std::uint64_t>(s);
    }
    const std::uint64_t off = a.at("offset"), nbytes = a.at("nbytes");
    if (nbytes != cnt * (na.f64 ? 8 : 4)) throw ModelFileError(path.string() + ": array '" + na.name + "' nbytes != prod(shape)·itemsize");
    if (base + off + nbytes > b.size()) throw ModelFileError(path.string() + ": array '" + na.name + "' lies outside the file (truncated?)");
    na.data.resize(cnt);
    const char* src = b.data() + base + off;
    for (std::uint64_t i = 0; i < cnt; ++i) {
      if (na.f64) {
        std::memcpy(&na.data[i], src + 8 * i, 8);
      } else {
        float f;
        std::memcpy(&f, src + 4 * i, 4);
        na.data[i] = f;
      }
    }
    m.arrays.push_back(std::move(na));
  }
  return m;
}

template <typename T>
NamedArray to_array(const std::string& name, const Mat<T>& m) {
  NamedArray a;
  a.name = name;
  a.shape = {m.rows(), m.cols()};
  a.data.assign(m.data(), m.data() + m.size());
  return a;
}

template <typename T>
Mat<T> from_array(const NamedArray& a, Eigen::Index rows, Eigen::Index cols) {
  if (static_cast<Eigen::Index>(a.data.size()) != rows * cols)
    throw ModelFileError("array '" + a.name + "' has " + std::to_string(a.data.size()) + " values, expected " +
                         std::to_string(rows * cols));
  Mat<T> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(a.data[static_cast<std::size_t>(i)]);
  return m;
}

template <typename T>
ModelFile sequential_to_model(Sequential<T>& net, const std::string& kind, const nlohmann::json& extra) {
  ModelFile m;
  m.kind = kind;
  m.meta = extra;
  m.meta["arch"] = net.arch();
  for (std::size_t i = 0; i < net.size(); ++i) {
    auto ps = net.layer(i).params();
    auto bs = net.layer(i).buffers();
    ps.insert(ps.end(), bs.begin(), bs.end());
    for (auto& p : ps) m.arrays.push_back(to_array(std::to_string(i) + "." + net.layer(i).type() + "." + p.name, *p.value));
  }
  return m;
}

template <typename T>
Sequential<T> sequential_from_model(const ModelFile& m) {
  if (!m.meta.contains("arch")) throw ModelFileError("model file has no meta.arch");
  Sequential<T> net = sequential_from_arch<T>(m.meta.at("arch"));
  for (std::size_t i = 0; i < net.size(); ++i) {
    auto ps = net.layer(i).params();
    auto bs = net.layer(i).buffers();
    ps.insert(ps.end(), bs.begin(), bs.end());
    for (auto& p : ps)
      *p.value = from_array<T>(m.at(std::to_string(i) + "." + net.layer(i).type() + "." + p.name), p.value->rows(), p.value->cols());
  }
  return net;
}

template NamedArray to_array<float>(const std::string&, const Mat<float>&);
template NamedArray to_array<double>(const std::string&, const Mat<double>&);
template Mat<float> from_array<float>(const NamedArray&, Eigen::Index, Eigen::Index);
template Mat<double> from_array<double>(const NamedArray&, Eigen::Index, Eigen::Index);
template ModelFile sequential_to_model<float>(Sequential<float>&, const std::string&, const nlohmann::json&);
template ModelFile sequential_to_model<double>(Sequential<double>&, const std::string&, const nlohmann::json&);
template Sequential<float> sequential_from_model<float>(const ModelFile&);
template Sequential<double> sequential_from_model<double>(const ModelFile&);

}  // namespace hilo::distill
