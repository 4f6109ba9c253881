// Property-style: random schedules stepped through a simulated week with
// random step sizes. Seeded; a failure prints the seed.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "base/clock.h"
#include "gtest/gtest.h"
#include "sched/decide.h"
#include "sched/tests/test_util.h"

namespace chronos::sched {
namespace {

using testing::make_job;
using testing::parse;
using testing::utc;

struct Case {
  const char* expr;
  const char* tz;
};
const Case kSchedules[] = {
    {"* * * * *", "UTC"},
    {"*/7 * * * * *", "UTC"},
    {"0 */2 * * *", "Europe/Berlin"},
    {"@every 45s", "UTC"},
    {"30 2 * * *", "America/New_York"},  // crosses spring forward below
    {"15 10 * * 1-5", "Asia/Tokyo"},
    {"*/15 * * * *", "America/New_York"},
};

// All nominal times in (from, to].
std::vector<absl::Time> enumerate(const cron::Schedule& s, absl::Time from, absl::Time to) {
  std::vector<absl::Time> out;
  for (auto t = s.next_after(from); t && *t <= to; t = s.next_after(*t)) out.push_back(*t);
  return out;
}

struct Outcome {
  std::vector<absl::Time> planned;  // nominal times of every planned run, in plan order
  uint64_t missed = 0;
  uint64_t catchups = 0;  // runs with trigger catchup
  absl::Time end;
};

Outcome simulate(const model::Job& job, uint64_t seed, absl::Duration max_step) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> step_ms(1, absl::ToInt64Milliseconds(max_step));
  cron::Schedule s = parse(job);
  store::ScheduleState state;
  SimulatedClock clock(job.created_at);
  const absl::Time end = job.created_at + absl::Hours(24 * 7);
  Outcome out;
  while (clock.now() < end) {
    clock.advance(absl::Milliseconds(step_ms(rng)));
    Plan p = plan_job(job, s, state, clock.now());
    for (const PlannedRun& r : p.runs) {
      EXPECT_LE(r.fire_time, clock.now()) << "early run, seed " << seed;
      EXPECT_GE(r.fire_time, r.scheduled_time) << "fire before nominal, seed " << seed;
      EXPECT_GT(r.scheduled_time, state.last_scheduled) << "replanned, seed " << seed;
      EXPECT_GT(r.scheduled_time, job.created_at) << "before creation, seed " << seed;
      if (!out.planned.empty()) {
        EXPECT_LT(out.planned.back(), r.scheduled_time) << "duplicate/out of order, seed " << seed;
      }
      out.planned.push_back(r.scheduled_time);
      out.catchups += r.trigger == model::Trigger::kCatchup;
    }
    EXPECT_FALSE(p.missed_capped);
    out.missed += p.missed;
    testing::advance(state, p);
  }
  out.end = clock.now();
  return out;
}

model::Job random_job(std::mt19937_64& rng, const Case& c) {
  // Creation at a random millisecond in the week before the spring-forward day.
  const absl::Time base = utc(2024, 3, 4);
  std::uniform_int_distribution<int64_t> ms(0, 7LL * 24 * 3600 * 1000);
  model::Job job = make_job(c.expr, base + absl::Milliseconds(ms(rng)), c.tz);
  job.id = "job-" + std::to_string(rng());
  std::uniform_int_distribution<int> jitter_s(0, 20);
  job.jitter = absl::Seconds(jitter_s(rng));
  return job;
}

TEST(DecideProperty, ExecuteAllWithLargeWindowLosesNothingAndNeverRunsTwiceOrEarly) {
  const uint64_t seed0 = 0x5eed'0001;
  for (uint64_t i = 0; i < 2 * std::size(kSchedules); ++i) {
    const uint64_t seed = seed0 + i;
    std::mt19937_64 rng(seed);
    model::Job job = random_job(rng, kSchedules[i % std::size(kSchedules)]);
    job.missed_run_policy = model::MissedRunPolicy::kExecuteAll;
    job.catchup_window = absl::Hours(24 * 30);
    // Steps up to 1 h: at most ~515 runs of `*/7 * * * * *` per step, under the cap.
    Outcome o = simulate(job, seed, absl::Hours(1));
    const std::vector<absl::Time> expected =
        enumerate(parse(job), job.created_at, o.end - jitter_offset(job));
    EXPECT_FALSE(o.planned.empty()) << job.schedule << " seed " << seed;
    EXPECT_EQ(o.planned, expected) << job.schedule << " seed " << seed;
    EXPECT_EQ(o.missed, 0u) << "seed " << seed;
  }
}

TEST(DecideProperty, EveryPolicyAccountsForEachTimeExactlyOnce) {
  const uint64_t seed0 = 0x5eed'1000;
  const model::MissedRunPolicy policies[] = {model::MissedRunPolicy::kIgnore,
                                             model::MissedRunPolicy::kExecuteOne,
                                             model::MissedRunPolicy::kExecuteAll};
  uint64_t missed_sum[3] = {0, 0, 0};
  uint64_t catchups_seen = 0;
  for (uint64_t i = 0; i < 3 * std::size(kSchedules); ++i) {
    const uint64_t seed = seed0 + i;
    std::mt19937_64 rng(seed);
    model::Job job = random_job(rng, kSchedules[i % std::size(kSchedules)]);
    job.missed_run_policy = policies[i % 3];
    job.catchup_window = absl::Minutes(20);
    // Steps up to 30 min: many plans see missed times.
    Outcome o = simulate(job, seed, absl::Minutes(30));
    const size_t total =
        enumerate(parse(job), job.created_at, o.end - jitter_offset(job)).size();
    missed_sum[i % 3] += o.missed;
    catchups_seen += o.catchups;
    EXPECT_EQ(o.planned.size() + o.missed, total)
        << job.schedule << " " << model::to_string(job.missed_run_policy) << " seed " << seed;
  }
  // The steps were coarse enough that every policy met missed times.
  EXPECT_GT(missed_sum[0], 0u);
  EXPECT_GT(missed_sum[1], 0u);
  EXPECT_GT(missed_sum[2], 0u);  // runs older than the 20-minute window
  EXPECT_GT(catchups_seen, 0u);
}

}  // namespace
}  // namespace chronos::sched
