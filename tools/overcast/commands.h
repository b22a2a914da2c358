// The overcast subcommands: each Add*Command declares its options and its callback on `app`.
#pragma once

#include <CLI/CLI.hpp>

#include "common/status.h"

namespace overcast::serve {
struct ServeOptions;
}

namespace overcast::cli {

// Filled in by whichever subcommand ran; main() returns it.
struct CommandContext {
  int exit_code = 0;
};

// Prints a failed status to stderr and returns the DESIGN.md exit status: 2 for bad usage or
// bad input, 1 for a runtime failure, 0 for success.
int Finish(const Status& status);

// The default dataset store: $OVERCAST_STORE, else ~/.overcast/store.
std::string DefaultStore();

// "a,b,,c" -> {"a", "b", "c"}; every element of `in` is split the same way.
std::vector<std::string> SplitList(const std::string& s);
std::vector<std::string> SplitList(const std::vector<std::string>& in);

void AddPsCommand(CLI::App& app, CommandContext& ctx);
// ps-admin: stats and checkpoints of running servers
void AddPsAdminCommand(CLI::App& app, CommandContext& ctx);
void AddBenchCommand(CLI::App& app, CommandContext& ctx);
void AddTuneCommand(CLI::App& app, CommandContext& ctx);
void AddLoadCommand(CLI::App& app, CommandContext& ctx);
void AddNormalizeCommand(CLI::App& app, CommandContext& ctx);
// serve, serve-replica, loadgen, make-model
void AddServeCommands(CLI::App& app, CommandContext& ctx);
// A deployment's options that `serve` and `bench serve` share, bound to `o`: replicas, SLO,
// quotas and CFS periods, batching, and the tuning of every controller (Captain, Tower, HPA,
// static). One registration, so both commands name, check and explain them alike. An option
// added here also belongs in bench/serve_bench.cc's DeploymentJson (the result's record).
void AddDeploymentOptions(CLI::App* c, serve::ServeOptions* o);
void AddTrainCommand(CLI::App& app, CommandContext& ctx);
void AddCoordinatorCommand(CLI::App& app, CommandContext& ctx);
void AddWorkerCommand(CLI::App& app, CommandContext& ctx);
void AddPredictCommand(CLI::App& app, CommandContext& ctx);

}  // namespace overcast::cli
