#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cron/schedule.h"
#include "gtest/gtest.h"
#include "model/job.h"
#include "sched/decide.h"
#include "store/store.h"

namespace chronos::sched::testing {

inline absl::Time utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

inline model::Job make_job(std::string schedule, absl::Time created_at,
                           std::string tz = "UTC") {
  model::Job j;
  j.id = "0b6c7e0e-8f4e-4a43-9a52-5d8a1c0f7e11";
  j.name = "job";
  j.schedule = std::move(schedule);
  j.timezone = std::move(tz);
  j.created_at = created_at;
  j.updated_at = created_at;
  j.concurrency = model::Concurrency::kAllow;
  return j;
}

inline cron::Schedule parse(const model::Job& job) {
  auto s = cron::Schedule::parse(job.schedule, job.timezone, job.created_at);
  EXPECT_TRUE(s.ok()) << job.schedule;
  return *s;
}

// Applies what the store would apply on commit of the plan's command: the
// last_scheduled advance (running sets are managed by the tests).
inline void advance(store::ScheduleState& state, const Plan& plan) {
  if (plan.last_scheduled) state.last_scheduled = std::max(state.last_scheduled, *plan.last_scheduled);
}

inline std::vector<absl::Time> scheduled_times(const Plan& plan) {
  std::vector<absl::Time> out;
  for (const PlannedRun& r : plan.runs) out.push_back(r.scheduled_time);
  return out;
}

}  // namespace chronos::sched::testing
