#pragma once
// hilo model files: one JSON header followed by raw little-endian arrays.
//
// Layout (all integers little-endian):
//   bytes 0..7    magic "HILOMDL1"
//   bytes 8..15   uint64 n: length of the JSON header in bytes (UTF-8, padded with spaces so that
//                 16 + n is a multiple of 64)
//   bytes 16..16+n-1  JSON: {"format": "hilo-model", "version": 1, "kind": ..., "meta": {...},
//                 "arrays": [{"name", "dtype": "<f4" | "<f8", "shape": [...], "offset", "nbytes"}]}
//   then the data section; array k starts at byte 16 + n + offset_k, C order, 64-byte aligned.
// numpy: see docs/distill.md. Writing is atomic (temporary file, then rename).
// Reading checks magic, header syntax, that every array lies inside the file and that nbytes equals
// prod(shape)·itemsize; violations throw ModelFileError naming the file and the rule.
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hilo/distill/layers.hpp"

namespace hilo::distill {

class ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct NamedArray {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<double> data;  // stored as <f4 unless `f64`
  bool f64 = false;
};

struct ModelFile {
  std::string kind;     // "teacher", "student", ...
  nlohmann::json meta;  // architecture and anything else the writer wants to keep
  std::vector<NamedArray> arrays;
  const NamedArray& at(const std::string& name) const;  // throws ModelFileError when absent
  bool has(const std::string& name) const;
};

void write_model(const std::filesystem::path& path, const ModelFile& m);
ModelFile read_model(const std::filesystem::path& path);

// Array <-> matrix helpers.
template <typename T>
NamedArray to_array(const std::string& name, const Mat<T>& m);
template <typename T>
Mat<T> from_array(const NamedArray& a, Eigen::Index rows, Eigen::Index cols);

// A Sequential network as a model file: meta.arch = net.arch(), arrays = parameters and buffers
// named "<layer index>.<type>.<param>".
template <typename T>
ModelFile sequential_to_model(Sequential<T>& net, const std::string& kind, const nlohmann::json& extra_meta);
template <typename T>
Sequential<T> sequential_from_model(const ModelFile& m);

}  // namespace hilo::distill
