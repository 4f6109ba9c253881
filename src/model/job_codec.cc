#include "model/job_codec.h"

#include <array>
#include <set>

#include "absl/strings/ascii.h"
#include "base/duration.h"
#include "base/ids.h"
#include "base/strings.h"
#include "cron/schedule.h"
#include "model/json_fields.h"
#include "model/limits.h"
#include "model/targets.h"

namespace chronos::model {
namespace {

using internal::check_duration_range;
using internal::find;
using internal::get_bool;
using internal::get_duration;
using internal::get_int;
using internal::get_number;
using internal::get_string;
using internal::Json;
using internal::nest;

// Validation bounds (README "Validation bounds").
constexpr size_t kMaxDescriptionBytes = 4096;
constexpr size_t kMaxScheduleBytes = 1024;
constexpr int kMinAttempts = 1;
constexpr int kMaxAttempts = 100;
constexpr absl::Duration kMinInterval = absl::Milliseconds(1);
constexpr absl::Duration kMaxInterval = absl::Hours(24);
constexpr double kMinMultiplier = 1.0;
constexpr double kMaxMultiplier = 10.0;
constexpr absl::Duration kMinTimeout = absl::Milliseconds(1);
constexpr absl::Duration kMaxTimeout = absl::Hours(24);
constexpr absl::Duration kMaxCatchupWindow = absl::Hours(365 * 24);
constexpr absl::Duration kMaxJitter = absl::Hours(1);
constexpr size_t kMaxTags = 64;
constexpr size_t kMaxTagKeyBytes = 63;
constexpr size_t kMaxTagValueBytes = 256;
constexpr size_t kMaxDependencies = 32;

// Fields the server owns. A request may carry `id` (a UUID); the others are
// refused.
constexpr std::array<std::string_view, 4> kServerFields = {"created_at", "updated_at", "version",
                                                           "next_run"};

constexpr std::array<std::string_view, 17> kJobFields = {
    "id",       "name",        "namespace",         "description",    "schedule",
    "timezone", "enabled",     "webhook",           "dispatch",       "retry_policy",
    "timeout",  "concurrency", "missed_run_policy", "catchup_window", "jitter",
    "tags",     "dependencies"};

constexpr std::array<std::string_view, 4> kConditions = {"all_success", "all_complete",
                                                         "any_success", "any_complete"};

enum class Mode {
  kRequest,   // client body: server fields refused, dispatch normalised
  kInternal,  // stored form: server fields read, no rule checks
};

Result<RetryPolicy> retry_policy_from_json(const Json& j) {
  CHRONOS_RETURN_IF_ERROR(internal::check_object(
      j, {"max_attempts", "initial_interval", "max_interval", "multiplier", "jitter"}));
  RetryPolicy r;
  CHRONOS_ASSIGN_OR_RETURN(auto attempts, get_int(j, "max_attempts"));
  if (attempts) {
    if (*attempts < kMinAttempts || *attempts > kMaxAttempts) {
      return Error::validation("max_attempts",
                               str_cat("must be between ", kMinAttempts, " and ", kMaxAttempts));
    }
    r.max_attempts = static_cast<int>(*attempts);
  }
  CHRONOS_ASSIGN_OR_RETURN(auto initial, get_duration(j, "initial_interval"));
  CHRONOS_ASSIGN_OR_RETURN(auto max, get_duration(j, "max_interval"));
  CHRONOS_ASSIGN_OR_RETURN(auto multiplier, get_number(j, "multiplier"));
  CHRONOS_ASSIGN_OR_RETURN(auto jitter, get_number(j, "jitter"));
  r.initial_interval = initial.value_or(r.initial_interval);
  r.max_interval = max.value_or(r.max_interval);
  r.multiplier = multiplier.value_or(r.multiplier);
  r.jitter = jitter.value_or(r.jitter);
  return r;
}

Result<Dependencies> dependencies_from_json(const Json& j) {
  CHRONOS_RETURN_IF_ERROR(internal::check_object(j, {"depends_on", "condition"}));
  Dependencies d;
  if (const Json* list = find(j, "depends_on"); list != nullptr) {
    if (!list->is_array())
      return Error::validation("depends_on", "must be an array of job names or ids");
    for (size_t i = 0; i < list->size(); ++i) {
      if (!(*list)[i].is_string()) {
        return Error::validation(str_cat("depends_on[", i, "]"), "must be a string");
      }
      d.depends_on.push_back((*list)[i].get<std::string>());
    }
  }
  CHRONOS_ASSIGN_OR_RETURN(auto condition, get_string(j, "condition"));
  d.condition = condition.value_or(d.condition);
  return d;
}

Result<absl::Time> time_field(const Json& j, std::string_view key) {
  CHRONOS_ASSIGN_OR_RETURN(auto text, get_string(j, key));
  if (!text) return absl::UnixEpoch();
  return nest(parse_time(*text), key);
}

// Structure and types of a job body; rules are validate_job's.
Result<Job> job_from_json(const Json& body, const JobDefaults& defaults, Mode mode) {
  if (!body.is_object()) return Error::validation("", "request body must be a JSON object");
  for (const auto& [k, v] : body.items()) {
    bool server = false;
    for (std::string_view f : kServerFields) server = server || f == k;
    if (server && mode == Mode::kRequest) {
      if (v.is_null()) continue;
      return Error::validation(k, str_cat("\"", k, "\" is set by the server"));
    }
    if (server && k != "next_run") continue;
    bool known = false;
    for (std::string_view f : kJobFields) known = known || f == k;
    if (!known) return internal::unknown_field(k);
  }

  Job job;
  job.missed_run_policy = defaults.missed_run_policy;
  CHRONOS_ASSIGN_OR_RETURN(auto id, get_string(body, "id"));
  if (id) {
    if (mode == Mode::kRequest && !is_uuid(*id)) {
      return Error::validation("id",
                               "must be a lowercase UUID (or left out: the server makes one)");
    }
    job.id = *id;
  }
  CHRONOS_ASSIGN_OR_RETURN(auto name, get_string(body, "name"));
  job.name = name.value_or("");
  CHRONOS_ASSIGN_OR_RETURN(auto ns, get_string(body, "namespace"));
  job.namespace_ = ns.value_or(job.namespace_);
  CHRONOS_ASSIGN_OR_RETURN(auto description, get_string(body, "description"));
  job.description = description.value_or("");
  CHRONOS_ASSIGN_OR_RETURN(auto schedule, get_string(body, "schedule"));
  job.schedule = schedule.value_or("");
  CHRONOS_ASSIGN_OR_RETURN(auto timezone, get_string(body, "timezone"));
  job.timezone = timezone.value_or(job.timezone);
  CHRONOS_ASSIGN_OR_RETURN(auto enabled, get_bool(body, "enabled"));
  job.enabled = enabled.value_or(true);

  if (const Json* w = find(body, "webhook"); w != nullptr) {
    CHRONOS_ASSIGN_OR_RETURN(job.webhook, nest(internal::webhook_from_json(*w), "webhook"));
  }
  if (const Json* d = find(body, "dispatch"); d != nullptr) {
    auto dispatch = mode == Mode::kRequest ? internal::dispatch_from_request(*d)
                                           : internal::dispatch_from_internal(*d);
    CHRONOS_ASSIGN_OR_RETURN(job.dispatch, nest(std::move(dispatch), "dispatch"));
  }
  if (const Json* r = find(body, "retry_policy"); r != nullptr) {
    CHRONOS_ASSIGN_OR_RETURN(job.retry_policy, nest(retry_policy_from_json(*r), "retry_policy"));
  }
  CHRONOS_ASSIGN_OR_RETURN(auto timeout, get_duration(body, "timeout"));
  job.timeout = timeout.value_or(job.timeout);
  CHRONOS_ASSIGN_OR_RETURN(auto concurrency, get_string(body, "concurrency"));
  if (concurrency) {
    std::optional<Concurrency> c = parse_concurrency(*concurrency);
    if (!c)
      return Error::validation("concurrency", "must be one of allow, forbid, buffer_one, replace");
    job.concurrency = *c;
  }
  CHRONOS_ASSIGN_OR_RETURN(auto missed, get_string(body, "missed_run_policy"));
  if (missed) {
    std::optional<MissedRunPolicy> p = parse_missed_run_policy(*missed);
    if (!p) {
      return Error::validation("missed_run_policy",
                               "must be one of ignore, execute_one, execute_all");
    }
    job.missed_run_policy = *p;
  }
  CHRONOS_ASSIGN_OR_RETURN(auto catchup, get_duration(body, "catchup_window"));
  job.catchup_window = catchup.value_or(job.catchup_window);
  CHRONOS_ASSIGN_OR_RETURN(auto jitter, get_duration(body, "jitter"));
  job.jitter = jitter.value_or(job.jitter);

  if (const Json* tags = find(body, "tags"); tags != nullptr) {
    if (!tags->is_object()) return Error::validation("tags", "must be an object of strings");
    for (const auto& [k, v] : tags->items()) {
      if (!v.is_string()) return Error::validation(str_cat("tags.", k), "must be a string");
      job.tags.emplace(k, v.get<std::string>());
    }
  }
  if (const Json* deps = find(body, "dependencies"); deps != nullptr) {
    CHRONOS_ASSIGN_OR_RETURN(job.dependencies, nest(dependencies_from_json(*deps), "dependencies"));
  }

  if (mode == Mode::kInternal) {
    CHRONOS_ASSIGN_OR_RETURN(job.created_at, time_field(body, "created_at"));
    CHRONOS_ASSIGN_OR_RETURN(job.updated_at, time_field(body, "updated_at"));
    CHRONOS_ASSIGN_OR_RETURN(auto version, get_int(body, "version"));
    job.version = version.value_or(1);
  }
  return job;
}

Status validate_name(std::string_view field, std::string_view value) {
  if (value.empty()) return Error::validation(std::string(field), "is required");
  if (!is_valid_name(value)) {
    return Error::validation(std::string(field),
                             "must match [a-z0-9][a-z0-9._-]{0,126} (lowercase letters, digits, "
                             "'.', '_', '-'; at most 127 characters)");
  }
  return ok_status();
}

bool is_tag_key(std::string_view k) {
  if (k.empty() || k.size() > kMaxTagKeyBytes) return false;
  for (char c : k) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '/' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

Status validate_retry_policy(const RetryPolicy& r) {
  if (r.max_attempts < kMinAttempts || r.max_attempts > kMaxAttempts) {
    return Error::validation("max_attempts",
                             str_cat("must be between ", kMinAttempts, " and ", kMaxAttempts));
  }
  CHRONOS_RETURN_IF_ERROR(nest(check_duration_range(r.initial_interval, kMinInterval, kMaxInterval),
                               "initial_interval"));
  CHRONOS_RETURN_IF_ERROR(
      nest(check_duration_range(r.max_interval, kMinInterval, kMaxInterval), "max_interval"));
  if (r.initial_interval > r.max_interval) {
    return Error::validation("initial_interval", "must not exceed max_interval");
  }
  if (!(r.multiplier >= kMinMultiplier && r.multiplier <= kMaxMultiplier)) {
    return Error::validation("multiplier", "must be between 1.0 and 10.0");
  }
  if (!(r.jitter >= 0.0 && r.jitter <= 1.0)) {
    return Error::validation("jitter", "must be between 0.0 and 1.0 (a fraction)");
  }
  return ok_status();
}

Status validate_dependencies(const Dependencies& d, const Job& job) {
  if (d.depends_on.empty() || d.depends_on.size() > kMaxDependencies) {
    return Error::validation("depends_on", str_cat("must list 1 to ", kMaxDependencies, " jobs"));
  }
  std::set<std::string_view> seen;
  for (size_t i = 0; i < d.depends_on.size(); ++i) {
    const std::string& ref = d.depends_on[i];
    std::string field = str_cat("depends_on[", i, "]");
    // "name", "id" or "namespace/name".
    size_t slash = ref.find('/');
    bool qualified = slash != std::string::npos;
    std::pair<std::string_view, std::string_view> parts = {
        std::string_view(ref).substr(0, slash),
        qualified ? std::string_view(ref).substr(slash + 1) : std::string_view()};
    if (!is_valid_name(parts.first) || (qualified && !is_valid_name(parts.second))) {
      return Error::validation(field, "must be a job id, name or namespace/name");
    }
    if (!seen.insert(ref).second) return Error::validation(field, "is listed twice");
    bool self = (!qualified && (ref == job.name || (!job.id.empty() && ref == job.id))) ||
                (qualified && parts.first == job.namespace_ && parts.second == job.name);
    if (self) return Error::validation(field, "a job cannot depend on itself");
  }
  bool known = false;
  for (std::string_view c : kConditions) known = known || c == d.condition;
  if (!known) {
    return Error::validation("condition",
                             "must be one of all_success, all_complete, any_success, any_complete");
  }
  return ok_status();
}

Json job_to_json(const Job& job, bool redact) {
  Json j = Json::object();
  j["id"] = job.id;
  j["name"] = job.name;
  j["namespace"] = job.namespace_;
  j["description"] = job.description;
  j["schedule"] = job.schedule;
  j["timezone"] = job.timezone;
  j["enabled"] = job.enabled;
  if (job.webhook) j["webhook"] = internal::webhook_to_json(*job.webhook, redact);
  if (job.dispatch) j["dispatch"] = internal::dispatch_to_json(*job.dispatch, redact);
  j["retry_policy"] = {
      {"max_attempts", job.retry_policy.max_attempts},
      {"initial_interval", format_duration(job.retry_policy.initial_interval)},
      {"max_interval", format_duration(job.retry_policy.max_interval)},
      {"multiplier", job.retry_policy.multiplier},
      {"jitter", job.retry_policy.jitter},
  };
  j["timeout"] = format_duration(job.timeout);
  j["concurrency"] = to_string(job.concurrency);
  j["missed_run_policy"] = to_string(job.missed_run_policy);
  j["catchup_window"] = format_duration(job.catchup_window);
  j["jitter"] = format_duration(job.jitter);
  j["tags"] = job.tags;
  if (job.dependencies) {
    j["dependencies"] = {{"depends_on", job.dependencies->depends_on},
                         {"condition", job.dependencies->condition}};
  }
  j["created_at"] = format_time(job.created_at);
  j["updated_at"] = format_time(job.updated_at);
  j["version"] = job.version;
  return j;
}

// RFC 7386 merge, with one addition for tagged unions: when the patch gives
// an object a different "type" (dispatch.type, webhook.auth.type) the old
// object is replaced instead of merged, so the old type's fields do not
// linger and fail validation.
void merge_patch(Json& target, const Json& patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = Json::object();
  auto pt = patch.find("type");
  auto tt = target.find("type");
  if (pt != patch.end() && tt != target.end() && *pt != *tt && !pt->is_null()) {
    target = Json::object();
  }
  for (const auto& [k, v] : patch.items()) {
    if (v.is_null()) {
      target.erase(k);
    } else {
      merge_patch(target[k], v);
    }
  }
}

}  // namespace

bool is_valid_name(std::string_view s) {
  if (s.empty() || s.size() > 127) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) return false;
  }
  return true;
}

Status validate_job(const Job& job) {
  if (!job.id.empty() && !is_uuid(job.id))
    return Error::validation("id", "must be a lowercase UUID");
  CHRONOS_RETURN_IF_ERROR(validate_name("name", job.name));
  CHRONOS_RETURN_IF_ERROR(validate_name("namespace", job.namespace_));
  if (job.description.size() > kMaxDescriptionBytes) {
    return Error::validation("description",
                             str_cat("must be at most ", kMaxDescriptionBytes, " bytes"));
  }
  if (job.schedule.empty()) return Error::validation("schedule", "is required");
  if (job.schedule.size() > kMaxScheduleBytes) {
    return Error::validation("schedule", str_cat("must be at most ", kMaxScheduleBytes, " bytes"));
  }
  if (job.timezone.empty()) return Error::validation("timezone", "must be an IANA time zone name");
  auto tz = cron::load_time_zone(job.timezone);
  if (!tz.ok()) {
    Error e = std::move(tz).error();
    e.code = ErrorCode::kValidation;
    e.field = "timezone";
    return e;
  }
  auto schedule = cron::Schedule::parse(job.schedule, job.timezone, job.created_at);
  if (!schedule.ok()) {
    Error e = std::move(schedule).error();
    e.code = ErrorCode::kValidation;
    if (e.field.empty()) e.field = "schedule";
    return e;
  }

  if (!job.webhook && !job.dispatch) {
    return Error::validation("webhook", "one of webhook or dispatch is required");
  }
  if (job.webhook && job.dispatch) {
    return Error::validation("dispatch",
                             "only one of webhook or dispatch may be set (in a PATCH, set the "
                             "other to null)");
  }
  if (job.webhook)
    CHRONOS_RETURN_IF_ERROR(nest(internal::validate_webhook(*job.webhook), "webhook"));
  if (job.dispatch) {
    CHRONOS_RETURN_IF_ERROR(nest(internal::validate_dispatch(*job.dispatch), "dispatch"));
  }

  CHRONOS_RETURN_IF_ERROR(nest(validate_retry_policy(job.retry_policy), "retry_policy"));
  CHRONOS_RETURN_IF_ERROR(
      nest(check_duration_range(job.timeout, kMinTimeout, kMaxTimeout), "timeout"));
  CHRONOS_RETURN_IF_ERROR(
      nest(check_duration_range(job.catchup_window, absl::ZeroDuration(), kMaxCatchupWindow),
           "catchup_window"));
  CHRONOS_RETURN_IF_ERROR(
      nest(check_duration_range(job.jitter, absl::ZeroDuration(), kMaxJitter), "jitter"));

  if (job.tags.size() > kMaxTags) {
    return Error::validation("tags", str_cat("must have at most ", kMaxTags, " tags"));
  }
  for (const auto& [k, v] : job.tags) {
    if (!is_tag_key(k)) {
      return Error::validation(str_cat("tags.", k),
                               "key must be 1-63 characters of [A-Za-z0-9._/-]");
    }
    if (v.size() > kMaxTagValueBytes) {
      return Error::validation(str_cat("tags.", k),
                               str_cat("must be at most ", kMaxTagValueBytes, " bytes"));
    }
  }
  if (job.dependencies) {
    CHRONOS_RETURN_IF_ERROR(nest(validate_dependencies(*job.dependencies, job), "dependencies"));
  }
  return ok_status();
}

Result<Job> job_from_request(const nlohmann::json& body, const JobDefaults& defaults) {
  CHRONOS_ASSIGN_OR_RETURN(Job job, job_from_json(body, defaults, Mode::kRequest));
  CHRONOS_RETURN_IF_ERROR(validate_job(job));
  return job;
}

Result<Job> apply_merge_patch(const Job& current, const nlohmann::json& patch,
                              const JobDefaults& defaults) {
  if (!patch.is_object()) return Error::validation("", "merge patch must be a JSON object");
  // merge_patch recurses; a job is nowhere near this deep (model/limits.h).
  if (!internal::depth_within(patch, kMaxMergePatchDepth)) {
    return Error::validation("", "merge patch is nested too deeply");
  }
  for (std::string_view f : {"id", "created_at", "updated_at", "version", "next_run"}) {
    if (patch.contains(f)) {
      return Error::validation(std::string(f),
                               str_cat("\"", f, "\" is set by the server and cannot be patched"));
    }
  }
  Json doc = job_to_internal_json(current);
  // Switching target kind: giving one of webhook/dispatch drops the other
  // unless the patch also mentions it.
  for (auto [given, other] : {std::pair{"webhook", "dispatch"}, std::pair{"dispatch", "webhook"}}) {
    auto it = patch.find(given);
    if (it != patch.end() && !it->is_null() && !patch.contains(other)) doc.erase(other);
  }
  merge_patch(doc, patch);
  for (std::string_view f : {"id", "created_at", "updated_at", "version"}) doc.erase(f);
  CHRONOS_ASSIGN_OR_RETURN(Job job, job_from_json(doc, defaults, Mode::kRequest));
  job.id = current.id;
  job.created_at = current.created_at;
  job.updated_at = current.updated_at;
  job.version = current.version;
  CHRONOS_RETURN_IF_ERROR(validate_job(job));
  return job;
}

nlohmann::json job_to_api_json(const Job& job) { return job_to_json(job, /*redact=*/true); }

nlohmann::json job_to_internal_json(const Job& job) { return job_to_json(job, /*redact=*/false); }

Result<Job> job_from_internal_json(const nlohmann::json& j) {
  return job_from_json(j, JobDefaults{}, Mode::kInternal);
}

Result<Webhook> webhook_from_request(const nlohmann::json& j) {
  CHRONOS_ASSIGN_OR_RETURN(Webhook w, internal::webhook_from_json(j));
  CHRONOS_RETURN_IF_ERROR(internal::validate_webhook(w));
  return w;
}

}  // namespace chronos::model
