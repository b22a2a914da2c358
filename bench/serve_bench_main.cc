// overcast_serve_bench OVERCAST_BINARY [SECONDS] [PATTERN]: runs RunServeBench, prints its JSON.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "bench/serve_bench.h"
#include "common/log.h"

int main(int argc, char** argv) {
  overcast::InitLogging("warn");
  overcast::bench::ServeBenchOptions o;
  if (argc < 2) {
    std::fprintf(stderr, "usage: overcast_serve_bench OVERCAST_BINARY [SECONDS] [PATTERN]\n");
    return 2;
  }
  o.overcast = argv[1];
  if (argc > 2) o.seconds = std::atoi(argv[2]);
  if (argc > 3) o.pattern = argv[3];
  nlohmann::json result;
  overcast::Status st = overcast::bench::RunServeBench(o, &result);
  if (!st.ok()) {
    std::fprintf(stderr, "overcast_serve_bench: %s\n", st.ToString().c_str());
    return 1;
  }
  std::cout << result.dump() << std::endl;
  return 0;
}
