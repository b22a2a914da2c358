// `overcast ps`: run one parameter server until SIGINT or SIGTERM.
#include <malloc.h>
#include <signal.h>

#include <cstdio>
#include <iostream>

#include "common/fs.h"
#include "common/log.h"
#include "net/auth.h"
#include "ps/server.h"
#include "tools/overcast/commands.h"

namespace overcast::cli {
namespace {

struct PsFlags {
  std::string listen = "127.0.0.1:7070";
  uint32_t id = 0;
  uint32_t shards = 0;
  std::string secret_file;
  std::string checkpoint_dir;
  double checkpoint_every = 0;
  int keep = 3;
  std::string restore;
  std::string port_file;
  std::string compress = "none";
  size_t max_frame_mb = 256;
  std::string tcp_congestion = net::kDefaultCongestion;
};

Status RunPs(const PsFlags& f) {
  ps::ServerOptions o;
  o.listen = f.listen;
  o.id = f.id;
  o.shards = f.shards;
  o.checkpoint_dir = f.checkpoint_dir;
  o.checkpoint_every_seconds = f.checkpoint_every;
  o.keep_checkpoints = f.keep;
  o.limits.max_frame_bytes = f.max_frame_mb << 20;
  o.tcp_congestion = f.tcp_congestion;
  o.compression = f.compress == "lz4"    ? net::Compression::kLz4
                  : f.compress == "zstd" ? net::Compression::kZstd
                                         : net::Compression::kNone;
  if (!f.restore.empty()) {
    if (!o.checkpoint_dir.empty() && o.checkpoint_dir != f.restore) {
      return InvalidArgument("--restore and --checkpoint-dir name different directories");
    }
    o.checkpoint_dir = f.restore;
    o.restore = true;
  }
  if (!f.secret_file.empty()) {
    OC_ASSIGN_OR_RETURN(o.secret, net::ReadSecretFile(f.secret_file));
  }
  // Block the stop signals before any thread starts, so only sigwait below receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  // Large reply buffers (a dense pull of megabytes) come and go every request: keep them in
  // the heap instead of mmap/munmap, which would page-fault every byte of each new one.
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  OC_ASSIGN_OR_RETURN(auto server, ps::Server::Start(o));
  spdlog::info("overcast ps {} listening on {}", o.id, server->address());
  std::cout << "listening " << server->address() << std::endl;
  if (!f.port_file.empty()) {
    OC_RETURN_IF_ERROR(WriteFileAtomic(f.port_file, std::to_string(server->port()) + "\n"));
  }
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("signal {}: stopping", sig);
  server->Stop();
  return Status::Ok();
}

}  // namespace

void AddPsCommand(CLI::App& app, CommandContext& ctx) {
  auto flags = std::make_shared<PsFlags>();
  CLI::App* cmd = app.add_subcommand(
      "ps",
      "Run a parameter server: named sparse and dense tables, server-side optimizers, blobs,\n"
      "barriers and checkpoints, sharded over threads. Start several with --id 0..N-1 and give\n"
      "clients the same address list. Stops on SIGINT/SIGTERM.\n"
      "Example: overcast ps --listen 127.0.0.1:7070 --checkpoint-dir /var/lib/ps0 "
      "--checkpoint-every 60");
  cmd->add_option("--listen", flags->listen,
                  "Address to bind (port 0 = any free port); beyond loopback needs --secret-file")
      ->capture_default_str();
  cmd->add_option("--id", flags->id, "This server's position in the clients' server list")
      ->capture_default_str();
  cmd->add_option("--shards", flags->shards, "Shard threads (0 = one per core)")
      ->capture_default_str();
  cmd->add_option("--secret-file", flags->secret_file,
                  "File holding the shared secret clients must prove (HMAC-SHA256)");
  cmd->add_option("--checkpoint-dir", flags->checkpoint_dir, "Directory for checkpoints");
  cmd->add_option("--checkpoint-every", flags->checkpoint_every,
                  "Seconds between automatic checkpoints (0 = only when a client asks)")
      ->capture_default_str();
  cmd->add_option("--keep", flags->keep, "Checkpoints to keep")->capture_default_str();
  cmd->add_option("--restore", flags->restore,
                  "Resume from the newest valid checkpoint in DIR (skipping torn ones); later "
                  "checkpoints go there too");
  cmd->add_option("--port-file", flags->port_file, "Write the bound port to this file");
  cmd->add_option("--compress", flags->compress, "Compress large replies: none, lz4 or zstd")
      ->check(CLI::IsMember({"none", "lz4", "zstd"}))
      ->capture_default_str();
  cmd->add_option("--max-frame-mb", flags->max_frame_mb, "Largest frame accepted, in MiB")
      ->capture_default_str();
  cmd->add_option("--tcp-congestion", flags->tcp_congestion,
                  "TCP congestion control of its connections: auto (reno between two loopback "
                  "addresses, where a pacing algorithm such as BBR only slows bulk replies; the "
                  "kernel's default elsewhere), system (the kernel's default everywhere) or an "
                  "algorithm's name")
      ->capture_default_str();
  cmd->callback([flags, &ctx] { ctx.exit_code = Finish(RunPs(*flags)); });
}

}  // namespace overcast::cli
