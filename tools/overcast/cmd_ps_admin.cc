// `overcast ps-admin`: ask running parameter servers for their stats, or for a checkpoint.
#include <cstdio>
#include <iostream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "net/auth.h"
#include "ps/client.h"
#include "tools/overcast/commands.h"

namespace overcast::cli {
namespace {

struct PsAdminFlags {
  std::string action;
  std::string ps;
  std::string secret_file;
  double timeout_s = 5;
  bool json = false;
};

std::string Bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.1f} {}", b, units[u]);
}

// The servers' stats as one object: each server's own (with its address), and every table's
// rows and bytes summed over the shards and servers that hold a part of it.
nlohmann::json Summarize(const nlohmann::json& per_server, const std::vector<std::string>& ps) {
  nlohmann::json out;
  out["servers"] = nlohmann::json::array();
  std::map<std::string, nlohmann::json> tables;
  uint64_t blobs = 0, blob_bytes = 0;
  for (size_t i = 0; i < per_server.size(); ++i) {
    nlohmann::json s = per_server[i];
    s["address"] = ps[i];
    const nlohmann::json shards = s.value("shard_stats", nlohmann::json::array());
    for (const auto& shard : shards) {
      blobs += shard.value("blobs", uint64_t{0});
      blob_bytes += shard.value("blob_bytes", uint64_t{0});
      const nlohmann::json parts = shard.value("tables", nlohmann::json::object());
      for (const auto& [name, t] : parts.items()) {
        nlohmann::json& sum = tables[name];
        if (sum.is_null()) sum = {{"kind", t.value("kind", "")}, {"rows", 0}, {"bytes", 0}};
        sum["rows"] = sum["rows"].get<uint64_t>() + t.value("rows", uint64_t{0});
        sum["bytes"] = sum["bytes"].get<uint64_t>() + t.value("bytes", uint64_t{0});
      }
    }
    out["servers"].push_back(std::move(s));
  }
  out["tables"] = nlohmann::json::object();
  for (auto& [name, t] : tables) out["tables"][name] = std::move(t);
  out["blobs"] = blobs;
  out["blob_bytes"] = blob_bytes;
  return out;
}

void PrintStats(const nlohmann::json& s) {
  for (const auto& v : s["servers"]) {
    std::printf("server %u at %s: up %.0f s, shards %u, connections %zu, requests %llu, "
                "bad frames %llu, resident %s, last checkpoint %llu\n",
                v.value("server_id", 0u), v.value("address", "").c_str(),
                v.value("uptime_seconds", 0.0), v.value("shards", 0u),
                v.value("connections", size_t{0}),
                static_cast<unsigned long long>(v.value("requests", uint64_t{0})),
                static_cast<unsigned long long>(v.value("bad_frames", uint64_t{0})),
                Bytes(v.value("resident_bytes", 0.0)).c_str(),
                static_cast<unsigned long long>(v.value("checkpoint_seq", uint64_t{0})));
  }
  if (s["tables"].empty()) {
    std::printf("no tables\n");
  } else {
    std::printf("%-24s %-7s %14s %12s\n", "table", "kind", "rows", "memory");
    for (const auto& [name, t] : s["tables"].items()) {
      std::printf("%-24s %-7s %14llu %12s\n", name.c_str(), t["kind"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(t["rows"].get<uint64_t>()),
                  Bytes(t["bytes"].get<double>()).c_str());
    }
  }
  std::printf("blobs: %llu, %s\n", static_cast<unsigned long long>(s["blobs"].get<uint64_t>()),
              Bytes(s["blob_bytes"].get<double>()).c_str());
}

Status RunPsAdmin(const PsAdminFlags& f) {
  ps::ClientOptions o;
  o.servers = SplitList(f.ps);
  if (o.servers.empty()) return InvalidArgument("--ps names no server (expected host:port,...)");
  o.timeout_ms = static_cast<int>(f.timeout_s * 1000);
  if (!f.secret_file.empty()) {
    OC_ASSIGN_OR_RETURN(o.secret, net::ReadSecretFile(f.secret_file));
  }
  OC_ASSIGN_OR_RETURN(auto client, ps::Client::Connect(o));
  if (f.action == "stats") {
    OC_ASSIGN_OR_RETURN(nlohmann::json per_server, client->Stats(o.timeout_ms));
    const nlohmann::json s = Summarize(per_server, o.servers);
    if (f.json) {
      std::cout << s.dump() << std::endl;
    } else {
      PrintStats(s);
    }
    return Status::Ok();
  }
  // checkpoint
  OC_ASSIGN_OR_RETURN(auto written, client->Checkpoint());
  nlohmann::json all = nlohmann::json::array();
  for (size_t i = 0; i < written.size(); ++i) {
    all.push_back({{"server_id", i},
                   {"address", o.servers[i]},
                   {"seq", written[i].seq},
                   {"path", written[i].path},
                   {"bytes", written[i].bytes}});
    if (!f.json) {
      std::printf("server %zu at %s: checkpoint %llu, %s in %s\n", i, o.servers[i].c_str(),
                  static_cast<unsigned long long>(written[i].seq),
                  Bytes(static_cast<double>(written[i].bytes)).c_str(), written[i].path.c_str());
    }
  }
  if (f.json) std::cout << nlohmann::json{{"checkpoints", all}}.dump() << std::endl;
  return Status::Ok();
}

}  // namespace

void AddPsAdminCommand(CLI::App& app, CommandContext& ctx) {
  auto f = std::make_shared<PsAdminFlags>();
  CLI::App* cmd = app.add_subcommand(
      "ps-admin",
      "Ask running parameter servers (overcast ps) what they hold, or to write a checkpoint.\n"
      "  stats       each server's uptime, connections, requests, bad frames, resident memory\n"
      "              and last checkpoint; each table's kind, rows and memory over all servers\n"
      "  checkpoint  a consistent checkpoint on every server now (each needs --checkpoint-dir);\n"
      "              prints where each went\n"
      "Exit status 1 when a server cannot be reached or refuses, 2 for bad usage.\n"
      "Example: overcast ps-admin stats --ps 127.0.0.1:7070,127.0.0.1:7071");
  cmd->add_option("action", f->action, "stats or checkpoint")
      ->required()
      ->check(CLI::IsMember({"stats", "checkpoint"}));
  cmd->add_option("--ps", f->ps, "The parameter servers (host:port,...), in --id order")
      ->required();
  cmd->add_option("--secret-file", f->secret_file, "Shared secret of the servers");
  cmd->add_option("--timeout-s", f->timeout_s,
                  "Seconds to connect to each server, and for each to answer stats (a "
                  "checkpoint takes as long as writing it takes)")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "Print one JSON object instead of the text");
  cmd->callback([f, &ctx] { ctx.exit_code = Finish(RunPsAdmin(*f)); });
}

}  // namespace overcast::cli
