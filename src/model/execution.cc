#include "model/execution.h"

#include <algorithm>
#include <limits>

#include "base/duration.h"
#include "base/strings.h"
#include "model/execution_codec.h"
#include "model/job_codec.h"
#include "model/json_fields.h"

namespace chronos::model {

namespace {

using internal::get_bytes;
using internal::get_int;
using internal::get_string;
using internal::get_time_or_unset;
using internal::Json;
using internal::time_or_null;

constexpr ExecutionStatus kStatuses[] = {ExecutionStatus::kPending, ExecutionStatus::kRunning,
                                         ExecutionStatus::kSuccess, ExecutionStatus::kFailed,
                                         ExecutionStatus::kSkipped, ExecutionStatus::kCancelled};
constexpr Trigger kTriggers[] = {Trigger::kSchedule, Trigger::kManual, Trigger::kCatchup,
                                 Trigger::kReplay, Trigger::kDependency};

Result<std::string> required_string(const Json& j, std::string_view key) {
  CHRONOS_ASSIGN_OR_RETURN(auto v, get_string(j, key));
  if (!v) return Error::validation(std::string(key), "is required");
  return std::move(*v);
}

Result<int> int_field(const Json& j, std::string_view key) {
  CHRONOS_ASSIGN_OR_RETURN(auto v, get_int(j, key));
  if (!v) return 0;
  if (*v < std::numeric_limits<int>::min() || *v > std::numeric_limits<int>::max()) {
    return Error::validation(std::string(key), "is out of range");
  }
  return static_cast<int>(*v);
}

}  // namespace

std::string_view to_string(ExecutionStatus s) {
  switch (s) {
    case ExecutionStatus::kPending:
      return "pending";
    case ExecutionStatus::kRunning:
      return "running";
    case ExecutionStatus::kSuccess:
      return "success";
    case ExecutionStatus::kFailed:
      return "failed";
    case ExecutionStatus::kSkipped:
      return "skipped";
    case ExecutionStatus::kCancelled:
      return "cancelled";
  }
  return "pending";
}

std::string_view to_string(Trigger t) {
  switch (t) {
    case Trigger::kSchedule:
      return "schedule";
    case Trigger::kManual:
      return "manual";
    case Trigger::kCatchup:
      return "catchup";
    case Trigger::kReplay:
      return "replay";
    case Trigger::kDependency:
      return "dependency";
  }
  return "schedule";
}

std::optional<ExecutionStatus> parse_execution_status(std::string_view s) {
  for (ExecutionStatus status : kStatuses) {
    if (s == to_string(status)) return status;
  }
  return std::nullopt;
}

std::optional<Trigger> parse_trigger(std::string_view s) {
  for (Trigger t : kTriggers) {
    if (s == to_string(t)) return t;
  }
  return std::nullopt;
}

bool is_terminal(ExecutionStatus s) {
  return s != ExecutionStatus::kPending && s != ExecutionStatus::kRunning;
}

std::string_view truncate_utf8(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  auto is_continuation = [&](size_t i) { return (static_cast<uint8_t>(s[i]) & 0xc0) == 0x80; };
  // s[max_bytes] is the first byte cut off. If it continues a sequence, cut
  // before that sequence's lead byte (at most 3 bytes back).
  size_t cut = max_bytes;
  for (int back = 0; back < 3 && cut > 0 && is_continuation(cut); ++back) --cut;
  if (is_continuation(cut)) cut = max_bytes;  // not UTF-8 here: plain bytes
  return s.substr(0, cut);
}

std::string sanitize_utf8(std::string_view s) {
  if (internal::valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size();) {
    const size_t n = internal::utf8_sequence_length(s, i);
    if (n == 0) {
      out.append("\xef\xbf\xbd");  // U+FFFD
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// The fields both JSON forms write the same way.
static Json execution_common_json(const Execution& e) {
  Json j = Json::object();
  j["id"] = e.id;
  j["job_id"] = e.job_id;
  j["job_name"] = e.job_name;
  j["namespace"] = e.namespace_;
  j["job_version"] = e.job_version;
  j["scheduled_time"] = time_or_null(e.scheduled_time);
  j["trigger"] = to_string(e.trigger);
  j["status"] = to_string(e.status);
  j["attempts"] = e.attempts;
  j["started_at"] = time_or_null(e.started_at);
  j["completed_at"] = time_or_null(e.completed_at);
  return j;
}

nlohmann::json execution_to_api_json(const Execution& e) {
  Json j = execution_common_json(e);
  if (e.started_at != absl::InfinitePast() && e.completed_at != absl::InfinitePast()) {
    // Nodes' clocks differ: a result recorded by another node may predate
    // the start by a little. A run never takes negative time.
    j["duration"] = format_duration(std::max(e.completed_at - e.started_at, absl::ZeroDuration()));
  } else {
    j["duration"] = nullptr;
  }
  j["status_code"] = e.status_code == 0 ? Json(nullptr) : Json(e.status_code);
  j["response"] = sanitize_utf8(e.response);
  j["error"] = sanitize_utf8(e.error);
  j["node_id"] = e.node_id;
  j["replay_of"] = e.replay_of.empty() ? Json(nullptr) : Json(e.replay_of);
  j["next_attempt_at"] = time_or_null(e.next_attempt_at);
  return j;
}

nlohmann::json execution_to_internal_json(const Execution& e) {
  Json j = execution_common_json(e);
  j["status_code"] = e.status_code;
  j["response"] = internal::bytes_to_json(e.response);
  j["error"] = internal::bytes_to_json(e.error);
  j["node_id"] = e.node_id;
  j["replay_of"] = e.replay_of;
  // Only when set: records written before it existed decode the same.
  if (e.next_attempt_at != absl::InfinitePast()) {
    j["next_attempt_at"] = time_or_null(e.next_attempt_at);
  }
  return j;
}

Result<Execution> execution_from_internal_json(const nlohmann::json& j) {
  CHRONOS_RETURN_IF_ERROR(internal::check_object(
      j, {"id", "job_id", "job_name", "namespace", "job_version", "scheduled_time", "trigger",
          "status", "attempts", "started_at", "completed_at", "status_code", "response", "error",
          "node_id", "replay_of", "next_attempt_at"}));
  Execution e;
  CHRONOS_ASSIGN_OR_RETURN(e.id, required_string(j, "id"));
  CHRONOS_ASSIGN_OR_RETURN(e.job_id, required_string(j, "job_id"));
  CHRONOS_ASSIGN_OR_RETURN(auto job_name, get_string(j, "job_name"));
  e.job_name = job_name.value_or("");
  CHRONOS_ASSIGN_OR_RETURN(auto ns, get_string(j, "namespace"));
  e.namespace_ = ns.value_or("");
  CHRONOS_ASSIGN_OR_RETURN(auto version, get_int(j, "job_version"));
  e.job_version = version.value_or(0);
  CHRONOS_ASSIGN_OR_RETURN(e.scheduled_time, get_time_or_unset(j, "scheduled_time"));

  CHRONOS_ASSIGN_OR_RETURN(const std::string trigger, required_string(j, "trigger"));
  std::optional<Trigger> t = parse_trigger(trigger);
  if (!t) {
    return Error::validation("trigger",
                             "must be one of schedule, manual, catchup, replay, dependency");
  }
  e.trigger = *t;
  CHRONOS_ASSIGN_OR_RETURN(const std::string status, required_string(j, "status"));
  std::optional<ExecutionStatus> s = parse_execution_status(status);
  if (!s) {
    return Error::validation(
        "status", "must be one of pending, running, success, failed, skipped, cancelled");
  }
  e.status = *s;

  CHRONOS_ASSIGN_OR_RETURN(e.attempts, int_field(j, "attempts"));
  CHRONOS_ASSIGN_OR_RETURN(e.started_at, get_time_or_unset(j, "started_at"));
  CHRONOS_ASSIGN_OR_RETURN(e.completed_at, get_time_or_unset(j, "completed_at"));
  CHRONOS_ASSIGN_OR_RETURN(e.status_code, int_field(j, "status_code"));
  CHRONOS_ASSIGN_OR_RETURN(e.response, get_bytes(j, "response"));
  CHRONOS_ASSIGN_OR_RETURN(e.error, get_bytes(j, "error"));
  CHRONOS_ASSIGN_OR_RETURN(auto node_id, get_string(j, "node_id"));
  e.node_id = node_id.value_or("");
  CHRONOS_ASSIGN_OR_RETURN(auto replay_of, get_string(j, "replay_of"));
  e.replay_of = replay_of.value_or("");
  CHRONOS_ASSIGN_OR_RETURN(e.next_attempt_at, get_time_or_unset(j, "next_attempt_at"));
  return e;
}

}  // namespace chronos::model
