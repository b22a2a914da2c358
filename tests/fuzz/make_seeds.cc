// Writes the seed corpus for frame_fuzz: valid frames of each kind, compressed and not.
#include <fstream>
#include <string>
#include <vector>

#include "common/hash.h"
#include "net/frame.h"
#include "ps/protocol.h"
#include "ps/table_spec.h"

using namespace overcast;

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : ".";
  std::vector<std::string> seeds;
  auto frame = [&](uint8_t type, const std::string& payload, net::Compression c) {
    net::FrameBuilder b;
    b.buffer()->append(payload);
    seeds.push_back(std::move(b).Finish(type, seeds.size() + 1, 0, 0, c, 16));
  };
  std::string pull, push, dense, spec_bytes;
  {
    ByteWriter w(&pull);
    ps::PutName(&w, "weights");
    w.Put<uint64_t>(3);
    for (uint64_t k : {1ull, 2ull, 99ull}) w.Put<uint64_t>(k);
  }
  push = pull;
  {
    ByteWriter w(&push);
    for (float f : {0.5f, -1.0f, 2.0f}) w.Put<float>(f);
  }
  {
    ByteWriter w(&dense);
    ps::PutName(&w, "bias");
    w.Put<uint64_t>(0);
    w.Put<uint64_t>(4);
    for (float f : {1.f, 2.f, 3.f, 4.f}) w.Put<float>(f);
  }
  {
    ps::TableSpec s;
    s.name = "weights";
    s.dim = 3;
    s.optimizer.kind = ps::OptimizerKind::kFtrl;
    ByteWriter w(&spec_bytes);
    ps::EncodeSpec(s, &w);
  }
  for (auto c : {net::Compression::kNone, net::Compression::kLz4, net::Compression::kZstd}) {
    frame(ps::kPull, pull, c);
    frame(ps::kPush, push + push, c);
    frame(ps::kPushDense, dense, c);
    frame(ps::kCreateTable, spec_bytes, c);
  }
  frame(ps::kStats, "", net::Compression::kNone);
  {
    // A dense pull's reply as a server lends it: the table's floats under a block checksum.
    std::string floats;
    ByteWriter w(&floats);
    for (int i = 0; i < 24; ++i) w.Put<float>(0.25f * static_cast<float>(i));
    seeds.push_back(net::MakeHeader(ps::kPullDense, seeds.size() + 1,
                                    net::kFlagResponse | net::kFlagBlockChecksum, 0,
                                    floats.size(), BlockChecksum64(floats.data(), floats.size())) +
                    floats);
  }
  for (size_t i = 0; i < seeds.size(); ++i) {
    std::ofstream(dir + "/seed-" + std::to_string(i), std::ios::binary) << seeds[i];
  }
  std::ofstream(dir + "/seed-stream", std::ios::binary) << seeds[0] + seeds[1] + seeds[5];
  return 0;
}
