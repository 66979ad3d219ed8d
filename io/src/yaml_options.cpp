#include "hilo/io/yaml_options.hpp"

#include <yaml-cpp/yaml.h>

namespace hilo::io {

nlohmann::json yaml_to_json(const YAML::Node& n, KeyLines* lines, const std::string& prefix) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& kv : n) {
        const std::string k = kv.first.Scalar();
        const std::string path = prefix.empty() ? k : prefix + "." + k;
        if (lines && kv.first.Mark().line >= 0) (*lines)[path] = kv.first.Mark().line + 1;
        j[k] = yaml_to_json(kv.second, lines, path);
      }
      return j;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& v : n) j.push_back(yaml_to_json(v, lines, prefix));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted
      if (s == "true" || s == "false") return s == "true";
      long long i = 0;
      if (YAML::convert<long long>::decode(n, i)) return i;
      unsigned long long u = 0;  // a 64-bit seed above the signed range stays exact
      if (YAML::convert<unsigned long long>::decode(n, u)) return u;
      double d = 0;
      if (YAML::convert<double>::decode(n, d)) return d;
      return s;
    }
    default:
      return nullptr;
  }
}

void scalars_as_strings_where_expected(nlohmann::json& given, const nlohmann::json& reference) {
  if (!given.is_object() || !reference.is_object()) return;
  for (auto& [k, v] : given.items()) {
    if (!reference.contains(k)) continue;
    const nlohmann::json& r = reference[k];
    if (r.is_string() && (v.is_number_integer() || v.is_number_unsigned() || v.is_boolean())) v = v.dump();
    else if (r.is_object()) scalars_as_strings_where_expected(v, r);
  }
}

std::string with_line(const OptionsError& e, const KeyLines& lines) {
  const auto it = lines.find(e.key());
  return it == lines.end() ? std::string(e.what()) : std::string(e.what()) + " (line " + std::to_string(it->second) + ")";
}

}  // namespace hilo::io
