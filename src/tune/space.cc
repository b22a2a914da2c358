#include "tune/space.h"

#include <charconv>
#include <cmath>
#include <random>
#include <set>
#include <sstream>

namespace overcast::tune {
namespace {

std::string Trim(std::string s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(Trim(cur));
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

Result<double> Number(const std::string& s, const std::string& where) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) {
    return InvalidArgument(where + ": expected a number, found '" + s + "'");
  }
  return v;
}

// Splits "a=b;c=d" into named parts, checking names.
Result<std::vector<std::pair<std::string, std::string>>> Parts(const std::string& spec,
                                                               const char* what) {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<std::string> seen;
  if (Trim(spec).empty()) return InvalidArgument(std::string(what) + " is empty");
  for (const std::string& part : Split(spec, ';')) {
    if (part.empty()) continue;
    auto eq = part.find('=');
    if (eq == std::string::npos) {
      return InvalidArgument(std::string(what) + ": expected NAME=VALUES in '" + part + "'");
    }
    std::string name = Trim(part.substr(0, eq)), values = Trim(part.substr(eq + 1));
    if (name.empty()) return InvalidArgument(std::string(what) + ": empty name in '" + part + "'");
    if (!seen.insert(name).second) {
      return InvalidArgument(std::string(what) + ": '" + name + "' given twice");
    }
    if (values.empty()) {
      return InvalidArgument(std::string(what) + ": '" + name + "' has no values");
    }
    out.emplace_back(name, values);
  }
  if (out.empty()) return InvalidArgument(std::string(what) + " is empty");
  return out;
}

std::string Format(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

}  // namespace

std::string ToString(const Assignment& a) {
  std::string s;
  for (auto& [k, v] : a) {
    if (!s.empty()) s += ' ';
    s += k + "=" + v;
  }
  return s;
}

Result<std::vector<Assignment>> ParseGrid(const std::string& spec) {
  OC_ASSIGN_OR_RETURN(auto parts, Parts(spec, "grid"));
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  for (auto& [name, values] : parts) {
    std::vector<std::string> vs;
    for (auto& v : Split(values, ',')) {
      if (v.empty()) return InvalidArgument("grid: '" + name + "' has an empty value");
      vs.push_back(v);
    }
    axes.emplace_back(name, vs);
  }
  std::vector<Assignment> out(1);
  for (auto& [name, values] : axes) {
    std::vector<Assignment> next;
    for (auto& a : out) {
      for (auto& v : values) {
        Assignment b = a;
        b.emplace_back(name, v);
        next.push_back(std::move(b));
      }
    }
    out = std::move(next);
  }
  return out;
}

Result<std::vector<Assignment>> ParseRandom(const std::string& spec, uint32_t trials,
                                            uint64_t seed) {
  if (trials == 0) return InvalidArgument("random search needs --trials of at least 1");
  OC_ASSIGN_OR_RETURN(auto parts, Parts(spec, "random"));
  struct Dist {
    std::string name, kind;
    double a = 0, b = 0;
    std::vector<std::string> choices;
  };
  std::vector<Dist> dists;
  for (auto& [name, value] : parts) {
    Dist d;
    d.name = name;
    auto open = value.find('(');
    if (open == std::string::npos) {
      d.kind = "const";
      d.choices = {value};
      dists.push_back(d);
      continue;
    }
    if (value.back() != ')') {
      return InvalidArgument("random: '" + name + "': expected KIND(a,b), found '" + value + "'");
    }
    d.kind = Trim(value.substr(0, open));
    auto args = Split(value.substr(open + 1, value.size() - open - 2), ',');
    std::string where = "random: '" + name + "'";
    if (d.kind == "choice") {
      for (auto& c : args) {
        if (c.empty()) return InvalidArgument(where + ": empty choice");
      }
      d.choices = args;
    } else if (d.kind == "log" || d.kind == "uniform" || d.kind == "int") {
      if (args.size() != 2) return InvalidArgument(where + ": expected two bounds, " + d.kind + "(a,b)");
      OC_ASSIGN_OR_RETURN(d.a, Number(args[0], where));
      OC_ASSIGN_OR_RETURN(d.b, Number(args[1], where));
      if (!(d.a < d.b) && !(d.kind == "int" && d.a == d.b)) {
        return InvalidArgument(where + ": expected a < b");
      }
      if (d.kind == "log" && d.a <= 0) return InvalidArgument(where + ": log needs 0 < a");
      if (d.kind == "int" && (d.a != std::floor(d.a) || d.b != std::floor(d.b))) {
        return InvalidArgument(where + ": int bounds must be integers");
      }
    } else {
      return InvalidArgument(where + ": unknown distribution '" + d.kind +
                             "' (expected log, uniform, int or choice)");
    }
    dists.push_back(d);
  }
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<Assignment> out;
  for (uint32_t t = 0; t < trials; ++t) {
    Assignment a;
    for (auto& d : dists) {
      std::string v;
      if (d.kind == "const") {
        v = d.choices[0];
      } else if (d.kind == "choice") {
        v = d.choices[rng() % d.choices.size()];
      } else if (d.kind == "log") {
        v = Format(std::exp(std::log(d.a) + unit(rng) * (std::log(d.b) - std::log(d.a))));
      } else if (d.kind == "uniform") {
        v = Format(d.a + unit(rng) * (d.b - d.a));
      } else {
        auto lo = static_cast<int64_t>(d.a), hi = static_cast<int64_t>(d.b);
        v = std::to_string(lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1)));
      }
      a.emplace_back(d.name, v);
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace overcast::tune
