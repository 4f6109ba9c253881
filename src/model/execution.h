#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"

namespace chronos::model {

enum class ExecutionStatus : uint8_t {
  kPending,
  kRunning,
  kSuccess,
  kFailed,
  kSkipped,
  kCancelled
};
enum class Trigger : uint8_t { kSchedule, kManual, kCatchup, kReplay, kDependency };

std::string_view to_string(ExecutionStatus s);
std::string_view to_string(Trigger t);
std::optional<ExecutionStatus> parse_execution_status(std::string_view s);
std::optional<Trigger> parse_trigger(std::string_view s);

// A terminal status: the execution will not change again.
bool is_terminal(ExecutionStatus s);

// Largest response excerpt kept per execution (SPEC §3: first 64 KiB).
inline constexpr size_t kMaxResponseBytes = 64 << 10;
// Largest error message kept per execution.
inline constexpr size_t kMaxErrorBytes = 4 << 10;

// One run of a job (SPEC §3). A plain value. Times that have not happened
// are absl::InfinitePast() ("unset").
struct Execution {
  std::string id;  // time-ordered UUIDv7: sorts by creation
  std::string job_id;
  std::string job_name;
  std::string namespace_;
  int64_t job_version = 0;  // the definition it runs
  absl::Time scheduled_time = absl::InfinitePast();
  Trigger trigger = Trigger::kSchedule;
  ExecutionStatus status = ExecutionStatus::kPending;
  int attempts = 0;  // attempts started so far (including re-dispatch)
  absl::Time started_at = absl::InfinitePast();
  absl::Time completed_at = absl::InfinitePast();
  int status_code = 0;    // last HTTP status (0 = none)
  std::string response;   // first kMaxResponseBytes of the last response body
  std::string error;      // last error, ≤ kMaxErrorBytes
  std::string node_id;    // node that (last) dispatched it
  std::string replay_of;  // id of the execution this one replays, or ""
  // A running execution waiting out a retry's back-off: when its next
  // attempt is due (recorded before the wait, so a new leader honours it).
  // Unset otherwise.
  absl::Time next_attempt_at = absl::InfinitePast();

  bool operator==(const Execution&) const = default;
};

}  // namespace chronos::model
