#pragma once

#include <string>

#include "base/result.h"
#include "model/job.h"
#include "nlohmann/json.hpp"

namespace chronos::model {

// JSON <-> Job. Two forms:
//  - the API form (SPEC §1, snake_case): what clients send and receive.
//    Output redacts secrets (webhook.auth password/token/key and secret-looking
//    dispatch fields such as sasl.password, auth.password/token) as "***".
//  - the internal form (same shape, secrets kept): what is stored and
//    replicated. Never returned by the API or logged.

// Builds a job from a client's create/PUT body. Every field not given gets its
// default (SPEC §1 and `defaults`). Rejects unknown fields, wrong types and
// broken rules with a kValidation error naming the field as a dot path
// ("retry_policy.max_attempts", "webhook.headers.X-Foo", "tags.team") and the
// rule ("must be between 1 and 100"). Server-owned fields (`created_at`,
// `updated_at`, `version`, `next_run`) are rejected when present (non-null).
// `id` is accepted only when it is a canonical lowercase UUID and is then
// copied into Job::id, so `!job.id.empty()` means "the client chose an id";
// the caller decides whether to honour it (create) or compare it with the
// URL (PUT). A JSON null anywhere means "not given" (default applied).
// Does not set created_at/updated_at/version (left at their defaults).
Result<Job> job_from_request(const nlohmann::json& body, const JobDefaults& defaults);

// PATCH: a JSON merge patch (RFC 7386) over the job's internal form, then
// the same validation as job_from_request. Secrets the patch does not touch
// are kept. `id`, `created_at`, `updated_at`, `version`, `next_run` in the
// patch are rejected (400, field named). `name` and `namespace` may change.
// Two additions to RFC 7386 for tagged unions: an object whose "type"
// changes (dispatch.type, webhook.auth.type) is replaced, not merged; and
// giving `webhook` drops `dispatch` (and vice versa) unless the patch names
// both. id/created_at/updated_at/version are copied from `current`
// unchanged; the caller bumps version and updated_at.
Result<Job> apply_merge_patch(const Job& current, const nlohmann::json& patch,
                              const JobDefaults& defaults);

// A webhook target on its own (POST /webhooks/test): structure and rules as
// in a job; error fields are relative to the webhook object ("url").
Result<Webhook> webhook_from_request(const nlohmann::json& j);

// Validates a whole job (the checks job_from_request makes after parsing);
// used again before storing versions produced by rollback.
Status validate_job(const Job& job);

// API form with secrets redacted; includes id, created_at, updated_at,
// version. `next_run` is added by the caller (it is computed, not stored).
nlohmann::json job_to_api_json(const Job& job);

// Internal form, secrets kept, every field present; job_from_internal_json
// inverts it exactly (round trip is identity).
nlohmann::json job_to_internal_json(const Job& job);
Result<Job> job_from_internal_json(const nlohmann::json& j);

// RFC 3339 with fractional seconds trimmed, always UTC "Z"
// ("2024-03-10T07:30:00Z", "2024-03-10T07:30:00.25Z", "0004-02-29T00:00:00Z").
// Only times for which in_rfc3339_range() holds have an RFC 3339 form;
// callers format only those (a year outside 0001..9999 is printed with a
// sign or a fifth digit, and parse_time refuses it).
std::string format_time(absl::Time t);
// Parses RFC 3339 ("Z" or an offset): a four-digit year, and a time whose
// UTC year is 0001..9999. Error message names the format.
Result<absl::Time> parse_time(std::string_view text);
// True when `t` falls in UTC years 0001..9999, i.e. format_time(t) is valid
// RFC 3339 that parse_time reads back. False for the infinite times. The API
// uses it to stop a schedule preview at year 9999.
bool in_rfc3339_range(absl::Time t);

// Name rule shared by name and namespace: [a-z0-9][a-z0-9._-]{0,126}.
bool is_valid_name(std::string_view s);

}  // namespace chronos::model
