#include "hilo/sim/npy.hpp"

#include "hilo/io/file_io.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>


namespace hilo::sim {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;

struct DtypeInfo {
  Dtype d;
  const char* descr;
  std::size_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {Dtype::f4, "<f4", 4},  {Dtype::f8, "<f8", 8}, {Dtype::c8, "<c8", 8}, {Dtype::c16, "<c16", 16},
    {Dtype::u1, "|u1", 1},  {Dtype::u2, "<u2", 2}, {Dtype::u4, "<u4", 4}, {Dtype::i4, "<i4", 4},
    {Dtype::i8, "<i8", 8},
};

const DtypeInfo& info(Dtype d) {
  for (const auto& i : kDtypes)
    if (i.d == d) return i;
  throw NpyError("unknown dtype enum");
}

[[noreturn]] void fail(const std::string& what, const std::string& rule) {
  throw NpyError(what + ": " + rule);
}

// Value of `key` in the header dict: the text after "'key':" up to the next top-level ',' or '}'.
std::string dict_value(const std::string& header, const std::string& key, const std::string& what) {
  const std::string needle = "'" + key + "'";
  auto pos = header.find(needle);
  if (pos == std::string::npos) fail(what, "npy header has no '" + key + "' entry");
  pos = header.find(':', pos + needle.size());
  if (pos == std::string::npos) fail(what, "npy header entry '" + key + "' has no value");
  ++pos;
  int depth = 0;
  std::size_t end = pos;
  for (; end < header.size(); ++end) {
    const char ch = header[end];
    if (ch == '(') ++depth;
    if (ch == ')') --depth;
    if (depth == 0 && (ch == ',' || ch == '}')) break;
  }
  if (depth != 0 || end >= header.size()) fail(what, "npy header entry '" + key + "' is malformed");
  auto s = header.substr(pos, end - pos);
  const auto first = s.find_first_not_of(" \t");
  const auto last = s.find_last_not_of(" \t");
  return first == std::string::npos ? std::string{} : s.substr(first, last - first + 1);
}

std::vector<std::size_t> parse_shape(const std::string& v, const std::string& what) {
  if (v.size() < 2 || v.front() != '(' || v.back() != ')') fail(what, "npy shape must be a tuple, got " + v);
  std::vector<std::size_t> shape;
  std::stringstream ss(v.substr(1, v.size() - 2));
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto first = item.find_first_not_of(' ');
    if (first == std::string::npos) continue;  // trailing comma of a 1-tuple
    item = item.substr(first, item.find_last_not_of(' ') - first + 1);
    if (item.empty() || !std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; }))
      fail(what, "npy shape entry '" + item + "' is not a non-negative integer");
    shape.push_back(std::stoull(item));
  }
  return shape;
}

template <typename T>
constexpr Dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return Dtype::f4;
  else if constexpr (std::is_same_v<T, double>) return Dtype::f8;
  else if constexpr (std::is_same_v<T, std::complex<float>>) return Dtype::c8;
  else if constexpr (std::is_same_v<T, std::complex<double>>) return Dtype::c16;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return Dtype::u1;
  else if constexpr (std::is_same_v<T, std::uint16_t>) return Dtype::u2;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return Dtype::u4;
  else if constexpr (std::is_same_v<T, std::int32_t>) return Dtype::i4;
  else if constexpr (std::is_same_v<T, std::int64_t>) return Dtype::i8;
}

template <typename T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

std::string dtype_descr(Dtype d) { return info(d).descr; }
std::size_t dtype_size(Dtype d) { return info(d).size; }

std::size_t NpyArray::size() const {
  return std::accumulate(shape.begin(), shape.end(), std::size_t{1}, std::multiplies<>());
}

NpyArray parse_npy(std::span<const std::byte> bytes, const std::string& what) {
  if (bytes.size() < kMagicLen + 4 || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0)
    fail(what, "not a .npy file (bad magic)");
  const auto major = static_cast<unsigned>(bytes[6]);
  std::size_t header_len = 0;
  std::size_t offset = 0;
  if (major == 1) {
    header_len = static_cast<std::size_t>(bytes[8]) | (static_cast<std::size_t>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(what, "truncated npy header");
    for (int i = 0; i < 4; ++i) header_len |= static_cast<std::size_t>(bytes[8 + i]) << (8 * i);
    offset = 12;
  } else {
    fail(what, "unsupported npy format version " + std::to_string(major));
  }
  if (bytes.size() < offset + header_len) fail(what, "truncated npy header");
  const std::string header(reinterpret_cast<const char*>(bytes.data() + offset), header_len);
  if (header.find('{') == std::string::npos || header.find('}') == std::string::npos)
    fail(what, "npy header is not a dict");

  NpyArray a;
  auto descr = dict_value(header, "descr", what);
  if (descr.size() < 2 || (descr.front() != '\'' && descr.front() != '"')) fail(what, "npy descr is not a string");
  descr = descr.substr(1, descr.size() - 2);
  if (descr == "<u1" || descr == ">u1") descr = "|u1";
  bool known = false;
  for (const auto& i : kDtypes)
    if (descr == i.descr) {
      a.dtype = i.d;
      known = true;
    }
  if (!known) fail(what, "unsupported dtype '" + descr + "' (supported: <f4 <f8 <c8 <c16 |u1 <u2 <u4 <i4 <i8)");
  if (dict_value(header, "fortran_order", what) != "False") fail(what, "Fortran-ordered arrays are not supported");
  a.shape = parse_shape(dict_value(header, "shape", what), what);

  const std::size_t payload = bytes.size() - offset - header_len;
  const std::size_t n = a.size();
  if (n != 0 && n > std::numeric_limits<std::size_t>::max() / dtype_size(a.dtype))
    fail(what, "npy shape is too large");
  const std::size_t expected = n * dtype_size(a.dtype);
  if (payload != expected) {
    std::ostringstream os;
    os << "npy payload is " << payload << " bytes but shape and dtype need " << expected;
    fail(what, os.str());
  }
  const auto* begin = bytes.data() + offset + header_len;
  a.bytes.assign(begin, begin + payload);
  return a;
}

std::vector<std::byte> serialize_npy(const NpyArray& a) {
  if (a.bytes.size() != a.size() * dtype_size(a.dtype))
    throw NpyError("serialize_npy: byte count does not match shape and dtype");
  std::string header = "{'descr': '" + dtype_descr(a.dtype) + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < a.shape.size(); ++i) {
    header += std::to_string(a.shape[i]);
    if (a.shape.size() == 1 || i + 1 < a.shape.size()) header += ",";
    if (i + 1 < a.shape.size()) header += " ";
  }
  header += "), }";
  const bool v2 = header.size() + 11 > 65535;
  const std::size_t prefix = v2 ? 12 : 10;
  const std::size_t total = ((prefix + header.size() + 1 + 63) / 64) * 64;  // 64-byte alignment
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';

  std::vector<std::byte> out(total + a.bytes.size());
  std::memcpy(out.data(), kMagic, kMagicLen);
  out[6] = std::byte{static_cast<unsigned char>(v2 ? 2 : 1)};
  out[7] = std::byte{0};
  const std::size_t hl = header.size();
  for (std::size_t i = 0; i < (v2 ? 4u : 2u); ++i) out[8 + i] = std::byte{static_cast<unsigned char>((hl >> (8 * i)) & 0xff)};
  std::memcpy(out.data() + prefix, header.data(), hl);
  if (!a.bytes.empty()) std::memcpy(out.data() + total, a.bytes.data(), a.bytes.size());
  return out;
}

NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw NpyError(path.string() + ": cannot open for reading");
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_npy(std::as_bytes(std::span<const char>(raw)), path.string());
}

void write_npy(const std::filesystem::path& path, const NpyArray& a) {
  const auto bytes = serialize_npy(a);
  try {
    io::write_file_atomic(path, bytes);
  } catch (const io::FileError& e) {
    throw NpyError(e.what());
  }
}

std::vector<double> as_doubles(const NpyArray& a, const std::string& what) {
  std::vector<double> out(a.size());
  const auto* p = a.bytes.data();
  const std::size_t s = dtype_size(a.dtype);
  for (std::size_t i = 0; i < out.size(); ++i, p += s) {
    switch (a.dtype) {
      case Dtype::f4: out[i] = load<float>(p); break;
      case Dtype::f8: out[i] = load<double>(p); break;
      case Dtype::u1: out[i] = load<std::uint8_t>(p); break;
      case Dtype::u2: out[i] = load<std::uint16_t>(p); break;
      case Dtype::u4: out[i] = load<std::uint32_t>(p); break;
      case Dtype::i4: out[i] = load<std::int32_t>(p); break;
      case Dtype::i8: out[i] = static_cast<double>(load<std::int64_t>(p)); break;
      default: fail(what, "expected a real dtype, got " + dtype_descr(a.dtype));
    }
  }
  return out;
}

RArray to_rarray(const NpyArray& a, const std::string& what) {
  if (a.shape.size() != 2) fail(what, "expected a 2-D array, got " + std::to_string(a.shape.size()) + "-D");
  const auto v = as_doubles(a, what);
  RArray r(static_cast<Eigen::Index>(a.shape[0]), static_cast<Eigen::Index>(a.shape[1]));
  std::copy(v.begin(), v.end(), r.data());
  return r;
}

CArray to_carray(const NpyArray& a, const std::string& what) {
  if (a.shape.size() != 2) fail(what, "expected a 2-D array, got " + std::to_string(a.shape.size()) + "-D");
  CArray c(static_cast<Eigen::Index>(a.shape[0]), static_cast<Eigen::Index>(a.shape[1]));
  const auto* p = a.bytes.data();
  if (a.dtype == Dtype::c8) {
    for (Eigen::Index i = 0; i < c.size(); ++i, p += 8) c.data()[i] = cplx(load<std::complex<float>>(p));
  } else if (a.dtype == Dtype::c16) {
    std::memcpy(c.data(), p, a.bytes.size());
  } else {
    fail(what, "expected a complex dtype (<c8 or <c16), got " + dtype_descr(a.dtype));
  }
  return c;
}

NpyArray from_rarray(const RArray& r, Dtype d) {
  const std::vector<std::size_t> shape{static_cast<std::size_t>(r.rows()), static_cast<std::size_t>(r.cols())};
  const std::span<const double> src(r.data(), static_cast<std::size_t>(r.size()));
  auto convert = [&]<typename T>() {
    std::vector<T> v(src.size());
    for (std::size_t i = 0; i < src.size(); ++i) {
      if constexpr (std::is_integral_v<T>) {
        const double x = std::clamp(std::round(src[i]), 0.0, static_cast<double>(std::numeric_limits<T>::max()));
        v[i] = static_cast<T>(x);
      } else {
        v[i] = static_cast<T>(src[i]);
      }
    }
    return make_npy<T>(std::span<const T>(v), shape);
  };
  switch (d) {
    case Dtype::f4: return convert.template operator()<float>();
    case Dtype::f8: return make_npy<double>(src, shape);
    case Dtype::u1: return convert.template operator()<std::uint8_t>();
    case Dtype::u2: return convert.template operator()<std::uint16_t>();
    default: throw NpyError("from_rarray: dtype " + dtype_descr(d) + " is not a real image dtype");
  }
}

NpyArray from_carray(const CArray& c, Dtype d) {
  const std::vector<std::size_t> shape{static_cast<std::size_t>(c.rows()), static_cast<std::size_t>(c.cols())};
  if (d == Dtype::c16) return make_npy<cplx>(std::span<const cplx>(c.data(), static_cast<std::size_t>(c.size())), shape);
  if (d == Dtype::c8) {
    std::vector<std::complex<float>> v(static_cast<std::size_t>(c.size()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::complex<float>(c.data()[i]);
    return make_npy<std::complex<float>>(std::span<const std::complex<float>>(v), shape);
  }
  throw NpyError("from_carray: dtype " + dtype_descr(d) + " is not complex");
}

template <typename T>
NpyArray make_npy(std::span<const T> data, std::vector<std::size_t> shape) {
  NpyArray a;
  a.dtype = dtype_of<T>();
  a.shape = std::move(shape);
  if (a.size() != data.size()) throw NpyError("make_npy: shape does not match data length");
  const auto raw = std::as_bytes(data);
  a.bytes.assign(raw.begin(), raw.end());
  return a;
}

template NpyArray make_npy<float>(std::span<const float>, std::vector<std::size_t>);
template NpyArray make_npy<double>(std::span<const double>, std::vector<std::size_t>);
template NpyArray make_npy<std::complex<float>>(std::span<const std::complex<float>>, std::vector<std::size_t>);
template NpyArray make_npy<std::complex<double>>(std::span<const std::complex<double>>, std::vector<std::size_t>);
template NpyArray make_npy<std::uint8_t>(std::span<const std::uint8_t>, std::vector<std::size_t>);
template NpyArray make_npy<std::uint16_t>(std::span<const std::uint16_t>, std::vector<std::size_t>);
template NpyArray make_npy<std::uint32_t>(std::span<const std::uint32_t>, std::vector<std::size_t>);
template NpyArray make_npy<std::int32_t>(std::span<const std::int32_t>, std::vector<std::size_t>);
template NpyArray make_npy<std::int64_t>(std::span<const std::int64_t>, std::vector<std::size_t>);

}  // namespace hilo::sim
