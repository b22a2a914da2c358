// overcast_train_bench [ITERATIONS] [BACKEND] [OVERCAST_BINARY]: runs RunTrainBench and prints its
// JSON line, until `overcast bench train` is wired to it.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "bench/train_bench.h"

int main(int argc, char** argv) {
  overcast::bench::TrainBenchOptions o;
  if (argc > 1) o.iterations = std::atoi(argv[1]);
  if (argc > 2) o.backend = argv[2];
  if (argc > 3) o.worker_binary = argv[3];
  if (o.backend == "processes" && o.worker_binary.empty()) {
    std::fprintf(stderr, "overcast_train_bench: the processes backend needs OVERCAST_BINARY\n");
    return 2;
  }
  nlohmann::json result;
  overcast::Status st = overcast::bench::RunTrainBench(o, &result);
  if (!st.ok()) {
    std::fprintf(stderr, "overcast_train_bench: %s\n", st.ToString().c_str());
    return 1;
  }
  std::cout << result.dump() << std::endl;
  return 0;
}
