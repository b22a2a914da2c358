// overcast: one binary, one subcommand per role (see `overcast --help`).
#include <cstdlib>
#include <iostream>

#include "common/log.h"
#include "common/version.h"
#include "tools/overcast/commands.h"

namespace overcast::cli {

int Finish(const Status& status) {
  if (status.ok()) return 0;
  std::cerr << "overcast: " << status.message() << "\n";
  return status.code() == Code::kInvalidArgument ? 2 : 1;
}

std::string DefaultStore() {
  if (const char* s = std::getenv("OVERCAST_STORE"); s && *s) return s;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.overcast/store";
}

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= s.size()) {
    size_t c = s.find(',', at);
    if (c == std::string::npos) c = s.size();
    if (c > at) out.push_back(s.substr(at, c - at));
    at = c + 1;
  }
  return out;
}

std::vector<std::string> SplitList(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& s : in) {
    for (auto& part : SplitList(s)) out.push_back(std::move(part));
  }
  return out;
}

}  // namespace overcast::cli

int main(int argc, char** argv) {
  using namespace overcast::cli;
  CLI::App app{
      "overcast: machine learning end to end on elastic, unreliable compute.\n"
      "Load data, train on stateless workers around a parameter server, tune, serve."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  app.set_version_flag("--version", std::string(overcast::Version()),
                       "Print overcast's version and exit");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.parse_complete_callback([&] { overcast::InitLogging(log_level); });

  CommandContext ctx;
  AddPsCommand(app, ctx);
  AddPsAdminCommand(app, ctx);
  AddBenchCommand(app, ctx);
  AddTuneCommand(app, ctx);
  AddLoadCommand(app, ctx);
  AddNormalizeCommand(app, ctx);
  AddServeCommands(app, ctx);
  AddTrainCommand(app, ctx);
  AddCoordinatorCommand(app, ctx);
  AddWorkerCommand(app, ctx);
  AddPredictCommand(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  return ctx.exit_code;
}
