#include "model/concurrency.h"

namespace chronos::model {

bool is_delayed_start(const Execution& e, absl::Duration offset) {
  switch (e.trigger) {
    case Trigger::kCatchup:
      return true;
    case Trigger::kSchedule:
      return e.started_at - (e.scheduled_time + offset) > kOnTimeSlack;
    default:
      return false;
  }
}

bool delayed_run_shelters(const Execution& e, absl::Duration offset, absl::Time now) {
  const absl::Time late_from = e.status == ExecutionStatus::kPending ? now : e.started_at;
  return late_from - (e.scheduled_time + offset) <= kMaxShelterLateness;
}

Admission admit(Concurrency policy, const ActiveRuns& active, bool delayed, bool force) {
  if (force || policy == Concurrency::kAllow || policy == Concurrency::kReplace) {
    return Admission::kRun;
  }
  if (active.running == 0 && active.waiting == 0) return Admission::kRun;
  if (delayed || active.any_delayed) {
    return active.waiting < kMaxWaitingRuns ? Admission::kWait : Admission::kSkip;
  }
  if (policy == Concurrency::kBufferOne && active.waiting == 0) return Admission::kWait;
  return Admission::kSkip;
}

}  // namespace chronos::model
