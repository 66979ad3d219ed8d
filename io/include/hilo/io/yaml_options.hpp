#pragma once
// Options structs read from YAML: a YAML node becomes JSON and goes through read_options (strict keys
// with did-you-mean suggestions, types, defaults; options_json.hpp), and an error names the line of
// the key it is about.
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "hilo/io/options_json.hpp"

namespace YAML {
class Node;
}

namespace hilo::io {

// Dotted key path ("roles.camera.retry.max_attempts") → 1-based line of that key in the file.
using KeyLines = std::map<std::string, int>;

// Mappings → objects, sequences → arrays, null → null; a plain scalar becomes true/false, an integer,
// a number or else a string; a quoted scalar stays a string. When `lines` is given, every mapping key
// below `n` is entered with its path, `prefix` first ("roles.camera" → "roles.camera.name").
nlohmann::json yaml_to_json(const YAML::Node& n, KeyLines* lines = nullptr, const std::string& prefix = "");

// YAML scalars have no type of their own: where `reference` holds a string and `given` a plain
// number or true/false (a serial number "device_id: 12345"), the value becomes its text.
void scalars_as_strings_where_expected(nlohmann::json& given, const nlohmann::json& reference);

// e.what() followed by " (line N)" when `lines` knows e.key(), else e.what().
std::string with_line(const OptionsError& e, const KeyLines& lines);

// read_options on a YAML mapping already converted by yaml_to_json (keys entered in `lines` under
// `section`). Throws OptionsError whose message ends with the line of the offending key.
template <class T>
T read_yaml_options(const nlohmann::json& given, const KeyLines& lines, const std::string& section,
                    const T& defaults = T{}) {
  try {
    nlohmann::json g = given;
    scalars_as_strings_where_expected(g, nlohmann::json(defaults));
    return read_options<T>(g, section, defaults);
  } catch (const OptionsError& e) {
    throw OptionsError(with_line(e, lines), e.key());
  }
}

}  // namespace hilo::io
