#include "hilo/io/options_json.hpp"

#include <algorithm>
#include <stdexcept>

namespace hilo::io {

using nlohmann::json;

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_name(std::string_view name, const std::vector<std::string>& candidates, std::size_t max_distance) {
  std::string best;
  std::size_t bd = max_distance + 1;
  for (const auto& c : candidates)
    if (const auto d = edit_distance(name, c); d < bd) bd = d, best = c;
  return best;
}

void require_valid(const std::string& rule, const std::string& prefix) {
  if (!rule.empty()) throw std::invalid_argument(prefix + rule);
}

std::string first_broken(std::initializer_list<std::string> rules) {
  for (const std::string& r : rules)
    if (!r.empty()) return r;
  return {};
}

namespace {

// What a value is ("an integer"); as the expected type, an unsigned one reads "a non-negative integer".
std::string type_name(const json& v, bool expected = false) {
  switch (v.type()) {
    case json::value_t::number_unsigned: return expected ? "a non-negative integer" : "an integer";
    case json::value_t::object: return "a mapping";
    case json::value_t::array: return "a list";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "true or false";
    case json::value_t::number_integer: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "nothing";
  }
}

bool compatible(const json& given, const json& ref) {
  if (ref.is_number_integer() || ref.is_number_unsigned()) {
    if (ref.is_number_unsigned() && given.is_number_integer() && !given.is_number_unsigned()) return given.get<long long>() >= 0;
    return given.is_number_integer() || given.is_number_unsigned();
  }
  if (ref.is_number_float()) return given.is_number();
  if (ref.is_array()) return given.is_array();
  return given.type() == ref.type();
}

}  // namespace

void check_against_reference(const json& given, const json& reference, const std::string& section) {
  if (!given.is_object()) throw OptionsError(section + " must be a mapping, got " + type_name(given), section);
  for (const auto& [k, v] : given.items()) {
    const std::string path = section + "." + k;
    if (!reference.contains(k)) {
      std::vector<std::string> names;
      for (const auto& [rk, rv] : reference.items()) names.push_back(rk);
      const std::string best = closest_name(k, names);
      throw OptionsError(section + ": unknown key '" + k + "'" + (best.empty() ? "" : "; did you mean '" + best + "'?"),
                         path);
    }
    const json& r = reference[k];
    if (!compatible(v, r))
      throw OptionsError(path + " must be " + type_name(r, true) + ", got " + type_name(v) + " (" + v.dump() + ")", path);
    if (r.is_object()) check_against_reference(v, r, path);
  }
}

json merge_checked(const json& given, const json& reference, const std::string& section) {
  check_against_reference(given, reference, section);
  json merged = reference;
  merged.merge_patch(given);
  return merged;
}

}  // namespace hilo::io
