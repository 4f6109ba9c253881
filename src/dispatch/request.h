#pragma once

// What one webhook attempt sends (SPEC §4), as pure functions of the job's
// webhook and the execution: placeholders, headers, success codes, the
// circuit-breaker key. No I/O; http_dispatcher.cc turns the result into a
// libcurl transfer.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "base/result.h"
#include "model/job.h"

namespace chronos::dispatch {

// One attempt at calling a job's webhook. A plain value.
struct HttpRequestSpec {
  model::Webhook webhook;
  std::string job_id;
  std::string job_name;
  std::string execution_id;  // also the Idempotency-Key, identical across attempts
  absl::Time scheduled_time = absl::UnixEpoch();
  int attempt = 1;                            // 1-based; X-Chronos-Attempt and {{.Attempt}}
  absl::Duration timeout = absl::Minutes(5);  // whole attempt, connect included
  // The latest time, on the dispatcher's monotonic clock, at which the
  // request may begin to go out (the sender's leadership lease). Checked
  // right before a transfer starts and again right before libcurl writes
  // the request on its connection; past it the attempt ends kNotSent and
  // nothing is sent.
  absl::Duration send_by = absl::InfiniteDuration();
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// The body with {{.JobID}} {{.JobName}} {{.ExecutionID}} {{.ScheduledTime}}
// (RFC 3339 UTC) and {{.Attempt}} replaced, in one left-to-right pass (a
// substituted value is never expanded again). Unknown {{...}} stay as they
// are. Values go in verbatim (no JSON escaping: ids and names cannot hold
// quotes). Only the body is expanded; header values and the URL are sent as
// configured.
std::string expand_placeholders(std::string_view body, const HttpRequestSpec& spec);

// Every header to send, in order: the job's headers (minus the ones Chronos
// owns: X-Chronos-*, Idempotency-Key, Content-Length, Transfer-Encoding,
// Connection, and Authorization / the api_key header when auth sets them),
// the auth header for bearer ("Authorization: Bearer …") and api_key
// (auth.header, default X-API-Key), then User-Agent: chronos/<version>
// (unless the job sets one), X-Chronos-Job-ID, X-Chronos-Execution-ID,
// X-Chronos-Scheduled-Time (RFC 3339 UTC), X-Chronos-Attempt,
// Idempotency-Key (= execution id), and Content-Type: application/json when
// the body is not empty and the job gives no Content-Type. Basic auth is not
// here: libcurl builds it from CURLOPT_USERNAME / CURLOPT_PASSWORD.
// Headers whose name or value holds CR, LF or NUL are dropped.
HeaderList request_headers(const HttpRequestSpec& spec, std::string_view version);

// True when `status` lies in one of the inclusive ranges.
bool is_success_code(const std::vector<std::pair<int, int>>& ranges, int status);

// The circuit-breaker key of a URL: "scheme://host:port", scheme and host
// lowercased, the scheme's default port filled in (http 80, https 443),
// IPv6 hosts in brackets. No userinfo, path or query, so it is safe to log.
Result<std::string> endpoint_key(std::string_view url);

}  // namespace chronos::dispatch
