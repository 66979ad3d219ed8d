#pragma once
// NumPy .npy files (format versions 1.0–3.0): the array format hilo writes and reads everywhere, so that
// analysis tools open every array with numpy.load.
//
// Supported dtypes: little-endian float32/64, complex64/128, uint8/16/32, int32/64, C order.
// Reading validates magic, version, header syntax, dtype, order and that the payload size matches the
// shape exactly; any violation throws NpyError whose message names the file and the rule broken.
// Writing is atomic: the data goes to "<path>.tmp", is flushed to disk, then renamed over <path>, so a
// crash leaves either the old file or the complete new one.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "hilo/sim/field.hpp"

namespace hilo::sim {

class NpyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Dtype { f4, f8, c8, c16, u1, u2, u4, i4, i8 };

// Numpy's descr string ("<f4", "|u1", ...) and the element size in bytes.
std::string dtype_descr(Dtype d);
std::size_t dtype_size(Dtype d);

// A C-ordered array exactly as stored: dtype, shape, raw little-endian bytes.
struct NpyArray {
  Dtype dtype = Dtype::f8;
  std::vector<std::size_t> shape;
  std::vector<std::byte> bytes;

  std::size_t size() const;  // product of shape (1 for a 0-d array)
};

// Parse .npy bytes; `what` names the source in error messages (usually the file path).
NpyArray parse_npy(std::span<const std::byte> bytes, const std::string& what);
std::vector<std::byte> serialize_npy(const NpyArray& a);

NpyArray read_npy(const std::filesystem::path& path);
void write_npy(const std::filesystem::path& path, const NpyArray& a);

// Conversions between stored arrays and the simulator's 2-D arrays. The to_* functions accept any
// real dtype (resp. complex dtype) and a 2-D shape, else throw NpyError naming `what`.
RArray to_rarray(const NpyArray& a, const std::string& what);
CArray to_carray(const NpyArray& a, const std::string& what);
NpyArray from_rarray(const RArray& r, Dtype d = Dtype::f8);   // d: f4, f8, u1, u2 (rounded, clamped)
NpyArray from_carray(const CArray& c, Dtype d = Dtype::c16);  // d: c8 or c16

// Any contiguous buffer of a supported element type, with a shape (for tensors of rank != 2).
template <typename T>
NpyArray make_npy(std::span<const T> data, std::vector<std::size_t> shape);

// Reads back elements of any real dtype as double (throws for complex).
std::vector<double> as_doubles(const NpyArray& a, const std::string& what);

}  // namespace hilo::sim
