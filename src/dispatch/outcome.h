#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"

namespace chronos::dispatch {

// How one attempt at calling a target ended. Exactly one kind per attempt.
enum class AttemptKind : uint8_t {
  kSuccess,         // a response whose status is in the webhook's success_codes
  kHttpStatus,      // a response whose status is not a success code
  kTransportError,  // no response: DNS, connect, TLS, reset, malformed reply
  kTimeout,         // the per-attempt timeout elapsed
  kBreakerOpen,     // refused locally: the endpoint's circuit breaker is open
  kOverloaded,      // refused locally: the dispatcher's submit queue was full
  kShutdown,        // the dispatcher stopped before the attempt finished
  kInvalidRequest,  // the request cannot be made at all (e.g. unparsable URL)
  kCancelled,       // HttpDispatcher::cancel() stopped it (never retried)
  // Not sent: its HttpRequestSpec::send_by passed before the request went
  // out (the scheduler's leadership lease ran out meanwhile, e.g. the
  // process was paused). Not an attempt: nothing reached the target.
  kNotSent,
};

std::string_view to_string(AttemptKind k);

// The result of ONE attempt. A plain value.
struct AttemptOutcome {
  AttemptKind kind = AttemptKind::kTransportError;
  int attempt = 0;      // the attempt number it was (1-based, X-Chronos-Attempt)
  int status_code = 0;  // HTTP status; 0 when no response arrived
  // First model::kMaxResponseBytes of the response body; the rest is read
  // and dropped (the transfer does not fail because of it).
  std::string response;
  std::string error;  // human-readable, no secrets; "" on success
  // Retry-After of the response, parsed (seconds or HTTP-date; a date in the
  // past is zero). Not capped here; see backoff.h.
  std::optional<absl::Duration> retry_after;
  absl::Time started_at = absl::InfinitePast();   // wall time the attempt began
  absl::Duration elapsed = absl::ZeroDuration();  // monotonic, start to end

  bool success() const { return kind == AttemptKind::kSuccess; }
};

}  // namespace chronos::dispatch
