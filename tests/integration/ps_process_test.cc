// Real `overcast ps` processes over real TCP: sums, kills, restores, hostile bytes, secrets.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/wait.h>

#include <asio.hpp>
#include <atomic>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <numeric>
#include <random>
#include <thread>

#include "common/fs.h"
#include "net/connection.h"
#include "ps/client.h"
#include "ps/protocol.h"
#include "tests/integration/cli_run.h"
#include "tests/integration/subprocess.h"

namespace overcast {
namespace {
using testing::CliRun;
using testing::OvercastBin;
using testing::RunOvercast;
using testing::Subprocess;
using testing::TempPath;
using testing::WaitForPortFile;

struct PsProcess {
  std::unique_ptr<Subprocess> proc;
  std::string address, log;
  int port = -1;
};

PsProcess StartPs(const std::string& name, std::vector<std::string> extra,
                  const std::string& listen = "127.0.0.1:0") {
  PsProcess p;
  std::string dir = TempPath(name);
  std::filesystem::create_directories(dir);
  std::string port_file = dir + "/port";
  p.log = dir + "/log";
  std::vector<std::string> args = {OvercastBin(), "ps", "--listen", listen, "--port-file",
                                   port_file};
  args.insert(args.end(), extra.begin(), extra.end());
  p.proc = std::make_unique<Subprocess>(args, p.log);
  p.port = WaitForPortFile(port_file);
  p.address = "127.0.0.1:" + std::to_string(p.port);
  return p;
}

std::unique_ptr<ps::Client> Connect(std::vector<std::string> servers, std::string secret = "") {
  ps::ClientOptions o;
  o.servers = std::move(servers);
  o.secret = std::move(secret);
  auto c = ps::Client::Connect(o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

ps::TableSpec AddTable(const std::string& name, uint32_t dim) {
  ps::TableSpec s;
  s.name = name;
  s.dim = dim;
  s.optimizer.kind = ps::OptimizerKind::kAdd;
  return s;
}

TEST(PsProcess, TwoServersFourClientsPushesSumExactly) {
  PsProcess a = StartPs("sum0", {"--id", "0"});
  PsProcess b = StartPs("sum1", {"--id", "1"});
  ASSERT_GT(a.port, 0);
  ASSERT_GT(b.port, 0);
  std::vector<std::string> servers = {a.address, b.address};
  auto setup = Connect(servers);
  ASSERT_TRUE(setup->CreateTable(AddTable("w", 2)).ok());
  const int kClients = 4, kRounds = 50;
  const size_t kKeys = 3000;
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      auto client = Connect(servers);
      ASSERT_TRUE(client);
      std::vector<uint64_t> keys(kKeys);
      std::iota(keys.begin(), keys.end(), uint64_t{1} << 40);
      std::vector<float> g(kKeys * 2);
      for (size_t i = 0; i < kKeys; ++i) {
        g[2 * i] = 1.0f;
        g[2 * i + 1] = static_cast<float>(c + 1);  // exact in float: sums stay small integers
      }
      std::vector<std::future<Status>> inflight;
      for (int r = 0; r < kRounds; ++r) {
        inflight.push_back(client->Push("w", keys, g));
        if (inflight.size() >= 8) {
          ASSERT_TRUE(inflight.front().get().ok());
          inflight.erase(inflight.begin());
        }
      }
      for (auto& f : inflight) ASSERT_TRUE(f.get().ok());
    });
  }
  for (auto& t : threads) t.join();
  std::vector<uint64_t> keys(kKeys);
  std::iota(keys.begin(), keys.end(), uint64_t{1} << 40);
  std::vector<float> out(kKeys * 2);
  ASSERT_TRUE(setup->Pull("w", keys, out.data()).get().ok());
  for (size_t i = 0; i < kKeys; ++i) {
    ASSERT_EQ(out[2 * i], kClients * kRounds);
    ASSERT_EQ(out[2 * i + 1], kRounds * (1 + 2 + 3 + 4));
  }
  auto stats = setup->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[0]["rows"].get<uint64_t>() + (*stats)[1]["rows"].get<uint64_t>(), kKeys);
}

TEST(PsProcess, ClientReconnectsToARestartedServer) {
  std::string ckpt = TempPath("reconnect-ckpt");
  PsProcess p = StartPs("reconnect", {"--checkpoint-dir", ckpt});
  ASSERT_GT(p.port, 0);
  auto client = Connect({p.address});
  ASSERT_TRUE(client->CreateTable(AddTable("t", 1)).ok());
  std::vector<uint64_t> keys = {5};
  std::vector<float> g = {2}, out(1);
  ASSERT_TRUE(client->Push("t", keys, g).get().ok());
  ASSERT_TRUE(client->Checkpoint().ok());
  p.proc->Signal(SIGKILL);
  p.proc->Wait();
  EXPECT_EQ(client->Push("t", keys, g).get().code(), Code::kUnavailable);
  EXPECT_EQ(client->Reconnect().code(), Code::kUnavailable) << "nothing listens yet";
  // The same port again, restored from the checkpoint.
  PsProcess again = StartPs("reconnect2", {"--restore", ckpt},
                            "127.0.0.1:" + std::to_string(p.port));
  ASSERT_EQ(again.port, p.port);
  ASSERT_TRUE(client->Reconnect().ok());
  ASSERT_TRUE(client->Pull("t", keys, out.data()).get().ok());
  EXPECT_EQ(out[0], 2.0f);
}

TEST(PsProcess, SigkillThenRestoreGivesTheLastCheckpoint) {
  std::string ckpt = TempPath("ckpt");
  std::vector<uint64_t> keys(10000);
  std::iota(keys.begin(), keys.end(), 0);
  std::vector<float> at_checkpoint(keys.size() * 4);
  {
    PsProcess p = StartPs("kill", {"--checkpoint-dir", ckpt, "--shards", "2"});
    ASSERT_GT(p.port, 0);
    auto client = Connect({p.address});
    ps::TableSpec s = AddTable("emb", 4);
    s.optimizer.kind = ps::OptimizerKind::kAdagrad;
    s.init = {ps::InitKind::kUniform, -1, 1, 11};
    ASSERT_TRUE(client->CreateTable(s).ok());
    std::vector<float> g(keys.size() * 4, 0.5f);
    ASSERT_TRUE(client->Push("emb", keys, g).get().ok());
    ASSERT_TRUE(client->SetBlob("progress", "epoch 1").ok());
    ASSERT_TRUE(client->Checkpoint().ok());
    ASSERT_TRUE(client->Pull("emb", keys, at_checkpoint.data()).get().ok());
    ASSERT_TRUE(client->Push("emb", keys, g).get().ok());  // lost with the kill
    ASSERT_TRUE(client->SetBlob("progress", "epoch 2").ok());
    p.proc->Signal(SIGKILL);
    EXPECT_EQ(p.proc->Wait(), 128 + SIGKILL);
  }
  PsProcess r = StartPs("restore", {"--restore", ckpt, "--shards", "3"});
  ASSERT_GT(r.port, 0);
  auto client = Connect({r.address});
  std::vector<float> out(keys.size() * 4);
  ASSERT_TRUE(client->Pull("emb", keys, out.data()).get().ok());
  EXPECT_EQ(out, at_checkpoint);
  EXPECT_EQ(client->GetBlob("progress").value(), "epoch 1");
  EXPECT_NE(testing::ReadAll(r.log).find("restored checkpoint"), std::string::npos);

  // A newer checkpoint that is torn is skipped, with a log line saying so.
  auto infos = client->Checkpoint();
  ASSERT_TRUE(infos.ok());
  std::string newest = (*infos)[0].path;
  std::filesystem::resize_file(newest + "/shard-0.bin", 10);
  r.proc->Signal(SIGKILL);
  r.proc->Wait();
  PsProcess again = StartPs("restore2", {"--restore", ckpt});
  ASSERT_GT(again.port, 0);
  auto c2 = Connect({again.address});
  ASSERT_TRUE(c2->Pull("emb", keys, out.data()).get().ok());
  EXPECT_EQ(out, at_checkpoint);
  std::string log = testing::ReadAll(again.log);
  EXPECT_NE(log.find("skipping torn checkpoint " + newest), std::string::npos) << log;
}

// Opens a raw TCP connection and writes bytes, optionally after a valid handshake.
void SendRaw(int port, const std::string& bytes, bool handshake) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  std::error_code ec;
  if (handshake) {
    uint32_t id;
    auto sock = net::ConnectAndHandshake(io, "127.0.0.1:" + std::to_string(port), {}, &id);
    ASSERT_TRUE(sock.ok());
    s = std::move(sock).value();
  } else {
    s.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)}, ec);
    ASSERT_FALSE(ec);
  }
  asio::write(s, asio::buffer(bytes), ec);
  // Hang up our side, then read until the server closes (or two seconds pass).
  ::shutdown(s.native_handle(), SHUT_WR);
  char buf[4096];
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{s.native_handle(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    if (::recv(s.native_handle(), buf, sizeof(buf), 0) <= 0) break;
  }
}

TEST(PsProcess, HostileBytesCloseOnlyThatConnection) {
  PsProcess p = StartPs("hostile", {});
  ASSERT_GT(p.port, 0);
  auto good = Connect({p.address});
  ASSERT_TRUE(good->CreateTable(AddTable("t", 1)).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, rounds{0};
  std::thread worker([&] {
    std::vector<uint64_t> keys = {1, 2, 3};
    std::vector<float> g = {1, 1, 1};
    while (!stop) {
      if (!good->Push("t", keys, g).get().ok()) failures++;
      rounds++;
    }
  });
  std::string valid = net::MakeFrame(ps::kStats, 1, "");
  std::vector<std::pair<std::string, bool>> attacks = {
      {std::string(1000, '\xAB'), false},          // garbage before the handshake
      {valid.substr(0, 20), true},                   // half a header, then hang up
      {net::MakeFrame(ps::kStats, 9, "abcdef").substr(0, 35), true},  // payload cut short
      {net::MakeFrame(ps::kPull, 2, std::string(5, 'x')), true},  // unparseable payload
      {net::MakeFrame(200, 3, "hi"), true},          // unknown type
      {net::MakeFrame(ps::kStats, 4, ""), false},   // request before authenticating
  };
  // A header announcing a 4 GiB payload.
  std::string huge = valid;
  uint32_t len = 0xFFFFFFF0u;
  std::memcpy(huge.data() + 16, &len, 4);
  attacks.push_back({huge, true});
  // Random bytes after a valid handshake, many times.
  std::mt19937 rng(1);
  for (int i = 0; i < 20; ++i) {
    std::string junk(1 + rng() % 300, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    attacks.push_back({junk, true});
  }
  for (auto& [bytes, handshake] : attacks) SendRaw(p.port, bytes, handshake);
  stop = true;
  worker.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(rounds.load(), 0);
  EXPECT_TRUE(p.proc->Alive());
  // A fresh client still works, and the pushes all landed.
  auto after = Connect({p.address});
  std::vector<uint64_t> keys = {1};
  std::vector<float> out(1);
  ASSERT_TRUE(after->Pull("t", keys, out.data()).get().ok());
  EXPECT_EQ(out[0], static_cast<float>(rounds.load()));
  EXPECT_NE(testing::ReadAll(p.log).find("closing connection"), std::string::npos);
}

TEST(PsProcess, AnUnknownCongestionControlIsRefusedAtStart) {
  std::string dir = TempPath("congestion");
  std::filesystem::create_directories(dir);
  Subprocess refused({OvercastBin(), "ps", "--listen", "127.0.0.1:0", "--tcp-congestion",
                      "no-such-algorithm"},
                     dir + "/refused.log");
  EXPECT_EQ(refused.Wait(), 2);
  const std::string log = testing::ReadAll(dir + "/refused.log");
  EXPECT_NE(log.find("--tcp-congestion 'no-such-algorithm'"), std::string::npos) << log;
  EXPECT_NE(log.find("reno"), std::string::npos) << log;
  // A server with an explicit algorithm serves as usual.
  PsProcess p = StartPs("reno-ps", {"--tcp-congestion", "reno"});
  ASSERT_GT(p.port, 0);
  auto c = Connect({p.address});
  ASSERT_TRUE(c->CreateTable(AddTable("t", 1)).ok());
}

TEST(PsProcess, NonLoopbackNeedsASecretAndAWrongSecretIsRefused) {
  std::string dir = TempPath("secret");
  std::filesystem::create_directories(dir);
  Subprocess refused({OvercastBin(), "ps", "--listen", "0.0.0.0:0"}, dir + "/refused.log");
  EXPECT_EQ(refused.Wait(), 2);
  EXPECT_NE(testing::ReadAll(dir + "/refused.log").find("without a shared secret"),
            std::string::npos);

  ASSERT_TRUE(WriteFileAtomic(dir + "/secret", "correct horse\n").ok());
  PsProcess p = StartPs("secret-ps", {"--secret-file", dir + "/secret"}, "0.0.0.0:0");
  ASSERT_GT(p.port, 0);
  std::string addr = "127.0.0.1:" + std::to_string(p.port);
  ps::ClientOptions o;
  o.servers = {addr};
  o.secret = "battery staple";
  EXPECT_EQ(ps::Client::Connect(o).status().code(), Code::kPermissionDenied);
  o.secret = "";
  EXPECT_EQ(ps::Client::Connect(o).status().code(), Code::kPermissionDenied);
  auto ok = Connect({addr}, "correct horse");
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->SetBlob("a", "b").ok());
}

// `overcast ps-admin` against two real servers: each table's rows over both, a checkpoint on
// each, and the errors a user meets (no checkpoint directory, nothing listening, a bad list).
TEST(PsProcess, AdminCommandReportsTablesAndWritesCheckpoints) {
  const std::string dir = TempPath("admin");
  std::filesystem::create_directories(dir);
  const std::string ck0 = dir + "/ck0", ck1 = dir + "/ck1";
  PsProcess a = StartPs("admin0", {"--id", "0", "--checkpoint-dir", ck0});
  PsProcess b = StartPs("admin1", {"--id", "1", "--checkpoint-dir", ck1});
  ASSERT_GT(a.port, 0);
  ASSERT_GT(b.port, 0);
  const std::string both = a.address + "," + b.address;
  auto client = Connect({a.address, b.address});
  ASSERT_TRUE(client->CreateTable(AddTable("w", 2)).ok());
  std::vector<uint64_t> keys(3000);
  std::iota(keys.begin(), keys.end(), 7);
  std::vector<float> g(keys.size() * 2, 1.0f);
  ASSERT_TRUE(client->Push("w", keys, g).get().ok());
  ps::TableSpec dense;
  dense.name = "d";
  dense.kind = ps::TableKind::kDense;
  dense.length = 1000;
  ASSERT_TRUE(client->CreateTable(dense).ok());
  ASSERT_TRUE(client->SetBlob("note", "hello").ok());

  CliRun stats = RunOvercast(dir, {"ps-admin", "stats", "--ps", both, "--json"});
  ASSERT_EQ(stats.exit, 0) << stats.log;
  const nlohmann::json& j = stats.result;
  ASSERT_EQ(j["servers"].size(), 2u) << stats.log;
  EXPECT_EQ(j["servers"][0]["address"], a.address);
  EXPECT_EQ(j["servers"][1]["server_id"], 1);
  EXPECT_EQ(j["tables"]["w"]["kind"], "sparse");
  EXPECT_EQ(j["tables"]["w"]["rows"], 3000);  // keys spread over both servers, summed
  EXPECT_EQ(j["tables"]["d"]["kind"], "dense");
  EXPECT_EQ(j["tables"]["d"]["rows"], 1000);
  EXPECT_GE(j["tables"]["d"]["bytes"].get<uint64_t>(), 1000 * sizeof(float));
  EXPECT_EQ(j["blobs"], 1);
  CliRun text = RunOvercast(dir, {"ps-admin", "stats", "--ps", both});
  ASSERT_EQ(text.exit, 0) << text.log;
  EXPECT_NE(text.log.find("server 1 at " + b.address), std::string::npos) << text.log;
  EXPECT_NE(text.log.find("sparse"), std::string::npos) << text.log;

  CliRun ck = RunOvercast(dir, {"ps-admin", "checkpoint", "--ps", both, "--json"});
  ASSERT_EQ(ck.exit, 0) << ck.log;
  ASSERT_EQ(ck.result["checkpoints"].size(), 2u) << ck.log;
  for (int i = 0; i < 2; ++i) {
    const std::string path = ck.result["checkpoints"][i]["path"];
    EXPECT_EQ(path.rfind(i == 0 ? ck0 : ck1, 0), 0u) << path;
    EXPECT_TRUE(std::filesystem::exists(path + "/MANIFEST.json")) << path;
    EXPECT_GE(ck.result["checkpoints"][i]["seq"].get<uint64_t>(), 1u);
  }
  // The checkpoint restores what stats counted.
  a.proc->Signal(SIGKILL);
  a.proc->Wait();
  PsProcess r = StartPs("admin0r", {"--id", "0", "--restore", ck0});
  ASSERT_GT(r.port, 0);
  CliRun after = RunOvercast(dir, {"ps-admin", "stats", "--ps", r.address + "," + b.address,
                                   "--json"});
  ASSERT_EQ(after.exit, 0) << after.log;
  EXPECT_EQ(after.result["tables"], j["tables"]) << after.log;

  PsProcess none = StartPs("admin-none", {});
  ASSERT_GT(none.port, 0);
  CliRun refused = RunOvercast(dir, {"ps-admin", "checkpoint", "--ps", none.address});
  EXPECT_EQ(refused.exit, 2) << refused.log;
  EXPECT_NE(refused.log.find("no checkpoint directory"), std::string::npos) << refused.log;
  none.proc->Signal(SIGTERM);
  EXPECT_EQ(none.proc->Wait(), 0);
  CliRun gone = RunOvercast(dir, {"ps-admin", "stats", "--ps", none.address});
  EXPECT_EQ(gone.exit, 1) << gone.log;
  EXPECT_NE(gone.log.find("connect " + none.address), std::string::npos) << gone.log;
  CliRun bad = RunOvercast(dir, {"ps-admin", "stats", "--ps", "nonsense"});
  EXPECT_EQ(bad.exit, 2) << bad.log;
  EXPECT_NE(bad.log.find("HOST:PORT"), std::string::npos) << bad.log;
}

// A stats call with a deadline gives up on a server that stops answering after the connection
// was made (SIGSTOP: the kernel keeps the connection, nothing replies), instead of waiting for
// ever; the connection serves again once the server goes on, the late reply dropped.
TEST(PsProcess, StatsWithADeadlineGiveUpOnAStoppedServer) {
  PsProcess p = StartPs("stopped", {});
  ASSERT_GT(p.port, 0);
  auto client = Connect({p.address});
  ASSERT_TRUE(client->Stats(5000).ok());
  p.proc->Signal(SIGSTOP);
  // kill() returns before every thread of the server has stopped: wait until the stop is whole,
  // or a thread still running could answer.
  int st = 0;
  ASSERT_EQ(::waitpid(p.proc->pid(), &st, WUNTRACED), p.proc->pid());
  ASSERT_TRUE(WIFSTOPPED(st));
  // Woken 2 s later in any case, so that a call that ignored its deadline would come back
  // with the server's answer (and fail below) rather than hang the test.
  std::thread wake([&] {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    p.proc->Signal(SIGCONT);
  });
  auto stalled = client->Stats(300);
  wake.join();
  ASSERT_FALSE(stalled.ok());
  EXPECT_EQ(stalled.status().code(), Code::kUnavailable);
  EXPECT_EQ(stalled.status().message(), p.address + ": no answer within 300 ms");
  auto again = client->Stats(5000);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)[0]["server_id"], 0);
}

}  // namespace
}  // namespace overcast
