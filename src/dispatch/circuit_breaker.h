#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace chronos::dispatch {

// SPEC §4 parameters.
struct BreakerOptions {
  int failure_threshold = 5;                         // consecutive failures that open it
  absl::Duration open_duration = absl::Seconds(30);  // refused for this long
  int success_threshold = 2;                         // consecutive probe successes that close it
  size_t max_keys = 10'000;                          // endpoints remembered at most
};

enum class BreakerState : uint8_t { kClosed, kOpen, kHalfOpen };
std::string_view to_string(BreakerState s);  // "closed" | "open" | "half_open"

// One endpoint's breaker, as shown by the API and metrics.
struct BreakerInfo {
  std::string key;  // "scheme://host:port"
  BreakerState state = BreakerState::kClosed;
  int consecutive_failures = 0;
  absl::Time opened_at = absl::InfinitePast();  // last time it opened; InfinitePast if never
  bool operator==(const BreakerInfo&) const = default;
};

// A circuit breaker per target endpoint (SPEC §4):
//
//   closed --failure_threshold consecutive failures--> open
//   open --open_duration passed, next allow()--> half_open (one probe at a time)
//   half_open --probe fails--> open (opened_at = now)
//   half_open --success_threshold consecutive probe successes--> closed
//
// Pure: time is passed in. Results recorded while open are ignored (they
// come from calls admitted before it opened). A half-open probe whose result
// never arrives stops blocking after open_duration, when another probe is let
// through. At most max_keys endpoints are remembered; a new one evicts the
// least recently used closed endpoint (or, when none is closed, the least
// recently used of any state).
//
// Thread-safe: one mutex guards everything.
class CircuitBreaker {
 public:
  explicit CircuitBreaker(BreakerOptions options = {});

  // May a call to `key` start now? false = refused: the caller records a
  // failed attempt ("circuit open") and retries per its policy. In half-open
  // state a true answer makes the caller the probe; it must record() the
  // result.
  bool allow(std::string_view key, absl::Time now);
  // Feeds the result of an allowed call: success = the endpoint answered
  // (see backoff.h is_endpoint_failure).
  void record(std::string_view key, bool success, absl::Time now);
  // An allowed call ended without a result (cancelled, shutdown): in
  // half-open state the next call may probe at once instead of waiting out
  // open_duration. No effect in other states.
  void release_probe(std::string_view key);

  // Every remembered endpoint, sorted by key.
  std::vector<BreakerInfo> snapshot() const;
  // One endpoint (closed with no failures when unknown).
  BreakerInfo info(std::string_view key) const;

  const BreakerOptions& options() const { return options_; }

 private:
  struct Entry {
    BreakerState state = BreakerState::kClosed;
    int consecutive_failures = 0;
    int half_open_successes = 0;
    bool probe_in_flight = false;
    absl::Time probe_started = absl::InfinitePast();
    absl::Time opened_at = absl::InfinitePast();
    std::list<std::string>::iterator lru;  // position in lru_
  };

  // Finds or creates the entry for `key` and marks it most recently used.
  Entry& touch(std::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void evict_one() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void open(Entry& e, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const BreakerOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // front = most recently used
};

}  // namespace chronos::dispatch
