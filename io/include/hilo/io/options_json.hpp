#pragma once
// Options structs ⇄ JSON, with the mapping written once per struct.
//
// Each options struct declares its JSON form once, next to the struct, with nlohmann's
// NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT (or a to_json/from_json pair for a field kept as a
// string, such as an enum). read_options() then reads a user's (partial) JSON strictly:
//   - the JSON form of `defaults` is the reference: every key the user gives must exist there, at any
//     depth ("distill: unknown key 'ntk_beat'; did you mean 'ntk_beta'?"), and have its type (a number
//     where the reference has a number, an integer where it has an integer, a string, a bool, a list,
//     a mapping), else std::invalid_argument naming the full key path;
//   - keys the user leaves out keep their value in `defaults` (a JSON merge patch of the user's object
//     onto the reference), so what is stored after reading — to_json of the result — is exactly what
//     was submitted merged with defaults, and reading it again gives the same struct.
// Validation of values (ranges, names) stays with the struct's own validate(), in the one convention
// of every options struct in hilo (Ceres' Solver::Options::IsValid): `std::string validate() const`
// returns "" when the values are valid, else the first violated rule, naming the full key path and
// the value ("sim.camera.bit_depth must be in [8, 16], got 20"). A bad config is an expected outcome
// of reading user input, so it is a value; code that needs valid options turns that value into an
// exception at its own boundary (require_valid, read_valid_options, a constructor's precondition).
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace hilo::io {

// What read_options and check_against_reference throw: the message names the full key path and the
// rule; key() is that path ("roles.camera.exposure"), or the section when the struct as a whole failed
// to convert, so a reader that knows where each key came from (a YAML file's lines) can say so.
class OptionsError : public std::invalid_argument {
 public:
  OptionsError(const std::string& what, std::string key) : std::invalid_argument(what), key_(std::move(key)) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

// Levenshtein distance (insertions, deletions, substitutions).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate nearest to `name` within `max_distance` edits, or "" when none is that close.
std::string closest_name(std::string_view name, const std::vector<std::string>& candidates,
                         std::size_t max_distance = 2);

// Throws OptionsError unless every key of `given` (recursively through mappings) exists in
// `reference` with a compatible type. `section` prefixes the messages ("pipeline.student.distill").
void check_against_reference(const nlohmann::json& given, const nlohmann::json& reference,
                             const std::string& section);

// `reference` merged with `given` after check_against_reference().
nlohmann::json merge_checked(const nlohmann::json& given, const nlohmann::json& reference, const std::string& section);

// Reads T from `given` on top of `defaults` (see above). Throws OptionsError (a std::invalid_argument).
template <class T>
T read_options(const nlohmann::json& given, const std::string& section, const T& defaults = T{}) {
  const nlohmann::json merged = merge_checked(given, nlohmann::json(defaults), section);
  try {
    return merged.get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw OptionsError(section + ": " + e.what(), section);
  } catch (const OptionsError&) {
    throw;
  } catch (const std::invalid_argument& e) {  // a field's from_json refusing a name: "<field> must be ..."
    throw OptionsError(section + "." + e.what(), section);
  }
}

// Throws std::invalid_argument(prefix + rule) when `rule` (a validate() result) is not empty.
void require_valid(const std::string& rule, const std::string& prefix = "");

// The first non-empty rule of `rules`, in order, or "" when all are empty (a validate() made of
// independent checks: `return first_broken({range_rule(...), sub.validate(), ...});`).
std::string first_broken(std::initializer_list<std::string> rules);

// read_options, then T::validate(): a broken rule throws OptionsError(rule, section), so a YAML reader
// can name the section's line.
template <class T>
T read_valid_options(const nlohmann::json& given, const std::string& section, const T& defaults = T{}) {
  T t = read_options<T>(given, section, defaults);
  if (std::string rule = t.validate(); !rule.empty()) throw OptionsError(rule, section);
  return t;
}

}  // namespace hilo::io
