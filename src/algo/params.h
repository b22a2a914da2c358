// Hyper-parameters: declared once per algorithm (typed, with default and help), parsed from
// KEY=VALUE strings, carried as JSON between the coordinator and its workers.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace overcast::algo {

struct ParamSpec {
  enum class Type { kFloat, kInt, kChoice, kText };
  std::string name;
  Type type = Type::kFloat;
  std::string default_value;         // as the user would write it
  std::string help;
  double min = -1e300, max = 1e300;  // kFloat, kInt: inclusive bounds
  std::vector<std::string> choices;  // kChoice
  // kText: what is wrong with a value ("" when it is fine).
  std::function<std::string(const std::string&)> check;

  static ParamSpec Float(std::string name, double def, std::string help, double lo = -1e300,
                         double hi = 1e300);
  static ParamSpec Int(std::string name, int64_t def, std::string help, int64_t lo, int64_t hi);
  static ParamSpec Choice(std::string name, std::string def, std::vector<std::string> choices,
                          std::string help);
  static ParamSpec Text(std::string name, std::string def, std::string help,
                        std::function<std::string(const std::string&)> check);
  // "lr (float, default 0.1, > 0): learning rate"
  std::string Describe() const;
};

// The values of every declared parameter (defaults filled in). Reading an undeclared name is
// a bug in the algorithm and returns the zero value.
class Params {
 public:
  double Float(const std::string& name) const;
  int64_t Int(const std::string& name) const;
  std::string Choice(const std::string& name) const;
  std::string Text(const std::string& name) const { return Choice(name); }
  nlohmann::json ToJson() const { return values_; }
  const nlohmann::json& json() const { return values_; }

  // Starts from the specs' defaults, then applies `assignments` ("lr=0.1"). InvalidArgument,
  // one line, for an unknown name (listing the known ones), a missing '=', or a bad value.
  static Result<Params> Parse(const std::vector<ParamSpec>& specs,
                              const std::vector<std::string>& assignments,
                              const std::string& model);
  // Same checks for values already in JSON (a job spec read by a worker).
  static Result<Params> FromJson(const std::vector<ParamSpec>& specs, const nlohmann::json& j,
                                 const std::string& model);

 private:
  nlohmann::json values_ = nlohmann::json::object();
};

}  // namespace overcast::algo
