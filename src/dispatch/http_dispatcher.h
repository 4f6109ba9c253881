#pragma once

// HTTP webhook dispatch (SPEC §3, §4): libcurl multi on one thread.
//
//   scheduler ──submit (one attempt)──▶ [bounded queue] ──▶ dispatcher thread
//                                                          │ send_by not passed
//                                                          │ breaker.allow
//                                                          │ curl multi (≤ max_in_flight)
//                                                          │ breaker.record
//   scheduler ◀──────────── callback (the attempt's outcome) ┘
//
// Retries are the scheduler's (sched/driver.h): it records each attempt
// number in the log before the attempt is sent.

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
  // Connections libcurl opens to one host:port; more transfers to it wait
  // inside libcurl, and that wait counts toward their attempt timeout.
  size_t max_host_connections = 256;
  absl::Duration max_connect_timeout = absl::Seconds(10);  // also ≤ the attempt timeout
  size_t max_response_bytes = model::kMaxResponseBytes;
  BreakerOptions breaker;
  const Clock* clock = nullptr;  // nullptr: RealClock; wall time and send_by
};

// Called once per attempt with its outcome.
using AttemptCallback = std::function<void(AttemptOutcome)>;

struct HttpDispatcherStats {
  size_t in_flight = 0;
  size_t queued = 0;  // submitted, not started yet
};

// Calls webhooks. Owns one thread running a libcurl multi loop and the
// circuit breakers of every endpoint.
//
// Lifecycle: start() → submit() from any thread →
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

  // ONE attempt of `spec` (spec.attempt is its number); `done` gets its
  // outcome. The caller runs its own retry loop (backoff.h's decide_retry).
  virtual void submit(HttpRequestSpec spec, AttemptCallback done) = 0;

  // Stops every attempt of `execution_id`: a transfer in flight is aborted,
  // a queued attempt is dropped; each ends with kind kCancelled. Later
  // submissions are not affected. Asynchronous: takes effect on the
  // dispatcher thread shortly after.
  virtual void cancel(std::string execution_id) = 0;

  // Aborts what is in flight, fails everything pending with kShutdown, joins
  // the thread. Idempotent. Not from a callback.
  virtual void stop() = 0;

  virtual CircuitBreaker& breaker() = 0;
  virtual HttpDispatcherStats stats() const = 0;
};

}  // namespace chronos::dispatch
