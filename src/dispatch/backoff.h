#pragma once

// Retry decisions for target calls (SPEC §3 "Retries"). Pure functions: no
// clock, no randomness (callers inject `now` and a uniform random number),
// no I/O.

#include <optional>
#include <string_view>

#include "absl/time/time.h"
#include "dispatch/outcome.h"
#include "model/job.h"

namespace chronos::dispatch {

// Longest Retry-After that is honoured: a larger value (or a date further
// away) waits this long instead, so a confused target cannot park an
// execution for days.
inline constexpr absl::Duration kMaxRetryAfter = absl::Hours(1);

// Delay before the next attempt after attempt number `attempt` (1-based)
// failed: initial × multiplier^(attempt-1), capped at max_interval, then
// scaled by (1 + jitter × (2·unit_random − 1)), i.e. ± jitter. The jitter is
// applied after the cap, so the largest delay is max_interval × (1 + jitter).
// `unit_random` is in [0, 1); values outside are clamped. Never negative.
absl::Duration retry_delay(const model::RetryPolicy& policy, int attempt, double unit_random);

// True for failures SPEC §3 retries: transport errors, timeouts, 5xx, 429,
// and the local refusals (breaker open, dispatcher overloaded), which count
// as failed attempts. A response with any other non-success status (other
// 4xx, or a 1xx/2xx/3xx outside success_codes) is final. Success, shutdown
// and invalid requests are never retried.
bool is_retryable(const AttemptOutcome& outcome);

// True when the outcome counts as a failure of the endpoint for its circuit
// breaker (SPEC §4: transport errors, timeouts, 5xx, 429). Any other
// response shows the endpoint is up and counts as a success. Local refusals
// say nothing about the endpoint: the breaker is not fed with them (see
// feeds_breaker).
bool is_endpoint_failure(const AttemptOutcome& outcome);
bool feeds_breaker(const AttemptOutcome& outcome);

// Parses a Retry-After value: delta-seconds ("120") or an HTTP-date
// (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", and the obsolete RFC 850 and
// asctime forms). A date is turned into a delay from `now`; a date in the
// past gives zero. nullopt for anything unparsable.
std::optional<absl::Duration> parse_retry_after(std::string_view value, absl::Time now);

// What to do after attempt number `attempt` ended with `outcome`.
struct RetryDecision {
  bool retry = false;
  absl::Duration delay = absl::ZeroDuration();  // meaningful when retry
};

// Retries when the outcome is retryable and attempt < policy.max_attempts
// (max_attempts counts the first try). The delay is retry_delay(), raised to
// the response's Retry-After when that is longer (Retry-After is a lower
// bound, itself capped at kMaxRetryAfter; it may exceed max_interval).
RetryDecision decide_retry(const model::RetryPolicy& policy, const AttemptOutcome& outcome,
                           int attempt, double unit_random);

}  // namespace chronos::dispatch
