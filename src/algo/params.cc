#include "algo/params.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace overcast::algo {
namespace {

std::string Num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

const ParamSpec* Find(const std::vector<ParamSpec>& specs, const std::string& name) {
  for (const auto& s : specs)
    if (s.name == name) return &s;
  return nullptr;
}

std::string Names(const std::vector<ParamSpec>& specs) {
  std::string out;
  for (const auto& s : specs) out += (out.empty() ? "" : ", ") + s.name;
  return out;
}

Status SetValue(const ParamSpec& spec, const std::string& text, const std::string& model,
                nlohmann::json* values) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("--param " + spec.name + "=" + text + " for model " + model + ": " +
                           why + " (" + spec.Describe() + ")");
  };
  switch (spec.type) {
    case ParamSpec::Type::kFloat: {
      char* end = nullptr;
      errno = 0;
      double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
        return bad("expected a number");
      if (v < spec.min || v > spec.max) return bad("out of range");
      (*values)[spec.name] = v;
      return Status::Ok();
    }
    case ParamSpec::Type::kInt: {
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno == ERANGE) return bad("expected an integer");
      if (v < spec.min || v > spec.max) return bad("out of range");
      (*values)[spec.name] = static_cast<int64_t>(v);
      return Status::Ok();
    }
    case ParamSpec::Type::kChoice:
      for (const auto& c : spec.choices)
        if (c == text) {
          (*values)[spec.name] = text;
          return Status::Ok();
        }
      return bad("not one of the choices");
    case ParamSpec::Type::kText:
      if (spec.check) {
        const std::string why = spec.check(text);
        if (!why.empty()) return bad(why);
      }
      (*values)[spec.name] = text;
      return Status::Ok();
  }
  return Status::Ok();
}

}  // namespace

ParamSpec ParamSpec::Float(std::string name, double def, std::string help, double lo, double hi) {
  ParamSpec s;
  s.name = std::move(name);
  s.type = Type::kFloat;
  s.default_value = Num(def);
  s.help = std::move(help);
  s.min = lo;
  s.max = hi;
  return s;
}

ParamSpec ParamSpec::Int(std::string name, int64_t def, std::string help, int64_t lo,
                         int64_t hi) {
  ParamSpec s;
  s.name = std::move(name);
  s.type = Type::kInt;
  s.default_value = std::to_string(def);
  s.help = std::move(help);
  s.min = static_cast<double>(lo);
  s.max = static_cast<double>(hi);
  return s;
}

ParamSpec ParamSpec::Choice(std::string name, std::string def, std::vector<std::string> choices,
                            std::string help) {
  ParamSpec s;
  s.name = std::move(name);
  s.type = Type::kChoice;
  s.default_value = std::move(def);
  s.choices = std::move(choices);
  s.help = std::move(help);
  return s;
}

ParamSpec ParamSpec::Text(std::string name, std::string def, std::string help,
                          std::function<std::string(const std::string&)> check) {
  ParamSpec s;
  s.name = std::move(name);
  s.type = Type::kText;
  s.default_value = std::move(def);
  s.help = std::move(help);
  s.check = std::move(check);
  return s;
}

std::string ParamSpec::Describe() const {
  std::string t;
  switch (type) {
    case Type::kFloat:
      t = "float";
      break;
    case Type::kInt:
      t = "int";
      break;
    case Type::kChoice:
      t = "";
      for (const auto& c : choices) t += (t.empty() ? "" : "|") + c;
      break;
    case Type::kText:
      t = "text";
      break;
  }
  auto num = [this](double v) {
    return type == Type::kInt ? std::to_string(static_cast<long long>(v)) : Num(v);
  };
  std::string range;
  if (type == Type::kFloat || type == Type::kInt) {
    if (min > -1e299 && max < 1e299 && max < 9e18) range = ", " + num(min) + ".." + num(max);
    else if (min > -1e299) range = ", >= " + num(min);
  }
  const std::string def = default_value.empty() ? "none" : default_value;
  return name + " (" + t + ", default " + def + range + "): " + help;
}

double Params::Float(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() || !it->is_number() ? 0.0 : it->get<double>();
}
int64_t Params::Int(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() || !it->is_number() ? 0 : it->get<int64_t>();
}
std::string Params::Choice(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() || !it->is_string() ? std::string() : it->get<std::string>();
}

Result<Params> Params::Parse(const std::vector<ParamSpec>& specs,
                             const std::vector<std::string>& assignments,
                             const std::string& model) {
  Params p;
  for (const auto& s : specs) OC_RETURN_IF_ERROR(SetValue(s, s.default_value, model, &p.values_));
  for (const auto& a : assignments) {
    auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0)
      return InvalidArgument("--param " + a + ": expected KEY=VALUE");
    std::string key = a.substr(0, eq), value = a.substr(eq + 1);
    const ParamSpec* spec = Find(specs, key);
    if (!spec)
      return InvalidArgument("--param " + key + ": model " + model + " takes no such parameter (it takes " +
                             Names(specs) + ")");
    OC_RETURN_IF_ERROR(SetValue(*spec, value, model, &p.values_));
  }
  return p;
}

Result<Params> Params::FromJson(const std::vector<ParamSpec>& specs, const nlohmann::json& j,
                                const std::string& model) {
  std::vector<std::string> assignments;
  if (!j.is_object()) return InvalidArgument("params: expected a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string v = it->is_string() ? it->get<std::string>() : it->dump();
    assignments.push_back(it.key() + "=" + v);
  }
  return Parse(specs, assignments, model);
}

}  // namespace overcast::algo
