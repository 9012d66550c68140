#pragma once

#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace lockwatch::metrics::testing {

// A parsed Prometheus text exposition: samples keyed by `name{labels}` exactly as rendered.
struct Exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;  // family name -> type from "# TYPE"
  std::set<std::string> label_names;
  std::vector<std::string> label_values;

  bool Has(const std::string& key) const { return samples.count(key) != 0; }
  // The value of `key`; NaN when absent (any EXPECT_EQ against a number then fails and shows the key).
  double Value(const std::string& key) const {
    auto it = samples.find(key);
    return it == samples.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
  }
  // Samples whose key starts with `prefix` (e.g. `lockwatch_sessions{target="a",`).
  std::map<std::string, double> WithPrefix(const std::string& prefix) const {
    std::map<std::string, double> out;
    for (auto it = samples.lower_bound(prefix); it != samples.end() && it->first.rfind(prefix, 0) == 0;
         ++it) {
      out.insert(*it);
    }
    return out;
  }
  double SumWithPrefix(const std::string& prefix) const {
    double sum = 0;
    for (const auto& [key, value] : WithPrefix(prefix)) sum += value;
    return sum;
  }
};

// Parses the subset of the text format that TextSerializer writes (no timestamps). Label values are kept
// escaped as rendered.
inline Exposition ParseExposition(const std::string& text) {
  Exposition e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name;
      std::string type;
      words >> name >> type;
      e.types[name] = type;
      continue;
    }
    if (line[0] == '#') continue;
    size_t space = line.rfind(' ');
    std::string key = line.substr(0, space);
    e.samples[key] = std::strtod(line.c_str() + space + 1, nullptr);
    size_t open = key.find('{');
    if (open == std::string::npos) continue;
    // name="value",name="value"} with escaped quotes inside values.
    size_t i = open + 1;
    while (i < key.size() && key[i] != '}') {
      size_t eq = key.find('=', i);
      e.label_names.insert(key.substr(i, eq - i));
      size_t j = eq + 2;
      std::string value;
      while (j < key.size() && key[j] != '"') {
        if (key[j] == '\\') value += key[j++];
        value += key[j++];
      }
      e.label_values.push_back(value);
      i = j + 1;
      if (i < key.size() && key[i] == ',') ++i;
    }
  }
  return e;
}

}  // namespace lockwatch::metrics::testing
