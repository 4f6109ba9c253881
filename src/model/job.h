#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace chronos::model {

// Overlap policy (SPEC §3; docs/schedules.md "Overlapping runs"). The
// numeric values are not stored (the codec uses the names).
enum class Concurrency : uint8_t { kAllow, kForbid, kReplace, kBufferOne };
enum class MissedRunPolicy : uint8_t { kIgnore, kExecuteOne, kExecuteAll };

struct RetryPolicy {
  int max_attempts = 3;  // counts the first try; 1..100
  absl::Duration initial_interval = absl::Seconds(1);
  absl::Duration max_interval = absl::Minutes(1);
  double multiplier = 2.0;
  double jitter = 0.1;  // fraction in [0, 1]
  bool operator==(const RetryPolicy&) const = default;
};

struct WebhookAuth {
  std::string type;      // "basic" | "bearer" | "api_key"
  std::string username;  // basic
  std::string password;  // basic (secret)
  std::string token;     // bearer (secret)
  std::string header;    // api_key: header name, default "X-API-Key"
  std::string key;       // api_key (secret)
  bool operator==(const WebhookAuth&) const = default;
};

// HTTP target (SPEC §4).
struct Webhook {
  std::string url;
  std::string method = "POST";
  std::map<std::string, std::string> headers;
  std::string body;
  std::optional<WebhookAuth> auth;
  // Inclusive ranges of HTTP status codes that count as success.
  std::vector<std::pair<int, int>> success_codes = {{200, 299}};
  bool tls_skip_verify = false;
  bool operator==(const Webhook&) const = default;
};

// Non-HTTP target (SPEC §4): type plus its type-specific fields, validated
// against the per-type field list and kept as JSON; the dispatchers of later
// issues read it.
struct Dispatch {
  std::string type;                                  // grpc | kafka | nats | rabbitmq
  nlohmann::json config = nlohmann::json::object();  // every field but "type"
  bool operator==(const Dispatch&) const = default;
};

struct Dependencies {
  std::vector<std::string> depends_on;    // job ids or names
  std::string condition = "all_success";  // all_success|all_complete|any_success|any_complete
  bool operator==(const Dependencies&) const = default;
};

// A job definition (SPEC §1). A plain value; the store keeps one per version.
struct Job {
  std::string id;
  std::string name;
  std::string namespace_ = "default";
  std::string description;
  std::string schedule;
  std::string timezone = "UTC";
  bool enabled = true;
  std::optional<Webhook> webhook;
  std::optional<Dispatch> dispatch;
  RetryPolicy retry_policy;
  absl::Duration timeout = absl::Minutes(5);
  Concurrency concurrency = Concurrency::kBufferOne;
  MissedRunPolicy missed_run_policy = MissedRunPolicy::kExecuteOne;
  absl::Duration catchup_window = absl::Hours(24);
  absl::Duration jitter = absl::ZeroDuration();
  std::map<std::string, std::string> tags;
  std::optional<Dependencies> dependencies;
  absl::Time created_at = absl::UnixEpoch();
  absl::Time updated_at = absl::UnixEpoch();
  int64_t version = 1;

  bool operator==(const Job&) const = default;
};

// What a scheduler needs to know of a job to tell when it fires next. The
// store keeps one per job in its own key range, maintained by apply, so a
// new leader builds its due queue without decoding every job
// (store/README.md "Keyspace", c/).
struct JobTiming {
  std::string id;
  int64_t version = 1;
  bool enabled = true;
  std::string schedule;
  std::string timezone = "UTC";
  absl::Time created_at = absl::UnixEpoch();
  absl::Duration jitter = absl::ZeroDuration();

  bool operator==(const JobTiming&) const = default;
};

JobTiming timing_of(const Job& job);

// Server-side defaults applied to fields a request leaves out (SPEC §1, §7:
// scheduler.missed_run_policy).
struct JobDefaults {
  MissedRunPolicy missed_run_policy = MissedRunPolicy::kExecuteOne;
};

// Deterministic per-job jitter offset in [0, job.jitter): FNV-1a 64 of the job
// id modulo the jitter in whole milliseconds (zero when jitter < 1 ms).
// Stable across processes, builds and restarts. A scheduled run fires at
// its scheduled time plus this offset.
absl::Duration jitter_offset(const Job& job);
absl::Duration jitter_offset(const JobTiming& job);

// FNV-1a 64-bit hash (exposed for tests).
uint64_t fnv1a64(std::string_view bytes);

// Wire names ("allow", "execute_one", ...) and their inverses. The parsers
// accept exactly the names to_string returns (case-sensitive); nullopt for
// anything else.
std::string_view to_string(Concurrency c);
std::string_view to_string(MissedRunPolicy p);
std::optional<Concurrency> parse_concurrency(std::string_view s);
std::optional<MissedRunPolicy> parse_missed_run_policy(std::string_view s);

}  // namespace chronos::model
