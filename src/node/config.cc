#include "node/config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "absl/strings/strip.h"
#include "base/duration.h"
#include "base/strings.h"

extern char** environ;

namespace chronos::node {
namespace {

// Replaces ${VAR} with its value from `env`. "$${" escapes a literal "${".
Result<std::string> expand_vars(std::string_view text,
                                const std::map<std::string, std::string>& env) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") == 0) {
      size_t end = text.find('}', i + 2);
      if (end == std::string_view::npos) {
        return Error::validation("config", "unterminated ${ in configuration file");
      }
      std::string name(text.substr(i + 2, end - i - 2));
      auto it = env.find(name);
      if (it == env.end()) {
        return Error::validation("config", str_cat("environment variable ", name,
                                                   " used in the configuration is not set"));
      }
      out += it->second;
      i = end + 1;
      continue;
    }
    out.push_back(text[i++]);
  }
  return out;
}

using Setter = std::function<Status(NodeConfig&, const std::string& value)>;

Status set_string(std::string& target, const std::string& v) {
  target = v;
  return ok_status();
}

Setter string_field(std::string NodeConfig::*member) {
  return [member](NodeConfig& c, const std::string& v) { return set_string(c.*member, v); };
}

Setter duration_field(absl::Duration NodeConfig::*member, std::string key) {
  return [member, key](NodeConfig& c, const std::string& v) -> Status {
    auto d = parse_duration(v);
    if (!d.ok()) return Error::validation(key, d.error().message);
    c.*member = *d;
    return ok_status();
  };
}

Setter unsigned_field(unsigned NodeConfig::*member, std::string key) {
  return [member, key](NodeConfig& c, const std::string& v) -> Status {
    uint32_t n = 0;
    if (!parse_int(v, &n)) return Error::validation(key, "must be a non-negative integer");
    c.*member = n;
    return ok_status();
  };
}

Status set_peers(NodeConfig& c, const std::string& v) {
  c.raft_peers.clear();
  for (auto p : split_skip_empty(v, ',')) {
    std::string peer(absl::StripAsciiWhitespace(std::string(p)));
    if (!peer.empty()) c.raft_peers.push_back(std::move(peer));
  }
  return ok_status();
}

Status set_missed_run_policy(NodeConfig& c, const std::string& v) {
  auto policy = model::parse_missed_run_policy(v);
  if (!policy) {
    return Error::validation("scheduler.missed_run_policy",
                             "must be one of ignore, execute_one, execute_all");
  }
  c.missed_run_policy = *policy;
  return ok_status();
}

const std::map<std::string, Setter>& setters() {
  static const auto* table = new std::map<std::string, Setter>{
      {"cluster.node_id", string_field(&NodeConfig::node_id)},
      {"cluster.data_dir", string_field(&NodeConfig::data_dir)},
      {"cluster.raft.address", string_field(&NodeConfig::raft_address)},
      {"cluster.raft.peers", set_peers},
      {"cluster.join", string_field(&NodeConfig::join)},
      {"cluster.raft.heartbeat_timeout",
       duration_field(&NodeConfig::heartbeat_timeout, "cluster.raft.heartbeat_timeout")},
      {"cluster.raft.election_timeout",
       duration_field(&NodeConfig::election_timeout, "cluster.raft.election_timeout")},
      {"cluster.raft.snapshot_threshold",
       unsigned_field(&NodeConfig::snapshot_threshold, "cluster.raft.snapshot_threshold")},
      {"cluster.raft.snapshot_trailing",
       unsigned_field(&NodeConfig::snapshot_trailing, "cluster.raft.snapshot_trailing")},
      {"cluster.raft.snapshot_interval",
       duration_field(&NodeConfig::snapshot_interval, "cluster.raft.snapshot_interval")},
      {"server.http.address", string_field(&NodeConfig::http_address)},
      {"server.http.threads", unsigned_field(&NodeConfig::http_threads, "server.http.threads")},
      {"scheduler.tick_interval",
       duration_field(&NodeConfig::tick_interval, "scheduler.tick_interval")},
      {"scheduler.execution_timeout",
       duration_field(&NodeConfig::execution_timeout, "scheduler.execution_timeout")},
      {"scheduler.missed_run_policy", set_missed_run_policy},
      {"scheduler.late_grace",
       [](NodeConfig& c, const std::string& v) -> Status {
         auto d = parse_duration(v);
         if (!d.ok()) return Error::validation("scheduler.late_grace", d.error().message);
         c.late_grace = *d;
         return ok_status();
       }},
      {"scheduler.lookahead", duration_field(&NodeConfig::lookahead, "scheduler.lookahead")},
      {"dispatcher.concurrency.max_concurrent_jobs",
       unsigned_field(&NodeConfig::max_concurrent_dispatches,
                      "dispatcher.concurrency.max_concurrent_jobs")},
      {"dispatcher.circuit_breaker.failure_threshold",
       unsigned_field(&NodeConfig::breaker_failure_threshold,
                      "dispatcher.circuit_breaker.failure_threshold")},
      {"dispatcher.circuit_breaker.open_duration",
       duration_field(&NodeConfig::breaker_open_duration,
                      "dispatcher.circuit_breaker.open_duration")},
      {"dispatcher.circuit_breaker.success_threshold",
       unsigned_field(&NodeConfig::breaker_success_threshold,
                      "dispatcher.circuit_breaker.success_threshold")},
      {"history.max_per_job",
       unsigned_field(&NodeConfig::history_max_per_job, "history.max_per_job")},
      {"history.max_age", duration_field(&NodeConfig::history_max_age, "history.max_age")},
      {"logging.level", string_field(&NodeConfig::log_level)},
      {"logging.format", string_field(&NodeConfig::log_format)},
      {"auth.type", string_field(&NodeConfig::auth_type)},
  };
  return *table;
}

// Go Chronos keys this version does not interpret (other dispatcher
// settings, metrics); accepted so its config files load.
bool is_reserved_section(const std::string& key) {
  return key.rfind("dispatcher.", 0) == 0 || key.rfind("metrics.", 0) == 0;
}

Status apply_key(NodeConfig& c, const std::string& key, const std::string& value) {
  auto it = setters().find(key);
  if (it == setters().end()) {
    if (is_reserved_section(key)) return ok_status();
    return Error::validation(key, str_cat("unknown configuration key \"", key, "\""));
  }
  return it->second(c, value);
}

// Walks the YAML tree, applying every scalar leaf as "a.b.c" = value.
Status apply_yaml(NodeConfig& c, const YAML::Node& node, const std::string& prefix) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      std::string key = kv.first.as<std::string>();
      CHRONOS_RETURN_IF_ERROR(
          apply_yaml(c, kv.second, prefix.empty() ? key : str_cat(prefix, ".", key)));
    }
    return ok_status();
  }
  if (node.IsSequence()) {
    // Only lists of scalars exist in the schema (cluster.raft.peers).
    std::string joined;
    for (const auto& item : node) {
      if (!item.IsScalar()) return Error::validation(prefix, "must be a list of strings");
      if (!joined.empty()) joined += ",";
      joined += item.as<std::string>();
    }
    return apply_key(c, prefix, joined);
  }
  if (node.IsNull()) return ok_status();
  return apply_key(c, prefix, node.as<std::string>());
}

Status load_file(NodeConfig& c, const std::string& path,
                 const std::map<std::string, std::string>& env) {
  std::ifstream in(path);
  if (!in) return Error::validation("config", str_cat("cannot read config file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  CHRONOS_ASSIGN_OR_RETURN(std::string text, expand_vars(ss.str(), env));
  try {
    YAML::Node root = YAML::Load(text);
    if (root.IsNull()) return ok_status();
    if (!root.IsMap()) return Error::validation("config", "config file must be a YAML mapping");
    return apply_yaml(c, root, "");
  } catch (const YAML::Exception& e) {
    return Error::validation("config", str_cat("invalid YAML in ", path, ": ", e.what()));
  }
}

Status validate(const NodeConfig& c) {
  if (c.node_id.empty()) return Error::validation("cluster.node_id", "must not be empty");
  if (c.data_dir.empty()) return Error::validation("cluster.data_dir", "must not be empty");
  if (c.heartbeat_timeout < absl::Milliseconds(10)) {
    return Error::validation("cluster.raft.heartbeat_timeout", "must be at least 10ms");
  }
  if (c.election_timeout <= c.heartbeat_timeout) {
    return Error::validation("cluster.raft.election_timeout",
                             "must be greater than cluster.raft.heartbeat_timeout");
  }
  if (c.snapshot_threshold < 4) {
    return Error::validation("cluster.raft.snapshot_threshold", "must be at least 4");
  }
  if (c.max_concurrent_dispatches < 1) {
    return Error::validation("dispatcher.concurrency.max_concurrent_jobs", "must be at least 1");
  }
  if (c.breaker_failure_threshold < 1 || c.breaker_success_threshold < 1) {
    return Error::validation("dispatcher.circuit_breaker", "thresholds must be at least 1");
  }
  if (c.breaker_open_duration < absl::Milliseconds(100)) {
    return Error::validation("dispatcher.circuit_breaker.open_duration", "must be at least 100ms");
  }
  if (c.history_max_per_job < 1) {
    return Error::validation("history.max_per_job", "must be at least 1");
  }
  // At most one second: a run planned ahead must never pass the next run
  // of an every-second job (the finest schedule).
  if (c.lookahead < absl::ZeroDuration() || c.lookahead > absl::Seconds(1)) {
    return Error::validation("scheduler.lookahead", "must be between 0s and 1s");
  }
  if (c.late_grace && *c.late_grace < absl::ZeroDuration()) {
    return Error::validation("scheduler.late_grace", "must not be negative");
  }
  if (!c.join.empty()) {
    if (!c.raft_peers.empty()) {
      return Error::validation("cluster.join",
                               "cannot be combined with cluster.raft.peers (initial voters "
                               "bootstrap; a joining node is added by the cluster)");
    }
    std::string_view url = c.join;
    if (url.substr(0, 7) == "http://") url.remove_prefix(7);
    if (!url.empty() && url.back() == '/') url.remove_suffix(1);
    if (url.empty() || url.find('/') != std::string_view::npos || url.find(':') == url.npos) {
      return Error::validation("cluster.join", "must be the API URL of a member: http://host:port");
    }
  }
  if (c.log_format != "text" && c.log_format != "json") {
    return Error::validation("logging.format", "must be text or json");
  }
  if (c.auth_type == "none") {
    // SPEC §6: without authentication the API is for this machine only.
    auto colon = c.http_address.rfind(':');
    std::string host =
        colon == std::string::npos ? c.http_address : c.http_address.substr(0, colon);
    if (host != "127.0.0.1" && host != "localhost" && host != "[::1]" && host != "::1" &&
        host.rfind("127.", 0) != 0) {
      return Error::validation("server.http.address",
                               "with auth.type none the API binds to loopback only (127.0.0.1); "
                               "enable authentication to listen on other addresses");
    }
  }
  if (c.auth_type != "none") {
    return Error::validation("auth.type",
                             "only \"none\" is available in this version (api_key comes with the "
                             "security issue)");
  }
  return ok_status();
}

}  // namespace

std::map<std::string, std::string> process_env() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return env;
}

Result<NodeConfig> load_config(const ConfigFlags& flags,
                               const std::map<std::string, std::string>& env) {
  NodeConfig c;
  c.http_threads = std::max(1u, std::thread::hardware_concurrency());

  std::optional<std::string> file = flags.config_file;
  if (!file) {
    if (auto it = env.find("CHRONOS_CONFIG"); it != env.end() && !it->second.empty()) {
      file = it->second;
    }
  }
  if (file) CHRONOS_RETURN_IF_ERROR(load_file(c, *file, env));

  static const std::pair<const char*, const char*> kEnvKeys[] = {
      {"CHRONOS_NODE_ID", "cluster.node_id"},
      {"CHRONOS_DATA_DIR", "cluster.data_dir"},
      {"CHRONOS_RAFT_ADDRESS", "cluster.raft.address"},
      {"CHRONOS_RAFT_PEERS", "cluster.raft.peers"},
      {"CHRONOS_JOIN", "cluster.join"},
      {"CHRONOS_HTTP_ADDRESS", "server.http.address"},
      {"CHRONOS_LOG_LEVEL", "logging.level"},
  };
  for (const auto& [var, key] : kEnvKeys) {
    if (auto it = env.find(var); it != env.end() && !it->second.empty()) {
      auto st = apply_key(c, key, it->second);
      if (!st.ok()) return Error::validation(var, st.error().message);
    }
  }

  const std::pair<const std::optional<std::string>*, const char*> kFlagKeys[] = {
      {&flags.node_id, "cluster.node_id"},
      {&flags.data_dir, "cluster.data_dir"},
      {&flags.raft_address, "cluster.raft.address"},
      {&flags.raft_peers, "cluster.raft.peers"},
      {&flags.http_address, "server.http.address"},
      {&flags.log_level, "logging.level"},
      {&flags.join, "cluster.join"},
  };
  for (const auto& [value, key] : kFlagKeys) {
    if (*value) CHRONOS_RETURN_IF_ERROR(apply_key(c, key, **value));
  }
  if (c.http_threads == 0) c.http_threads = std::max(1u, std::thread::hardware_concurrency());
  CHRONOS_RETURN_IF_ERROR(validate(c));
  return c;
}

}  // namespace chronos::node
