#pragma once

// HTTP webhook dispatch (SPEC §3, §4): libcurl multi on one thread.
//
//   scheduler ──submit / call_with_retries──▶ [bounded queue] ──▶ dispatcher thread
//                                                                 │ breaker.allow
//                                                                 │ curl multi (≤ max_in_flight)
//                                                                 │ breaker.record
//                                                                 │ retry timers (min-heap)
//   scheduler ◀──────────── callbacks (outcome per attempt, final result) ┘

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "base/clock.h"
#include "base/result.h"
#include "dispatch/backoff.h"
#include "dispatch/circuit_breaker.h"
#include "dispatch/outcome.h"
#include "dispatch/request.h"
#include "model/execution.h"
#include "model/job.h"

namespace chronos::dispatch {

struct HttpDispatcherOptions {
  std::string version = "0.0.0";  // User-Agent: chronos/<version>
  size_t max_in_flight = 1000;    // transfers running at once
  size_t max_queued = 10'000;     // submitted, waiting for an in-flight slot
  size_t max_calls = 10'000;      // call_with_retries calls alive at once
  // Connections libcurl opens to one host:port; more transfers to it wait
  // inside libcurl, and that wait counts toward their attempt timeout.
  size_t max_host_connections = 256;
  absl::Duration max_connect_timeout = absl::Seconds(10);  // also ≤ the attempt timeout
  size_t max_response_bytes = model::kMaxResponseBytes;
  BreakerOptions breaker;
  const Clock* clock = nullptr;  // nullptr: RealClock; wall time and retry timers
  uint64_t jitter_seed = 0;      // 0: seeded from std::random_device
};

// Called once per attempt with its outcome.
using AttemptCallback = std::function<void(AttemptOutcome)>;

// The end of a call_with_retries: its last attempt (kind kShutdown when the
// dispatcher stopped while it waited) and how many attempts it made.
struct CallResult {
  AttemptOutcome last;
  int attempts_made = 0;  // attempts of this call (outcomes passed to on_attempt)
};
using CallCallback = std::function<void(CallResult)>;

struct HttpDispatcherStats {
  size_t in_flight = 0;
  size_t queued = 0;           // submitted, not started yet (includes due retries)
  size_t waiting_retries = 0;  // retry timers not due yet
  size_t calls = 0;            // call_with_retries calls alive
};

// Calls webhooks. Owns one thread running a libcurl multi loop, the
// circuit breakers of every endpoint, and the retry timers.
//
// Lifecycle: start() → submit()/call_with_retries() from any thread →
// stop() (or destruction). stop() returns promptly: in-flight transfers are
// aborted and every callback not yet called is called with kShutdown.
//
// Callbacks: each one is called exactly once per attempt/call. They run on
// the dispatcher thread and must not block; they may submit more work but
// must not call stop(). Exception: a request refused at submission (queue
// full → kOverloaded, already stopped → kShutdown) has its callback run on
// the calling thread before submit returns, so callers must not hold a lock
// that the callback takes.
//
// Thread-safe: every method may be called from any thread.
class HttpDispatcher {
 public:
  static Result<std::unique_ptr<HttpDispatcher>> start(HttpDispatcherOptions options);
  virtual ~HttpDispatcher() = default;  // stops first

  // ONE attempt of `spec` (spec.attempt is its number). A caller running its
  // own retry loop decides with
  // backoff.h's decide_retry.
  virtual void submit(HttpRequestSpec spec, AttemptCallback done) = 0;

  // The whole retry loop: attempts spec.attempt, spec.attempt + 1, ... until
  // one succeeds, one fails in a way that is not retried, or
  // policy.max_attempts is reached (attempt numbers count from 1 across
  // re-dispatches; at least one attempt is always made). Waits between
  // attempts per decide_retry on the dispatcher thread's timer heap.
  // on_attempt gets every attempt's outcome, then on_done the final result.
  // More than max_calls calls alive → refused at once with kOverloaded.
  // `first_delay` postpones the first attempt (a re-dispatched execution
  // waits the backoff its lost attempt would have earned).
  virtual void call_with_retries(HttpRequestSpec spec, model::RetryPolicy policy,
                                 AttemptCallback on_attempt, CallCallback on_done,
                                 absl::Duration first_delay = absl::ZeroDuration()) = 0;

  // Stops every attempt of `execution_id`: a transfer in flight is aborted,
  // a waiting retry or queued attempt is dropped; each ends with kind
  // kCancelled (never retried). Later submissions are not affected.
  // Asynchronous: takes effect on the dispatcher thread shortly after.
  virtual void cancel(std::string execution_id) = 0;

  // Aborts what is in flight, fails everything pending with kShutdown, joins
  // the thread. Idempotent. Not from a callback.
  virtual void stop() = 0;

  virtual CircuitBreaker& breaker() = 0;
  virtual HttpDispatcherStats stats() const = 0;
};

}  // namespace chronos::dispatch
