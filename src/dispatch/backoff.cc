#include "dispatch/backoff.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "base/strings.h"

namespace chronos::dispatch {

std::string_view to_string(AttemptKind k) {
  switch (k) {
    case AttemptKind::kSuccess:
      return "success";
    case AttemptKind::kHttpStatus:
      return "http_status";
    case AttemptKind::kTransportError:
      return "transport_error";
    case AttemptKind::kTimeout:
      return "timeout";
    case AttemptKind::kBreakerOpen:
      return "breaker_open";
    case AttemptKind::kOverloaded:
      return "overloaded";
    case AttemptKind::kShutdown:
      return "shutdown";
    case AttemptKind::kInvalidRequest:
      return "invalid_request";
    case AttemptKind::kCancelled:
      return "cancelled";
    case AttemptKind::kNotSent:
      return "not_sent";
  }
  return "unknown";
}

absl::Duration retry_delay(const model::RetryPolicy& policy, int attempt, double unit_random) {
  const int exponent = std::max(attempt, 1) - 1;
  const double max_s = std::max(absl::ToDoubleSeconds(policy.max_interval), 0.0);
  double s = std::max(absl::ToDoubleSeconds(policy.initial_interval), 0.0) *
             std::pow(std::max(policy.multiplier, 0.0), exponent);
  // `!(s < max_s)` also catches inf and NaN from a huge exponent.
  if (!(s < max_s)) s = max_s;
  const double u = std::isnan(unit_random) ? 0.5 : std::clamp(unit_random, 0.0, 1.0);
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  s *= 1.0 + jitter * (2.0 * u - 1.0);
  return absl::Seconds(std::max(s, 0.0));
}

namespace {

bool is_retryable_status(int code) { return code == 429 || (code >= 500 && code <= 599); }

}  // namespace

bool is_retryable(const AttemptOutcome& o) {
  switch (o.kind) {
    case AttemptKind::kTransportError:
    case AttemptKind::kTimeout:
    case AttemptKind::kBreakerOpen:
    case AttemptKind::kOverloaded:
      return true;
    case AttemptKind::kHttpStatus:
      return is_retryable_status(o.status_code);
    case AttemptKind::kSuccess:
    case AttemptKind::kShutdown:
    case AttemptKind::kInvalidRequest:
    case AttemptKind::kCancelled:
    case AttemptKind::kNotSent:
      return false;
  }
  return false;
}

bool feeds_breaker(const AttemptOutcome& o) {
  switch (o.kind) {
    case AttemptKind::kSuccess:
    case AttemptKind::kHttpStatus:
    case AttemptKind::kTransportError:
    case AttemptKind::kTimeout:
      return true;
    default:
      return false;
  }
}

bool is_endpoint_failure(const AttemptOutcome& o) {
  switch (o.kind) {
    case AttemptKind::kTransportError:
    case AttemptKind::kTimeout:
      return true;
    case AttemptKind::kHttpStatus:
      return is_retryable_status(o.status_code);
    default:
      return false;
  }
}

std::optional<absl::Duration> parse_retry_after(std::string_view value, absl::Time now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty() || value.size() > 64) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string_view::npos) {
    // delta-seconds; anything beyond an int64 is certainly beyond the cap.
    int64_t secs = 0;
    if (!parse_int(value, &secs)) return absl::Hours(24 * 365);
    return absl::Seconds(secs);
  }
  // RFC 9110 §5.6.7: IMF-fixdate, then the obsolete RFC 850 and asctime forms.
  static constexpr const char* kFormats[] = {
      "%a, %d %b %Y %H:%M:%S GMT",
      "%A, %d-%b-%y %H:%M:%S GMT",
      "%a %b %e %H:%M:%S %Y",
  };
  const std::string text(value);
  for (const char* format : kFormats) {
    absl::Time t;
    std::string err;
    if (absl::ParseTime(format, text, absl::UTCTimeZone(), &t, &err)) {
      return t > now ? t - now : absl::ZeroDuration();
    }
  }
  return std::nullopt;
}

RetryDecision decide_retry(const model::RetryPolicy& policy, const AttemptOutcome& outcome,
                           int attempt, double unit_random) {
  RetryDecision d;
  if (!is_retryable(outcome) || attempt >= policy.max_attempts) return d;
  d.retry = true;
  d.delay = retry_delay(policy, attempt, unit_random);
  if (outcome.retry_after) {
    d.delay = std::max(d.delay, std::min(*outcome.retry_after, kMaxRetryAfter));
  }
  return d;
}

}  // namespace chronos::dispatch
