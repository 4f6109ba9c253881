#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/result.h"
#include "model/job.h"

namespace chronos::node {

// One node's configuration (SPEC §7). Keys follow the Go Chronos YAML.
struct NodeConfig {
  std::string node_id = "node-1";               // cluster.node_id
  std::string data_dir = "./chronos-data";      // cluster.data_dir
  std::string raft_address = "127.0.0.1:7000";  // cluster.raft.address
  std::vector<std::string> raft_peers;          // cluster.raft.peers: id@host:port or host:port
  // cluster.join: API URL of a member (http://host:port). A node whose Raft
  // directory is empty joins that cluster instead of bootstrapping.
  std::string join;
  // Failover (docs/cluster.md "Failover timing"): the survivors notice a
  // dead leader within one to two election timeouts; 400 ms keeps kill →
  // next fired run under a second. The leader's lease is 0.9 × this.
  absl::Duration heartbeat_timeout = absl::Milliseconds(50);  // cluster.raft.heartbeat_timeout
  absl::Duration election_timeout = absl::Milliseconds(400);  // cluster.raft.election_timeout
  unsigned snapshot_threshold = 8192;                         // cluster.raft.snapshot_threshold
  unsigned snapshot_trailing = 2048;                          // cluster.raft.snapshot_trailing
  absl::Duration snapshot_interval = absl::Minutes(30);       // cluster.raft.snapshot_interval
  std::string http_address = "127.0.0.1:8080";                // server.http.address
  unsigned http_threads = 0;                                  // server.http.threads; 0 = cores
  model::MissedRunPolicy missed_run_policy = model::MissedRunPolicy::kExecuteOne;
  absl::Duration tick_interval = absl::Seconds(1);      // scheduler.tick_interval
  absl::Duration execution_timeout = absl::Minutes(5);  // scheduler.execution_timeout
  // dispatcher.*
  unsigned max_concurrent_dispatches = 1000;  // dispatcher.concurrency.max_concurrent_jobs
  unsigned breaker_failure_threshold = 5;     // dispatcher.circuit_breaker.failure_threshold
  absl::Duration breaker_open_duration =
      absl::Seconds(30);                   // dispatcher.circuit_breaker.open_duration
  unsigned breaker_success_threshold = 2;  // dispatcher.circuit_breaker.success_threshold
  // history.* (SPEC §3 retention)
  unsigned history_max_per_job = 1000;                    // history.max_per_job
  absl::Duration history_max_age = absl::Hours(24 * 30);  // history.max_age
  // scheduler.late_grace; unset: sched::default_late_grace(election_timeout)
  std::optional<absl::Duration> late_grace;
  // scheduler.lookahead: starts are committed this far ahead of their fire
  // time and sent at it (DESIGN "precision"); 0 commits at the fire time.
  absl::Duration lookahead = absl::Milliseconds(500);
  std::string log_level = "info";   // logging.level
  std::string log_format = "text";  // logging.format
  std::string auth_type = "none";   // auth.type
};

// Command-line values; unset ones do not override.
struct ConfigFlags {
  std::optional<std::string> config_file;
  std::optional<std::string> node_id;
  std::optional<std::string> data_dir;
  std::optional<std::string> raft_address;
  std::optional<std::string> raft_peers;
  std::optional<std::string> join;
  std::optional<std::string> http_address;
  std::optional<std::string> log_level;
};

// Builds the configuration with precedence flags > environment > file >
// defaults. The file is `flags.config_file`, else $CHRONOS_CONFIG, else none.
// YAML values may use ${VAR} (expanded from `env`; an unset variable is an
// error naming it). Unknown keys, wrong types and bad values are errors whose
// field is the dotted key ("cluster.raft.address").
Result<NodeConfig> load_config(const ConfigFlags& flags,
                               const std::map<std::string, std::string>& env);

// The process environment as a map.
std::map<std::string, std::string> process_env();

}  // namespace chronos::node
