// The server and client together, in one process over real loopback TCP.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <thread>

#include "common/hash.h"
#include "ps/client.h"
#include "ps/server.h"

namespace overcast::ps {
namespace {
namespace fs = std::filesystem;

struct Cluster {
  std::vector<std::unique_ptr<Server>> servers;
  ClientOptions client_options;

  explicit Cluster(int n, uint32_t shards = 2, std::string ckpt = "", bool restore = false) {
    for (int i = 0; i < n; ++i) {
      ServerOptions o;
      o.id = static_cast<uint32_t>(i);
      o.shards = shards;
      if (!ckpt.empty()) o.checkpoint_dir = ckpt + "/" + std::to_string(i);
      o.restore = restore;
      auto s = Server::Start(o);
      EXPECT_TRUE(s.ok()) << s.status().ToString();
      client_options.servers.push_back(s.value()->address());
      servers.push_back(std::move(s).value());
    }
  }
  std::unique_ptr<Client> Connect() {
    auto c = Client::Connect(client_options);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::move(c).value();
  }
};

TableSpec Dense(const std::string& name, uint64_t length,
                OptimizerKind opt = OptimizerKind::kAdd) {
  TableSpec d;
  d.name = name;
  d.kind = TableKind::kDense;
  d.length = length;
  d.optimizer.kind = opt;
  return d;
}

TableSpec Sparse(const std::string& name, uint32_t dim, OptimizerKind opt = OptimizerKind::kAdd) {
  TableSpec s;
  s.name = name;
  s.dim = dim;
  s.optimizer.kind = opt;
  s.optimizer.lr = 0.5f;
  return s;
}

// Small single-shard requests may run inline on the I/O thread; requests sent back to back
// (none waited for) must still apply in order on each shard: every single-key pull sees every
// push sent before it, including pushes spread over all shards and still queued there.
TEST(PsServer, InlineRequestsKeepOrderBehindQueuedOnes) {
  Cluster cluster(1, 4);
  auto client = cluster.Connect();
  ASSERT_TRUE(client->CreateTable(Sparse("w", 1)).ok());
  std::vector<uint64_t> wide(20000);
  std::iota(wide.begin(), wide.end(), 0);
  const std::vector<float> ones(wide.size(), 1.0f);
  constexpr int kRounds = 200;
  std::vector<uint64_t> probe(kRounds);
  std::vector<float> seen(kRounds, -1);
  std::vector<std::future<Status>> pending;
  for (int r = 0; r < kRounds; ++r) {
    pending.push_back(client->Push("w", wide, ones));  // every shard, 20k keys
    probe[r] = static_cast<uint64_t>(r * 97 % wide.size());
    pending.push_back(client->Pull("w", std::span(&probe[r], 1), &seen[r]));  // one shard
  }
  for (auto& f : pending) ASSERT_TRUE(f.get().ok());
  for (int r = 0; r < kRounds; ++r) EXPECT_EQ(seen[r], r + 1.0f) << "round " << r;
}

TEST(PsServer, PushThenPullAcrossServersAndShards) {
  Cluster cluster(2, 3);
  auto client = cluster.Connect();
  ASSERT_TRUE(client->CreateTable(Sparse("w", 3)).ok());
  ASSERT_TRUE(client->CreateTable(Sparse("w", 3)).ok()) << "creating again is idempotent";
  TableSpec other = Sparse("w", 4);
  EXPECT_EQ(client->CreateTable(other).code(), Code::kAlreadyExists);

  std::vector<uint64_t> keys(5000);
  std::iota(keys.begin(), keys.end(), 1000);
  keys.push_back(1000);  // a repeated key gets both rows applied
  std::vector<float> grads(keys.size() * 3);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = static_cast<float>(i % 17);
  ASSERT_TRUE(client->Push("w", keys, grads).get().ok());
  std::vector<float> out(keys.size() * 3, -1);
  ASSERT_TRUE(client->Pull("w", keys, out.data()).get().ok());
  for (size_t i = 1; i + 1 < keys.size(); ++i) {
    for (int j = 0; j < 3; ++j) ASSERT_EQ(out[i * 3 + j], grads[i * 3 + j]);
  }
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(out[j], grads[j] + grads[(keys.size() - 1) * 3 + j]);
  }
  // Never-pushed keys read as the initializer (zeros here) without being stored.
  std::vector<uint64_t> fresh = {1, 2, 3};
  std::vector<float> f(9, -1);
  ASSERT_TRUE(client->Pull("w", fresh, f.data()).get().ok());
  for (float v : f) EXPECT_EQ(v, 0.0f);

  auto stats = client->Stats();
  ASSERT_TRUE(stats.ok());
  uint64_t rows = 0;
  for (auto& s : *stats) rows += s["rows"].get<uint64_t>();
  EXPECT_EQ(rows, 5000u);
  EXPECT_GT((*stats)[0]["rows"].get<uint64_t>(), 2000u) << "keys spread over both servers";
}

TEST(PsServer, ErrorsAreRepliesNotDisconnects) {
  Cluster cluster(1);
  auto client = cluster.Connect();
  std::vector<uint64_t> keys = {1};
  std::vector<float> out(1);
  EXPECT_EQ(client->Pull("missing", keys, out.data()).get().code(), Code::kNotFound);
  ASSERT_TRUE(client->CreateTable(Sparse("t", 2)).ok());
  std::vector<float> wrong(3);
  EXPECT_EQ(client->Push("t", keys, wrong).get().code(), Code::kInvalidArgument);
  EXPECT_EQ(client->GetBlob("nope").status().code(), Code::kNotFound);
  EXPECT_EQ(client->Checkpoint().status().code(), Code::kInvalidArgument);
  // The connection still works.
  std::vector<float> g = {1, 2};
  EXPECT_TRUE(client->Push("t", keys, g).get().ok());
  ASSERT_TRUE(client->DropTable("t").ok());
  EXPECT_EQ(client->Push("t", keys, g).get().code(), Code::kNotFound);
}

TEST(PsServer, DenseTablesSplitOverServers) {
  Cluster cluster(2);
  auto client = cluster.Connect();
  TableSpec d = Dense("dense", 1001, OptimizerKind::kSgd);
  d.optimizer.lr = 0.5f;
  d.init = {InitKind::kConstant, 2.0f, 0, 0};
  ASSERT_TRUE(client->CreateTable(d).ok());
  std::vector<float> g(1001, 1.0f);
  ASSERT_TRUE(client->PushDense("dense", 0, g).get().ok());
  std::vector<float> part(300);
  std::vector<float> ones(300, 2.0f);
  ASSERT_TRUE(client->PushDense("dense", 400, ones).get().ok());  // crosses the server split
  std::vector<float> out(1001);
  ASSERT_TRUE(client->PullDense("dense", 0, 1001, out.data()).get().ok());
  for (size_t i = 0; i < out.size(); ++i) {
    float want = 2.0f - 0.5f - (i >= 400 && i < 700 ? 1.0f : 0.0f);
    ASSERT_FLOAT_EQ(out[i], want) << i;
  }
  EXPECT_EQ(client->PullDense("dense", 1000, 2, out.data()).get().code(), Code::kInvalidArgument);
}

TEST(PsServer, LargeDenseRangesGoInPiecesAndComeBackInOrder) {
  Cluster cluster(2);
  auto client = cluster.Connect();
  TableSpec d = Dense("big", 3'000'001);  // 12 MB: several 4 MiB pieces per server
  ASSERT_TRUE(client->CreateTable(d).ok());
  std::vector<float> g(d.length);
  for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(i % 100003);
  ASSERT_TRUE(client->PushDense("big", 0, g).get().ok());
  std::vector<float> out(d.length, -1);
  ASSERT_TRUE(client->PullDense("big", 0, d.length, out.data()).get().ok());
  EXPECT_EQ(out, g);
  std::vector<float> part(2'500'000, -1);
  ASSERT_TRUE(client->PullDense("big", 123'457, part.size(), part.data()).get().ok());
  for (size_t i = 0; i < part.size(); ++i) ASSERT_EQ(part[i], g[123'457 + i]) << i;
}

// A dense table keeps the digest of each 64 KiB block until a push changes the block, so
// pulling an unchanged table again hashes nothing, and a pull after a push hashes only the
// blocks the push touched (a stale digest would fail the pull's checksum).
TEST(PsServer, UnchangedDenseRangesAreNotHashedAgain) {
  Cluster cluster(1, 1);
  auto client = cluster.Connect();
  TableSpec d = Dense("big", 5'000'000);  // 20 MB: five pieces
  ASSERT_TRUE(client->CreateTable(d).ok());
  auto hashed = [&] {
    auto stats = client->Stats();
    EXPECT_TRUE(stats.ok());
    uint64_t n = 0;
    for (auto& sh : (*stats)[0]["shard_stats"]) n += sh["dense_bytes_hashed"].get<uint64_t>();
    return n;
  };
  std::vector<float> out(d.length, -1);
  ASSERT_TRUE(client->PullDense("big", 0, d.length, out.data()).get().ok());
  const uint64_t table_bytes = d.length * sizeof(float);
  EXPECT_EQ(hashed(), table_bytes);
  ASSERT_TRUE(client->PullDense("big", 0, d.length, out.data()).get().ok());
  EXPECT_EQ(hashed(), table_bytes) << "the second pull of an unchanged table hashed it again";
  std::vector<float> ones(d.length, 1.0f);
  ASSERT_TRUE(client->PushDense("big", 0, ones).get().ok());
  ASSERT_TRUE(client->PullDense("big", 0, d.length, out.data()).get().ok());
  EXPECT_EQ(out, ones);
  EXPECT_EQ(hashed(), 2 * table_bytes);
  // One float inside a block, then two floats across a block boundary.
  constexpr uint64_t kBlockFloats = kChecksumBlock / sizeof(float);
  const float two = 2.0f;
  ASSERT_TRUE(client->PushDense("big", 3 * kBlockFloats + 5, std::span<const float>(&two, 1))
                  .get().ok());
  ASSERT_TRUE(client->PullDense("big", 0, d.length, out.data()).get().ok());
  EXPECT_EQ(out[3 * kBlockFloats + 5], 3.0f);
  EXPECT_EQ(hashed(), 2 * table_bytes + kChecksumBlock);
  const float pair[2] = {2.0f, 2.0f};
  ASSERT_TRUE(client->PushDense("big", 7 * kBlockFloats - 1, std::span<const float>(pair, 2))
                  .get().ok());
  ASSERT_TRUE(client->PullDense("big", 0, d.length, out.data()).get().ok());
  EXPECT_EQ(hashed(), 2 * table_bytes + 3 * kChecksumBlock);
  ones[3 * kBlockFloats + 5] = 3.0f;
  ones[7 * kBlockFloats - 1] = ones[7 * kBlockFloats] = 3.0f;
  EXPECT_EQ(out, ones);
}

// Dense pull replies are received straight into the caller's buffer: an odd-sized range that
// starts mid-piece and spans several pieces on both servers fills exactly its floats, whether
// the client checks them as they land or not (ClientOptions::verify_dense_pulls).
TEST(PsServer, DensePullLandsExactlyInTheCallersRange) {
  Cluster cluster(2);
  auto writer = cluster.Connect();
  // 20 MB: each server's part is more than two 4 MiB pieces.
  TableSpec d = Dense("big", 5'000'011);
  ASSERT_TRUE(writer->CreateTable(d).ok());
  std::vector<float> g(d.length);
  for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(i % 1'000'003) + 0.25f;
  ASSERT_TRUE(writer->PushDense("big", 0, g).get().ok());
  for (bool verify : {true, false}) {
    SCOPED_TRACE(verify ? "checked" : "unchecked");
    cluster.client_options.verify_dense_pulls = verify;
    auto client = cluster.Connect();
    const uint64_t offset = 1'048'573, count = 3'500'017;  // crosses pieces and the server split
    constexpr size_t kGuard = 1000;
    std::vector<float> buf(kGuard + count + kGuard, -7.0f);
    ASSERT_TRUE(client->PullDense("big", offset, count, buf.data() + kGuard).get().ok());
    for (size_t i = 0; i < kGuard; ++i) {
      ASSERT_EQ(buf[i], -7.0f) << "before the range, " << i;
      ASSERT_EQ(buf[kGuard + count + i], -7.0f) << "after the range, " << i;
    }
    for (size_t i = 0; i < count; ++i) ASSERT_EQ(buf[kGuard + i], g[offset + i]) << i;
    // Several pulls in flight at once, into neighbouring ranges of one buffer.
    std::vector<float> all(d.length, -1.0f);
    std::vector<std::future<Status>> fs;
    for (uint64_t at = 0; at < d.length; at += 777'777) {
      uint64_t n = std::min<uint64_t>(777'777, d.length - at);
      fs.push_back(client->PullDense("big", at, n, all.data() + at));
    }
    for (auto& f : fs) ASSERT_TRUE(f.get().ok());
    EXPECT_EQ(all, g);
  }
}

// A server that compresses its replies: the client cannot receive those in place and copies
// them in after decompressing.
TEST(PsServer, CompressedDensePullRepliesStillArrive) {
  ServerOptions o;
  o.shards = 2;
  o.compression = net::Compression::kZstd;
  auto server = Server::Start(o);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  ClientOptions co;
  co.servers = {server.value()->address()};
  auto client = Client::Connect(co);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  TableSpec d = Dense("flat", 2'000'003);
  d.init = {InitKind::kConstant, 3.0f, 0, 0};
  ASSERT_TRUE((*client)->CreateTable(d).ok());
  std::vector<float> out(d.length + 1, -1.0f);
  ASSERT_TRUE((*client)->PullDense("flat", 0, d.length, out.data()).get().ok());
  for (size_t i = 0; i < d.length; ++i) ASSERT_EQ(out[i], 3.0f) << i;
  EXPECT_EQ(out[d.length], -1.0f);
}

// Dense pull replies are sent straight from the table's array. A push that arrives while
// they are still being written must not change what they carry (the pull sees the table as
// of its turn, checksums hold) and must itself be applied; dropping the table meanwhile must
// not free what is being sent.
TEST(PsServer, PushOrDropWhileADensePullIsBeingSent) {
  Cluster cluster(1);
  auto client = cluster.Connect();
  TableSpec d = Dense("big", 6'000'001);  // 24 MB: six pieces
  ASSERT_TRUE(client->CreateTable(d).ok());
  std::vector<float> want(d.length);
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<float>(i % 4099);
  ASSERT_TRUE(client->PushDense("big", 0, want).get().ok());
  std::vector<float> ones(d.length, 1.0f), out(d.length);
  for (int round = 0; round < 3; ++round) {
    auto pull = client->PullDense("big", 0, d.length, out.data());
    auto push = client->PushDense("big", 0, ones);  // queued right behind the pull
    ASSERT_TRUE(pull.get().ok());
    ASSERT_TRUE(push.get().ok());
    ASSERT_EQ(out, want) << "round " << round;
    for (float& w : want) w += 1.0f;
  }
  ASSERT_TRUE(client->PullDense("big", 0, d.length, out.data()).get().ok());
  EXPECT_EQ(out, want);

  auto pull = client->PullDense("big", 0, d.length, out.data());
  ASSERT_TRUE(client->DropTable("big").ok());
  Status s = pull.get();  // answered in full or refused, never torn
  if (s.ok()) {
    EXPECT_EQ(out, want);
  }
  ASSERT_TRUE(client->CreateTable(d).ok());
  std::vector<float> small(1000);
  ASSERT_TRUE(client->PullDense("big", 0, small.size(), small.data()).get().ok());
  EXPECT_EQ(small, std::vector<float>(1000, 0.0f));
}

TEST(PsServer, BlobsAndBarrier) {
  Cluster cluster(2);
  auto client = cluster.Connect();
  std::string big(1 << 20, 'q');
  ASSERT_TRUE(client->SetBlob("task/7", big).ok());
  ASSERT_TRUE(client->SetBlob("empty", "").ok());
  EXPECT_EQ(client->GetBlob("task/7").value(), big);
  EXPECT_EQ(client->GetBlob("empty").value(), "");
  ASSERT_TRUE(client->DeleteBlob("task/7").ok());
  EXPECT_EQ(client->GetBlob("task/7").status().code(), Code::kNotFound);

  std::atomic<int> arrived{0};
  std::atomic<int> passed_early{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      auto c = cluster.Connect();
      for (int round = 0; round < 3; ++round) {
        arrived.fetch_add(1);
        ASSERT_TRUE(c->Barrier("step", 3).ok());
        if (arrived.load() < 3 * (round + 1)) passed_early.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(passed_early.load(), 0);
}

// CreateBlob is set-if-absent: of many clients racing for the same keys, exactly one wins each.
TEST(PsServer, CreateBlobHasOneWinnerPerKey) {
  Cluster cluster(2);
  constexpr int kClients = 4, kKeys = 50;
  std::vector<std::vector<int>> won(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      auto c = cluster.Connect();
      for (int k = 0; k < kKeys; ++k) {
        Status st = c->CreateBlob("claim/" + std::to_string(k), std::to_string(i));
        if (st.ok()) won[i].push_back(k);
        else EXPECT_EQ(st.code(), Code::kAlreadyExists) << st.message();
      }
    });
  }
  for (auto& t : threads) t.join();
  auto client = cluster.Connect();
  int total = 0;
  for (int i = 0; i < kClients; ++i) {
    total += static_cast<int>(won[i].size());
    for (int k : won[i]) EXPECT_EQ(client->GetBlob("claim/" + std::to_string(k)).value(), std::to_string(i));
  }
  EXPECT_EQ(total, kKeys);
  EXPECT_EQ(client->CreateBlob("claim/0", "late").code(), Code::kAlreadyExists);
  ASSERT_TRUE(client->DeleteBlob("claim/0").ok());
  EXPECT_TRUE(client->CreateBlob("claim/0", "again").ok());
}

TEST(PsServer, CheckpointRestoresEveryTableAndBlob) {
  std::string dir = (fs::temp_directory_path() / ("overcast-srv-" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  std::vector<uint64_t> keys(2000);
  std::iota(keys.begin(), keys.end(), 0);
  std::vector<float> before(keys.size() * 2), dense_before(64);
  {
    Cluster cluster(2, 2, dir);
    auto client = cluster.Connect();
    TableSpec s = Sparse("emb", 2, OptimizerKind::kAdam);
    s.init = {InitKind::kNormal, 0, 0.1f, 3};
    ASSERT_TRUE(client->CreateTable(s).ok());
    TableSpec d = Dense("bias", 64, OptimizerKind::kAdagrad);
    ASSERT_TRUE(client->CreateTable(d).ok());
    std::vector<float> g(keys.size() * 2, 0.25f), dg(64, -1.0f);
    ASSERT_TRUE(client->Push("emb", keys, g).get().ok());
    ASSERT_TRUE(client->PushDense("bias", 0, dg).get().ok());
    ASSERT_TRUE(client->SetBlob("model/meta", "epoch=3").ok());
    auto infos = client->Checkpoint();
    ASSERT_TRUE(infos.ok()) << infos.status().ToString();
    ASSERT_EQ(infos->size(), 2u);
    ASSERT_TRUE(client->Pull("emb", keys, before.data()).get().ok());
    ASSERT_TRUE(client->PullDense("bias", 0, 64, dense_before.data()).get().ok());
    // Changes after the checkpoint are not in it.
    ASSERT_TRUE(client->Push("emb", keys, g).get().ok());
  }
  // Restore with a different shard count: rows are re-sharded by key.
  Cluster restored(2, 3, dir, true);
  auto client = restored.Connect();
  std::vector<float> after(keys.size() * 2), dense_after(64);
  ASSERT_TRUE(client->Pull("emb", keys, after.data()).get().ok());
  ASSERT_TRUE(client->PullDense("bias", 0, 64, dense_after.data()).get().ok());
  EXPECT_EQ(after, before);
  EXPECT_EQ(dense_after, dense_before);
  EXPECT_EQ(client->GetBlob("model/meta").value(), "epoch=3");
  // Optimizer state came back too: one more identical Adam step moves weights identically.
  fs::remove_all(dir);
}

TEST(PsServer, ManyRequestsInFlightOnOneConnection) {
  Cluster cluster(1);
  auto client = cluster.Connect();
  ASSERT_TRUE(client->CreateTable(Sparse("c", 1)).ok());
  std::vector<uint64_t> keys(100);
  std::iota(keys.begin(), keys.end(), 0);
  std::vector<float> ones(100, 1.0f);
  std::vector<std::future<Status>> inflight;
  for (int i = 0; i < 200; ++i) inflight.push_back(client->Push("c", keys, ones));
  for (auto& f : inflight) ASSERT_TRUE(f.get().ok());
  std::vector<float> out(100);
  ASSERT_TRUE(client->Pull("c", keys, out.data()).get().ok());
  for (float v : out) EXPECT_EQ(v, 200.0f);
}

TEST(PsServer, RefusesNonLoopbackWithoutSecret) {
  ServerOptions o;
  o.listen = "0.0.0.0:0";
  auto s = Server::Start(o);
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
  o.secret = "s3cret";
  auto ok = Server::Start(o);
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST(PsServer, SecretIsCheckedWithHmac) {
  ServerOptions o;
  o.secret = "right";
  auto server = Server::Start(o);
  ASSERT_TRUE(server.ok());
  ClientOptions co;
  co.servers = {server.value()->address()};
  EXPECT_EQ(Client::Connect(co).status().code(), Code::kPermissionDenied);
  co.secret = "wrong";
  EXPECT_EQ(Client::Connect(co).status().code(), Code::kPermissionDenied);
  co.secret = "right";
  auto c = Client::Connect(co);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c.value()->SetBlob("k", "v").ok());
}

TEST(PsServer, ClientChecksServerOrder) {
  Cluster cluster(2);
  ClientOptions swapped = cluster.client_options;
  std::swap(swapped.servers[0], swapped.servers[1]);
  EXPECT_EQ(Client::Connect(swapped).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace overcast::ps
