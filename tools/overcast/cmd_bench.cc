#include "tools/overcast/commands.h"

namespace overcast::cli {
void AddBenchCommand(CLI::App& app, CommandContext& ctx) {
  app.add_subcommand("bench", "(under construction)")->callback([&ctx] { ctx.exit_code = Finish(Internal("not built yet")); });
}
}  // namespace overcast::cli
