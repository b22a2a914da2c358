#include "tools/overcast/commands.h"

namespace overcast::cli {
void AddPsCommand(CLI::App& app, CommandContext& ctx) {
  app.add_subcommand("ps", "(under construction)")->callback([&ctx] { ctx.exit_code = Finish(Internal("not built yet")); });
}
}  // namespace overcast::cli
