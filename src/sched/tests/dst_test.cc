// DST days in America/New_York driven through plan_job step by step (SPEC §2:
// a skipped wall time runs shifted forward by the gap; a repeated one runs
// once, at its first occurrence), checking no early and no duplicate runs.
#include <vector>

#include "base/clock.h"
#include "gtest/gtest.h"
#include "sched/decide.h"
#include "sched/tests/test_util.h"

namespace chronos::sched {
namespace {

using testing::advance;
using testing::make_job;
using testing::parse;
using testing::utc;

struct Fired {
  absl::Time scheduled;
  absl::Time planned_at;
  model::Trigger trigger;
};

// Steps `clock` by `step` from its current time to `end`, planning at each
// step; returns every planned run.
std::vector<Fired> drive_fixed_steps(const model::Job& job, SimulatedClock& clock, absl::Time end,
                                     absl::Duration step) {
  cron::Schedule s = parse(job);
  store::ScheduleState state;
  std::vector<Fired> out;
  for (; clock.now() <= end; clock.advance(step)) {
    Plan p = plan_job(job, s, state, clock.now());
    for (const PlannedRun& r : p.runs) {
      EXPECT_LE(r.fire_time, clock.now()) << "planned before its time";
      out.push_back({r.scheduled_time, clock.now(), r.trigger});
    }
    advance(state, p);
  }
  return out;
}

// Wakes exactly at next_fire_time each time, as the driver does.
std::vector<Fired> drive_by_next_fire(const model::Job& job, SimulatedClock& clock,
                                      absl::Time end) {
  cron::Schedule s = parse(job);
  store::ScheduleState state;
  std::vector<Fired> out;
  while (true) {
    std::optional<absl::Time> wake = next_fire_time(job, s, state);
    if (!wake || *wake > end) break;
    EXPECT_GE(*wake, clock.now());
    clock.set_now(*wake);
    Plan p = plan_job(job, s, state, clock.now());
    EXPECT_FALSE(p.runs.empty()) << "woke for nothing at " << clock.now();
    for (const PlannedRun& r : p.runs) out.push_back({r.scheduled_time, clock.now(), r.trigger});
    advance(state, p);
  }
  return out;
}

std::vector<absl::Time> scheduled(const std::vector<Fired>& f) {
  std::vector<absl::Time> out;
  for (const Fired& x : f) out.push_back(x.scheduled);
  return out;
}

TEST(DecideDst, SpringForwardRunsOnceAtThreeThirtyEdt) {
  // 2024-03-10: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
  const absl::Time start = utc(2024, 3, 9, 17);  // 12:00 EST on the 9th
  model::Job job = make_job("30 2 * * *", start, "America/New_York");
  SimulatedClock clock(start);
  std::vector<Fired> f = drive_fixed_steps(job, clock, utc(2024, 3, 11, 16), absl::Minutes(1));
  EXPECT_EQ(scheduled(f), (std::vector<absl::Time>{
                              utc(2024, 3, 10, 7, 30),  // 03:30 EDT (shifted by the gap)
                              utc(2024, 3, 11, 6, 30),  // 02:30 EDT the next day
                          }));
  for (const Fired& x : f) {
    EXPECT_EQ(x.trigger, model::Trigger::kSchedule);
    EXPECT_EQ(x.planned_at, x.scheduled);
  }
}

TEST(DecideDst, SpringForwardDrivenByNextFireTime) {
  const absl::Time start = utc(2024, 3, 9, 17);
  model::Job job = make_job("30 2 * * *", start, "America/New_York");
  SimulatedClock clock(start);
  std::vector<Fired> f = drive_by_next_fire(job, clock, utc(2024, 3, 11, 16));
  EXPECT_EQ(scheduled(f),
            (std::vector<absl::Time>{utc(2024, 3, 10, 7, 30), utc(2024, 3, 11, 6, 30)}));
}

TEST(DecideDst, FallBackRunsOnceAtTheFirstOneThirty) {
  // 2024-11-03: 02:00 EDT falls back to 01:00 EST; 01:30 occurs twice.
  const absl::Time start = utc(2024, 11, 2, 16);  // 12:00 EDT on the 2nd
  model::Job job = make_job("30 1 * * *", start, "America/New_York");
  SimulatedClock clock(start);
  std::vector<Fired> f = drive_fixed_steps(job, clock, utc(2024, 11, 4, 17), absl::Minutes(1));
  EXPECT_EQ(scheduled(f), (std::vector<absl::Time>{
                              utc(2024, 11, 3, 5, 30),  // 01:30 EDT, first occurrence
                              utc(2024, 11, 4, 6, 30),  // 01:30 EST the next day
                          }));
}

TEST(DecideDst, FallBackDrivenByNextFireTime) {
  const absl::Time start = utc(2024, 11, 2, 16);
  model::Job job = make_job("30 1 * * *", start, "America/New_York");
  SimulatedClock clock(start);
  std::vector<Fired> f = drive_by_next_fire(job, clock, utc(2024, 11, 4, 17));
  EXPECT_EQ(scheduled(f),
            (std::vector<absl::Time>{utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)}));
}

TEST(DecideDst, FallBackWithCoarseStepsCatchesUpOnceAndNeverTwice) {
  // Stepping every 25 minutes: the run is found late (a catch-up), still once.
  const absl::Time start = utc(2024, 11, 2, 16);
  model::Job job = make_job("30 1 * * *", start, "America/New_York");
  job.missed_run_policy = model::MissedRunPolicy::kExecuteAll;
  SimulatedClock clock(start);
  std::vector<Fired> f = drive_fixed_steps(job, clock, utc(2024, 11, 4, 17), absl::Minutes(25));
  EXPECT_EQ(scheduled(f),
            (std::vector<absl::Time>{utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)}));
}

TEST(DecideDst, HourlyAcrossSpringForwardHasNoDuplicate) {
  // `0 * * * *`: 02:00 shifts to 03:00, which is itself a match: runs once.
  const absl::Time start = utc(2024, 3, 10, 4);  // 23:00 EST on the 9th
  model::Job job = make_job("0 * * * *", start, "America/New_York");
  SimulatedClock clock(start);
  std::vector<Fired> f = drive_fixed_steps(job, clock, utc(2024, 3, 10, 9), absl::Seconds(30));
  EXPECT_EQ(scheduled(f), (std::vector<absl::Time>{
                              utc(2024, 3, 10, 5),  // 00:00 EST
                              utc(2024, 3, 10, 6),  // 01:00 EST
                              utc(2024, 3, 10, 7),  // 03:00 EDT
                              utc(2024, 3, 10, 8),  // 04:00 EDT
                              utc(2024, 3, 10, 9),  // 05:00 EDT
                          }));
}

}  // namespace
}  // namespace chronos::sched
