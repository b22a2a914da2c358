// overcast_load_bench [SIZE_MB] [OVERCAST_BINARY]: runs RunLoadBench and prints its JSON line.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "bench/load_bench.h"

int main(int argc, char** argv) {
  overcast::bench::LoadBenchOptions o;
  if (argc > 1) o.size_mb = std::strtoull(argv[1], nullptr, 10);
  if (argc > 2) o.overcast = argv[2];
  nlohmann::json result;
  overcast::Status st = overcast::bench::RunLoadBench(o, &result);
  if (!st.ok()) {
    std::fprintf(stderr, "overcast_load_bench: %s\n", st.ToString().c_str());
    return 1;
  }
  std::cout << result.dump() << std::endl;
  return 0;
}
