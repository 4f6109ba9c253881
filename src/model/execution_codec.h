#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.h"
#include "model/execution.h"
#include "nlohmann/json.hpp"

namespace chronos::model {

// JSON <-> Execution. Two forms (README "Executions"):
//  - the API form (SPEC §3, snake_case), output only;
//  - the internal form, lossless, stored and replicated.
// Pure functions; no exceptions escape.

// API form: id, job_id, job_name, namespace, job_version, scheduled_time,
// trigger, status, attempts, started_at, completed_at, duration,
// status_code, response, error, node_id, replay_of. Times are RFC 3339 UTC
// (format_time) or null when unset; `duration` is the canonical duration
// string of completed_at - started_at when both are set (clamped at 0s),
// else null; `status_code` is null when 0 (no response); `replay_of` is null
// when empty. `response` and `error` have every invalid UTF-8 sequence
// replaced by U+FFFD, so the result always dumps with nlohmann's default
// (strict) error handler.
nlohmann::json execution_to_api_json(const Execution& e);

// Internal form: every field, times as RFC 3339 text or null when unset
// (InfinitePast). `response` and `error` are strings when they are valid
// UTF-8, otherwise {"base64": "..."} (a log entry's strings must be UTF-8),
// so arbitrary bytes round-trip. execution_from_internal_json inverts it
// exactly for every execution whose set times satisfy in_rfc3339_range;
// it checks structure and types strictly (unknown fields, bad enum names,
// out-of-range integers are kValidation errors naming the field).
nlohmann::json execution_to_internal_json(const Execution& e);
Result<Execution> execution_from_internal_json(const nlohmann::json& j);

// The longest prefix of `s` of at most `max_bytes` bytes that does not end
// inside a UTF-8 sequence (cuts before a partial trailing sequence; bytes
// that are not UTF-8 at all are cut as plain bytes). Valid UTF-8 stays
// valid. For capping response captures and error messages.
std::string_view truncate_utf8(std::string_view s, size_t max_bytes);

// `s` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s);

}  // namespace chronos::model
