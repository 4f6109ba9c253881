// The `chronos` binary: `serve` runs a node; `restore` builds a data directory
// from a backup; `version` prints the version.

#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "base/log.h"
#include "main/restore.h"
#include "node/config.h"
#include "node/node.h"
#include "spdlog/spdlog.h"

#ifndef CHRONOS_VERSION
#define CHRONOS_VERSION "0.0.0"
#endif

namespace {

int serve(const chronos::node::ConfigFlags& flags) {
  auto config = chronos::node::load_config(flags, chronos::node::process_env());
  if (!config.ok()) {
    const auto& e = config.error();
    std::fprintf(stderr, "chronos: invalid configuration: %s%s%s\n", e.field.c_str(),
                 e.field.empty() ? "" : ": ", e.message.c_str());
    return 2;
  }
  if (auto st = chronos::setup_logging(config->log_level, config->log_format); !st.ok()) {
    std::fprintf(stderr, "chronos: invalid configuration: %s: %s\n", st.error().field.c_str(),
                 st.error().message.c_str());
    return 2;
  }

  // Block the shutdown signals before any thread starts so every thread
  // inherits the mask and only sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto node = chronos::node::Node::start(*config);
  if (!node.ok()) {
    spdlog::error("chronos: failed to start: {}{}{}", node.error().field,
                  node.error().field.empty() ? "" : ": ", node.error().message);
    return 1;
  }
  spdlog::info("Chronos {} node {} ready: API at {} (raft {}, data {})", CHRONOS_VERSION,
               config->node_id, (*node)->url(), config->raft_address, config->data_dir);

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("chronos: received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*node)->stop();
  spdlog::info("chronos: stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Chronos: a distributed cron"};
  app.require_subcommand(1);

  chronos::node::ConfigFlags flags;
  auto* serve_cmd = app.add_subcommand("serve", "Run a Chronos node");
  serve_cmd->add_option("-c,--config", flags.config_file, "YAML configuration file");
  serve_cmd->add_option("--node-id", flags.node_id, "This node's id (cluster.node_id)");
  serve_cmd->add_option("--data-dir", flags.data_dir, "Data directory (cluster.data_dir)");
  serve_cmd->add_option("--raft-address", flags.raft_address,
                        "Raft host:port (cluster.raft.address)");
  serve_cmd->add_option("--raft-peers", flags.raft_peers,
                        "Initial voters, comma-separated id@host:port (cluster.raft.peers)");
  serve_cmd->add_option(
      "--join", flags.join,
      "API URL of a cluster member to join (cluster.join), e.g. http://10.0.0.1:8080");
  serve_cmd->add_option("--http-address", flags.http_address,
                        "API host:port (server.http.address)");
  serve_cmd->add_option("--log-level", flags.log_level, "trace|debug|info|warn|error");

  std::string restore_file;
  std::string restore_data_dir;
  auto* restore_cmd = app.add_subcommand(
      "restore", "Build a data directory for a new single-node cluster from a backup");
  restore_cmd->add_option("FILE", restore_file, "Backup image (GET /api/v1/cluster/backup)")
      ->required();
  restore_cmd
      ->add_option("--data-dir", restore_data_dir, "Data directory to build (absent or empty)")
      ->required();

  app.add_subcommand("version", "Print the version");

  CLI11_PARSE(app, argc, argv);

  if (app.got_subcommand("version")) {
    std::cout << "chronos " << CHRONOS_VERSION << "\n";
    return 0;
  }
  if (app.got_subcommand("restore")) {
    return chronos::cli::run_restore(restore_file, restore_data_dir);
  }
  return serve(flags);
}
