// `overcast normalize` (placeholder until the next commit).
#include "tools/overcast/commands.h"
namespace overcast::cli {
void AddNormalizeCommand(CLI::App& app, CommandContext& ctx) {}
}  // namespace overcast::cli
