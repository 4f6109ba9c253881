#include "sched/decide.h"

#include <chrono>
#include <set>
#include <string>

#include "base/clock.h"
#include "gtest/gtest.h"
#include "sched/tests/test_util.h"

namespace chronos::sched {
namespace {

using model::Concurrency;
using model::ExecutionStatus;
using model::MissedRunPolicy;
using model::Trigger;
using testing::advance;
using testing::make_job;
using testing::parse;
using testing::scheduled_times;
using testing::utc;

const absl::Time kT0 = utc(2024, 5, 1, 12, 0, 0);

// ---------------------------------------------------------------- due times

TEST(Decide, NothingDueBeforeTheFirstTime) {
  model::Job job = make_job("* * * * *", kT0);
  Plan p = plan_job(job, parse(job), {}, kT0 + absl::Seconds(59));
  EXPECT_TRUE(p.empty());
  EXPECT_TRUE(p.runs.empty());
  EXPECT_FALSE(p.last_scheduled);
}

TEST(Decide, RunsOnTimeAtTheExactScheduledTime) {
  model::Job job = make_job("* * * * *", kT0);
  Plan p = plan_job(job, parse(job), {}, kT0 + absl::Minutes(1));
  ASSERT_EQ(p.runs.size(), 1u);
  EXPECT_EQ(p.runs[0].scheduled_time, kT0 + absl::Minutes(1));
  EXPECT_EQ(p.runs[0].fire_time, kT0 + absl::Minutes(1));
  EXPECT_EQ(p.runs[0].trigger, Trigger::kSchedule);
  EXPECT_EQ(p.last_scheduled, kT0 + absl::Minutes(1));
  EXPECT_EQ(p.missed, 0u);
}

TEST(Decide, NeverPlansOneNanosecondEarly) {
  model::Job job = make_job("* * * * *", kT0);
  Plan p = plan_job(job, parse(job), {}, kT0 + absl::Minutes(1) - absl::Nanoseconds(1));
  EXPECT_TRUE(p.empty());
}

TEST(Decide, ConsumedTimeIsNotPlannedAgain) {
  model::Job job = make_job("* * * * *", kT0);
  cron::Schedule s = parse(job);
  store::ScheduleState state;
  SimulatedClock clock(kT0 + absl::Minutes(1));
  Plan p1 = plan_job(job, s, state, clock.now());
  ASSERT_EQ(p1.runs.size(), 1u);
  advance(state, p1);
  clock.advance(absl::Seconds(30));
  EXPECT_TRUE(plan_job(job, s, state, clock.now()).empty());
}

TEST(Decide, LateWithinGraceIsOnTime) {
  model::Job job = make_job("* * * * *", kT0);
  Plan p = plan_job(job, parse(job), {}, kT0 + absl::Minutes(1) + absl::Seconds(2));
  ASSERT_EQ(p.runs.size(), 1u);
  EXPECT_EQ(p.runs[0].trigger, Trigger::kSchedule);
}

TEST(Decide, LateBeyondGraceIsMissed) {
  model::Job job = make_job("* * * * *", kT0);
  job.missed_run_policy = MissedRunPolicy::kExecuteOne;
  Plan p = plan_job(job, parse(job), {},
                    kT0 + absl::Minutes(1) + absl::Seconds(2) + absl::Nanoseconds(1));
  ASSERT_EQ(p.runs.size(), 1u);
  EXPECT_EQ(p.runs[0].trigger, Trigger::kCatchup);
  EXPECT_EQ(p.runs[0].scheduled_time, kT0 + absl::Minutes(1));
}

TEST(Decide, LateGraceIsAnOption) {
  model::Job job = make_job("* * * * *", kT0);
  PlanOptions opts;
  opts.late_grace = absl::Seconds(30);
  Plan p = plan_job(job, parse(job), {}, kT0 + absl::Minutes(1) + absl::Seconds(20), opts);
  ASSERT_EQ(p.runs.size(), 1u);
  EXPECT_EQ(p.runs[0].trigger, Trigger::kSchedule);
}

TEST(Decide, NewJobDoesNotCatchUpBeforeCreatedAt) {
  // Created at 12:00:30; the 12:00 run and everything before never existed.
  model::Job job = make_job("* * * * *", kT0 + absl::Seconds(30));
  job.missed_run_policy = MissedRunPolicy::kExecuteAll;
  Plan p = plan_job(job, parse(job), {}, kT0 + absl::Seconds(40));
  EXPECT_TRUE(p.empty());
  p = plan_job(job, parse(job), {}, kT0 + absl::Minutes(1));
  EXPECT_EQ(scheduled_times(p), std::vector<absl::Time>{kT0 + absl::Minutes(1)});
  EXPECT_EQ(p.missed, 0u);
}

TEST(Decide, TimeExactlyAtCreatedAtIsNotDue) {
  model::Job job = make_job("* * * * *", kT0);
  job.missed_run_policy = MissedRunPolicy::kExecuteAll;
  Plan p = plan_job(job, parse(job), {}, kT0);
  EXPECT_TRUE(p.empty());
}

TEST(Decide, DisabledJobConsumesNothing) {
  model::Job job = make_job("* * * * *", kT0);
  job.enabled = false;
  store::ScheduleState state;
  state.last_scheduled = kT0;
  Plan p = plan_job(job, parse(job), state, kT0 + absl::Minutes(10));
  EXPECT_TRUE(p.empty());
  EXPECT_FALSE(p.last_scheduled);
  EXPECT_EQ(p.missed, 0u);
  EXPECT_FALSE(next_fire_time(job, parse(job), state));
}

TEST(Decide, ResumedJobTreatsThePauseAsMissedRuns) {
  model::Job job = make_job("* * * * *", kT0);
  job.missed_run_policy = MissedRunPolicy::kExecuteOne;
  store::ScheduleState state;
  state.last_scheduled = kT0;
  job.enabled = false;
  EXPECT_TRUE(plan_job(job, parse(job), state, kT0 + absl::Minutes(5) + absl::Seconds(10)).empty());
  job.enabled = true;  // resumed 5m10s after the last run
  Plan p = plan_job(job, parse(job), state, kT0 + absl::Minutes(5) + absl::Seconds(10));
  ASSERT_EQ(p.runs.size(), 1u);
  EXPECT_EQ(p.runs[0].trigger, Trigger::kCatchup);
  EXPECT_EQ(p.runs[0].scheduled_time, kT0 + absl::Minutes(5));
  EXPECT_EQ(p.missed, 4u);
}

// ---------------------------------------------------------------- missed runs

// Node down for 10 minutes over `* * * * *`: last run 12:00, back at
// 12:10:30, so 12:01 .. 12:10 (10 times) are all missed.
struct DownTenMinutes {
  model::Job job = make_job("* * * * *", kT0 - absl::Hours(1));
  store::ScheduleState state;
  absl::Time now = kT0 + absl::Minutes(10) + absl::Seconds(30);
  DownTenMinutes() { state.last_scheduled = kT0; }
};

TEST(Decide, IgnoreRunsNoneAndCountsTenMissed) {
  DownTenMinutes d;
  d.job.missed_run_policy = MissedRunPolicy::kIgnore;
  Plan p = plan_job(d.job, parse(d.job), d.state, d.now);
  EXPECT_TRUE(p.runs.empty());
  EXPECT_EQ(p.missed, 10u);
  EXPECT_FALSE(p.missed_capped);
  EXPECT_EQ(p.last_scheduled, kT0 + absl::Minutes(10));
}

TEST(Decide, ExecuteOneRunsTheNewestMissedTimeOnce) {
  DownTenMinutes d;
  d.job.missed_run_policy = MissedRunPolicy::kExecuteOne;
  Plan p = plan_job(d.job, parse(d.job), d.state, d.now);
  ASSERT_EQ(p.runs.size(), 1u);
  EXPECT_EQ(p.runs[0].scheduled_time, kT0 + absl::Minutes(10));
  EXPECT_EQ(p.runs[0].trigger, Trigger::kCatchup);
  EXPECT_EQ(p.missed, 9u);
  EXPECT_EQ(p.last_scheduled, kT0 + absl::Minutes(10));
}

TEST(Decide, ExecuteAllRunsEachMissedTimeOldestFirst) {
  DownTenMinutes d;
  d.job.missed_run_policy = MissedRunPolicy::kExecuteAll;
  Plan p = plan_job(d.job, parse(d.job), d.state, d.now);
  ASSERT_EQ(p.runs.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(p.runs[i].scheduled_time, kT0 + absl::Minutes(i + 1));
    EXPECT_EQ(p.runs[i].trigger, Trigger::kCatchup);
  }
  EXPECT_EQ(p.missed, 0u);
  EXPECT_EQ(p.last_scheduled, kT0 + absl::Minutes(10));
}

TEST(Decide, OnTimeRunIsNotACatchupWhenBackExactlyAtItsTime) {
  DownTenMinutes d;
  d.job.missed_run_policy = MissedRunPolicy::kExecuteOne;
  Plan p = plan_job(d.job, parse(d.job), d.state, kT0 + absl::Minutes(10));
  ASSERT_EQ(p.runs.size(), 2u);
  EXPECT_EQ(p.runs[0].scheduled_time, kT0 + absl::Minutes(9));
  EXPECT_EQ(p.runs[0].trigger, Trigger::kCatchup);
  EXPECT_EQ(p.runs[1].scheduled_time, kT0 + absl::Minutes(10));
  EXPECT_EQ(p.runs[1].trigger, Trigger::kSchedule);
  EXPECT_EQ(p.missed, 8u);
}

TEST(Decide, CatchupWindowCutsOlderMissedTimes) {
  DownTenMinutes d;
  d.job.missed_run_policy = MissedRunPolicy::kExecuteAll;
  d.job.catchup_window = absl::Minutes(5);  // t >= 12:05:30
  Plan p = plan_job(d.job, parse(d.job), d.state, d.now);
  ASSERT_EQ(p.runs.size(), 5u);
  EXPECT_EQ(p.runs.front().scheduled_time, kT0 + absl::Minutes(6));
  EXPECT_EQ(p.runs.back().scheduled_time, kT0 + absl::Minutes(10));
  EXPECT_EQ(p.missed, 5u);
  EXPECT_EQ(p.last_scheduled, kT0 + absl::Minutes(10));
}

TEST(Decide, CatchupWindowBoundaryIsInclusive) {
  DownTenMinutes d;
  d.job.missed_run_policy = MissedRunPolicy::kExecuteAll;
  d.job.catchup_window = absl::Minutes(5) + absl::Seconds(30);  // t >= 12:05:00
  Plan p = plan_job(d.job, parse(d.job), d.state, d.now);
  ASSERT_EQ(p.runs.size(), 6u);
  EXPECT_EQ(p.runs.front().scheduled_time, kT0 + absl::Minutes(5));
}

TEST(Decide, ExecuteAllIsCappedAtTheNewestThousand) {
  // `* * * * * *` down for 2 hours: 7197 missed + 3 on time (grace 2s).
  model::Job job = make_job("* * * * * *", kT0 - absl::Hours(3));
  job.missed_run_policy = MissedRunPolicy::kExecuteAll;
  store::ScheduleState state;
  state.last_scheduled = kT0;
  absl::Time now = kT0 + absl::Hours(2);
  Plan p = plan_job(job, parse(job), state, now);
  ASSERT_EQ(p.runs.size(), 1003u);
  for (size_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(p.runs[i].trigger, Trigger::kCatchup);
    EXPECT_EQ(p.runs[i].scheduled_time, now - absl::Seconds(1002 - static_cast<int64_t>(i)));
  }
  for (size_t i = 1000; i < 1003; ++i) EXPECT_EQ(p.runs[i].trigger, Trigger::kSchedule);
  EXPECT_EQ(p.runs.back().scheduled_time, now);
  EXPECT_EQ(p.missed, 7197u - 1000u);
  EXPECT_EQ(p.last_scheduled, now);
}

TEST(Decide, CatchupCapIsAnOption) {
  DownTenMinutes d;
  d.job.missed_run_policy = MissedRunPolicy::kExecuteAll;
  PlanOptions opts;
  opts.max_catchup_runs = 3;
  Plan p = plan_job(d.job, parse(d.job), d.state, d.now, opts);
  EXPECT_EQ(scheduled_times(p),
            (std::vector<absl::Time>{kT0 + absl::Minutes(8), kT0 + absl::Minutes(9),
                                     kT0 + absl::Minutes(10)}));
  EXPECT_EQ(p.missed, 7u);
}

TEST(Decide, YearLongPauseOfAPerSecondJobIsBounded) {
  model::Job job = make_job("* * * * * *", kT0);
  store::ScheduleState state;
  state.last_scheduled = kT0;
  const absl::Time now = kT0 + absl::Hours(24 * 365) + absl::Milliseconds(500);
  const auto start = std::chrono::steady_clock::now();

  job.missed_run_policy = MissedRunPolicy::kIgnore;
  Plan ignore = plan_job(job, parse(job), state, now);
  EXPECT_EQ(ignore.runs.size(), 2u);  // the on-time ones (grace 2s)
  EXPECT_EQ(ignore.missed, 10'000u);
  EXPECT_TRUE(ignore.missed_capped);
  EXPECT_EQ(ignore.last_scheduled, now - absl::Milliseconds(500));

  job.missed_run_policy = MissedRunPolicy::kExecuteOne;
  Plan one = plan_job(job, parse(job), state, now);
  size_t catchups = 0;
  for (const PlannedRun& r : one.runs) catchups += r.trigger == Trigger::kCatchup;
  EXPECT_EQ(catchups, 1u);

  job.missed_run_policy = MissedRunPolicy::kExecuteAll;  // 24h window, capped at 1000
  Plan all = plan_job(job, parse(job), state, now);
  catchups = 0;
  for (const PlannedRun& r : all.runs) catchups += r.trigger == Trigger::kCatchup;
  EXPECT_EQ(catchups, 1000u);
  EXPECT_TRUE(all.missed_capped);

  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::seconds(20)) << "bounded work, even under ASan";
}

TEST(Decide, RunsPlusMissedAccountForEveryDueTime) {
  for (auto policy :
       {MissedRunPolicy::kIgnore, MissedRunPolicy::kExecuteOne, MissedRunPolicy::kExecuteAll}) {
    DownTenMinutes d;
    d.job.missed_run_policy = policy;
    Plan p = plan_job(d.job, parse(d.job), d.state, d.now);
    EXPECT_EQ(p.runs.size() + p.missed, 10u) << model::to_string(policy);
  }
}

// ---------------------------------------------------------------- concurrency

TEST(Decide, TheOverlapRuleIsLeftToApplyForForbidAndBufferOne) {
  // Run, wait or skip is decided against the state when the start is
  // applied (model/concurrency.h): the plan proposes the run and cancels
  // nothing.
  for (Concurrency c : {Concurrency::kForbid, Concurrency::kBufferOne}) {
    model::Job job = make_job("* * * * *", kT0);
    job.concurrency = c;
    store::ScheduleState state;
    state.running = {"exec-1"};
    Plan p = plan_job(job, parse(job), state, kT0 + absl::Minutes(1));
    ASSERT_EQ(p.runs.size(), 1u);
    EXPECT_TRUE(p.cancel.empty());
    EXPECT_EQ(p.last_scheduled, kT0 + absl::Minutes(1));
  }
}

TEST(Decide, CatchupsAreAllProposedWhileOneIsRunning) {
  DownTenMinutes d;
  d.job.concurrency = Concurrency::kForbid;
  d.job.missed_run_policy = MissedRunPolicy::kExecuteAll;
  d.state.running = {"exec-1"};
  Plan p = plan_job(d.job, parse(d.job), d.state, d.now);
  EXPECT_EQ(p.runs.size(), 10u);
  EXPECT_EQ(p.missed, 0u);
}

TEST(Decide, ReplaceRunsAndCancelsTheRunningOnes) {
  model::Job job = make_job("* * * * *", kT0);
  job.concurrency = Concurrency::kReplace;
  store::ScheduleState state;
  state.running = {"exec-1", "exec-2"};
  Plan p = plan_job(job, parse(job), state, kT0 + absl::Minutes(1));
  ASSERT_EQ(p.runs.size(), 1u);
  EXPECT_EQ(p.cancel, (std::vector<std::string>{"exec-1", "exec-2"}));
}

TEST(Decide, ReplaceCancelsNothingWhenNothingIsDue) {
  model::Job job = make_job("* * * * *", kT0);
  job.concurrency = Concurrency::kReplace;
  store::ScheduleState state;
  state.running = {"exec-1"};
  Plan p = plan_job(job, parse(job), state, kT0 + absl::Seconds(30));
  EXPECT_TRUE(p.cancel.empty());
}

TEST(Decide, AllowRunsAlongsideARunningOne) {
  model::Job job = make_job("* * * * *", kT0);
  job.concurrency = Concurrency::kAllow;
  store::ScheduleState state;
  state.running = {"exec-1"};
  Plan p = plan_job(job, parse(job), state, kT0 + absl::Minutes(1));
  ASSERT_EQ(p.runs.size(), 1u);
  EXPECT_TRUE(p.cancel.empty());
}

TEST(Decide, IgnoredMissedTimesAreNotRecordedSkipped) {
  DownTenMinutes d;
  d.job.concurrency = Concurrency::kForbid;
  d.job.missed_run_policy = MissedRunPolicy::kIgnore;
  d.state.running = {"exec-1"};
  Plan p = plan_job(d.job, parse(d.job), d.state, d.now);
  EXPECT_TRUE(p.runs.empty());
  EXPECT_EQ(p.missed, 10u);
}

// ---------------------------------------------------------------- manual

TEST(DecideManual, CancelsNothingUnlessReplace) {
  store::ScheduleState state;
  state.running = {"exec-1"};
  for (Concurrency c : {Concurrency::kAllow, Concurrency::kForbid, Concurrency::kBufferOne}) {
    model::Job job = make_job("* * * * *", kT0);
    job.concurrency = c;
    EXPECT_EQ(decide_manual(job, state, false), ManualDecision{}) << model::to_string(c);
  }
}

TEST(DecideManual, ReplaceCancelsTheRunningOnes) {
  model::Job job = make_job("* * * * *", kT0);
  job.concurrency = Concurrency::kReplace;
  store::ScheduleState state;
  state.running = {"exec-1"};
  ManualDecision d = decide_manual(job, state, false);
  EXPECT_EQ(d.cancel, std::vector<std::string>{"exec-1"});
}

TEST(DecideManual, ForceCancelsNothing) {
  model::Job job = make_job("* * * * *", kT0);
  job.concurrency = Concurrency::kReplace;
  store::ScheduleState state;
  state.running = {"exec-1"};
  EXPECT_TRUE(decide_manual(job, state, true).cancel.empty());
}

// ---------------------------------------------------------------- @at

TEST(Decide, AtJobRunsOnceAndDisablesItself) {
  const absl::Time at = kT0 + absl::Hours(1);
  model::Job job = make_job("@at 2024-05-01T13:00:00Z", kT0);
  cron::Schedule s = parse(job);
  ASSERT_TRUE(s.is_one_off());
  Plan before = plan_job(job, s, {}, at - absl::Seconds(1));
  EXPECT_TRUE(before.empty());
  EXPECT_FALSE(before.disable_job);

  Plan p = plan_job(job, s, {}, at);
  ASSERT_EQ(p.runs.size(), 1u);
  EXPECT_EQ(p.runs[0].scheduled_time, at);
  EXPECT_EQ(p.runs[0].trigger, Trigger::kSchedule);
  EXPECT_TRUE(p.disable_job);
  EXPECT_EQ(p.last_scheduled, at);
}

TEST(Decide, AtJobMissedAndIgnoredStillDisablesItself) {
  model::Job job = make_job("@at 2024-05-01T13:00:00Z", kT0);
  job.missed_run_policy = MissedRunPolicy::kIgnore;
  Plan p = plan_job(job, parse(job), {}, kT0 + absl::Hours(5));
  EXPECT_TRUE(p.runs.empty());
  EXPECT_EQ(p.missed, 1u);
  EXPECT_TRUE(p.disable_job);
}

TEST(Decide, AtJobCreatedAfterItsTimeNeverRunsAndDisablesItself) {
  model::Job job = make_job("@at 2024-05-01T11:00:00Z", kT0);
  job.missed_run_policy = MissedRunPolicy::kExecuteAll;
  Plan p = plan_job(job, parse(job), {}, kT0 + absl::Seconds(1));
  EXPECT_TRUE(p.runs.empty());
  EXPECT_TRUE(p.disable_job);
  EXPECT_FALSE(p.last_scheduled);
  EXPECT_FALSE(next_fire_time(job, parse(job), store::ScheduleState{}));
}

TEST(Decide, RecurringJobNeverDisablesItself) {
  DownTenMinutes d;
  Plan p = plan_job(d.job, parse(d.job), d.state, d.now);
  EXPECT_FALSE(p.disable_job);
}

// ---------------------------------------------------------------- jitter

TEST(Jitter, Fnv1a64MatchesTheReferenceVectors) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(Jitter, OffsetIsZeroWithoutJitter) {
  model::Job job = make_job("* * * * *", kT0);
  EXPECT_EQ(jitter_offset(job), absl::ZeroDuration());
}

TEST(Jitter, OffsetIsStableAndInRange) {
  model::Job job = make_job("* * * * *", kT0);
  job.jitter = absl::Seconds(30);
  std::set<int64_t> distinct;
  for (int i = 0; i < 1000; ++i) {
    job.id = "job-" + std::to_string(i);
    absl::Duration off = jitter_offset(job);
    EXPECT_GE(off, absl::ZeroDuration());
    EXPECT_LT(off, job.jitter);
    EXPECT_EQ(off, jitter_offset(job));
    distinct.insert(absl::ToInt64Milliseconds(off));
  }
  EXPECT_GT(distinct.size(), 900u) << "offsets spread over the range";
}

TEST(Jitter, OffsetIsAFixedFunctionOfTheId) {
  // Pinned so a change of hash (which would move every jittered job) is seen.
  model::Job job = make_job("* * * * *", kT0);
  job.id = "a";
  job.jitter = absl::Seconds(60);
  EXPECT_EQ(jitter_offset(job), absl::Milliseconds(0xaf63dc4c8601ec8cULL % 60000));
}

TEST(Jitter, FiresAtScheduledTimePlusOffsetAndNeverEarlier) {
  model::Job job = make_job("* * * * *", kT0);
  job.jitter = absl::Seconds(30);
  const absl::Duration off = jitter_offset(job);
  ASSERT_GT(off, absl::ZeroDuration());
  cron::Schedule s = parse(job);
  const absl::Time t = kT0 + absl::Minutes(1);
  EXPECT_EQ(next_fire_time(job, s, store::ScheduleState{}), t + off);
  EXPECT_TRUE(plan_job(job, s, {}, t + off - absl::Nanoseconds(1)).empty());
  Plan p = plan_job(job, s, {}, t + off);
  ASSERT_EQ(p.runs.size(), 1u);
  EXPECT_EQ(p.runs[0].scheduled_time, t);
  EXPECT_EQ(p.runs[0].fire_time, t + off);
  EXPECT_EQ(p.runs[0].trigger, Trigger::kSchedule);
  EXPECT_EQ(p.jitter_offset, off);
}

// ---------------------------------------------------------------- lookahead

TEST(Decide, LookaheadPlansUpcomingRunsWithTheirFireTime) {
  model::Job job = make_job("* * * * *", kT0);
  PlanOptions opts;
  opts.lookahead = absl::Seconds(2);
  const absl::Time t = kT0 + absl::Minutes(1);
  Plan p = plan_job(job, parse(job), {}, t - absl::Seconds(1), opts);
  ASSERT_EQ(p.runs.size(), 1u);
  EXPECT_EQ(p.runs[0].trigger, Trigger::kSchedule);
  EXPECT_EQ(p.runs[0].fire_time, t);  // the driver holds it until then
  EXPECT_TRUE(plan_job(job, parse(job), {}, t - absl::Seconds(3), opts).empty());
  // Recorded ahead, it starts when it fires.
  StartContext ctx;
  ctx.next_id = [] { return std::string("exec-1"); };
  ctx.started_at = t - absl::Seconds(1);
  model::StartExecutions cmd = to_command(p, job, ctx);
  ASSERT_EQ(cmd.executions.size(), 1u);
  EXPECT_EQ(cmd.executions[0].started_at, t);
}

// ---------------------------------------------------------------- next_fire_time

TEST(NextFireTime, IsTheFirstTimeAfterLastScheduledOrCreation) {
  model::Job job = make_job("*/5 * * * *", kT0 + absl::Minutes(1));
  cron::Schedule s = parse(job);
  EXPECT_EQ(next_fire_time(job, s, store::ScheduleState{}), kT0 + absl::Minutes(5));
  EXPECT_EQ(next_fire_time(job, s, kT0 + absl::Minutes(5)), kT0 + absl::Minutes(10));
}

TEST(NextFireTime, IsInThePastWhenRunsWereMissed) {
  DownTenMinutes d;
  EXPECT_EQ(next_fire_time(d.job, parse(d.job), d.state), kT0 + absl::Minutes(1));
}

TEST(NextFireTime, FollowsEveryAnchoredAtCreation) {
  model::Job job = make_job("@every 90s", kT0 + absl::Milliseconds(250));
  cron::Schedule s = parse(job);
  EXPECT_EQ(next_fire_time(job, s, store::ScheduleState{}),
            kT0 + absl::Milliseconds(250) + absl::Seconds(90));
}

// ---------------------------------------------------------------- commands

TEST(ToCommand, BuildsExecutionsAndTheScheduleAdvance) {
  DownTenMinutes d;
  d.job.missed_run_policy = MissedRunPolicy::kExecuteAll;
  d.job.catchup_window = absl::Minutes(2);
  d.job.concurrency = Concurrency::kForbid;
  d.job.version = 7;
  d.state.running = {"exec-0"};
  Plan p = plan_job(d.job, parse(d.job), d.state, d.now);
  ASSERT_EQ(p.runs.size(), 2u);
  int n = 0;
  StartContext ctx{[&] { return "id-" + std::to_string(++n); }, d.now, "node-a"};
  model::StartExecutions cmd = to_command(p, d.job, ctx);
  ASSERT_EQ(cmd.executions.size(), 2u);
  const model::Execution& e = cmd.executions[0];
  EXPECT_EQ(e.id, "id-1");
  EXPECT_EQ(cmd.executions[1].id, "id-2");
  EXPECT_EQ(e.job_id, d.job.id);
  EXPECT_EQ(e.job_name, d.job.name);
  EXPECT_EQ(e.namespace_, d.job.namespace_);
  EXPECT_EQ(e.job_version, 7);
  EXPECT_EQ(e.scheduled_time, kT0 + absl::Minutes(9));
  EXPECT_EQ(e.trigger, Trigger::kCatchup);
  EXPECT_EQ(e.status, ExecutionStatus::kRunning);
  EXPECT_EQ(e.started_at, d.now);
  EXPECT_EQ(e.completed_at, absl::InfinitePast());
  EXPECT_EQ(e.node_id, "node-a");
  EXPECT_EQ(e.attempts, 0);
  ASSERT_EQ(cmd.schedule.size(), 1u);
  EXPECT_EQ(cmd.schedule[0], (model::ScheduleAdvance{d.job.id, kT0 + absl::Minutes(10)}));
}

TEST(ToCommand, RunningExecutionHasNoCompletionTime) {
  model::Job job = make_job("* * * * *", kT0);
  Plan p = plan_job(job, parse(job), {}, kT0 + absl::Minutes(1));
  StartContext ctx{[] { return std::string("x"); }, kT0 + absl::Minutes(1), "n"};
  model::StartExecutions cmd = to_command(p, job, ctx);
  ASSERT_EQ(cmd.executions.size(), 1u);
  EXPECT_EQ(cmd.executions[0].status, ExecutionStatus::kRunning);
  EXPECT_EQ(cmd.executions[0].completed_at, absl::InfinitePast());
  EXPECT_EQ(cmd.executions[0].trigger, Trigger::kSchedule);
}

TEST(ToCommand, IgnoredMissesStillAdvanceTheSchedule) {
  DownTenMinutes d;
  d.job.missed_run_policy = MissedRunPolicy::kIgnore;
  Plan p = plan_job(d.job, parse(d.job), d.state, d.now);
  StartContext ctx{[] { return std::string("x"); }, d.now, "n"};
  model::StartExecutions cmd = to_command(p, d.job, ctx);
  EXPECT_TRUE(cmd.executions.empty());
  ASSERT_EQ(cmd.schedule.size(), 1u);
  EXPECT_EQ(cmd.schedule[0].last_scheduled, kT0 + absl::Minutes(10));
}

TEST(ToCommand, ManualExecutionIsScheduledWhenTriggered) {
  model::Job job = make_job("* * * * *", kT0);
  StartContext ctx{[] { return std::string("m-1"); }, kT0 + absl::Seconds(7), "n"};
  model::Execution e = manual_execution(job, ctx);
  EXPECT_EQ(e.id, "m-1");
  EXPECT_EQ(e.trigger, Trigger::kManual);
  EXPECT_EQ(e.status, ExecutionStatus::kRunning);
  EXPECT_EQ(e.scheduled_time, kT0 + absl::Seconds(7));
}

}  // namespace
}  // namespace chronos::sched
