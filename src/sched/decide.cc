#include "sched/decide.h"

#include <algorithm>

#include "base/check.h"

namespace chronos::sched {

absl::Duration default_late_grace(absl::Duration election_timeout) {
  return std::max(absl::Seconds(5), absl::Seconds(2) + 3 * election_timeout);
}

namespace {

using model::Concurrency;
using model::ExecutionStatus;
using model::MissedRunPolicy;
using model::Trigger;

// Two distinct run times of any schedule are at least this far apart: cron
// has whole seconds and de-duplicates DST shifts, @every is >= 1s, @at has a
// single time. The backward search relies on it and verifies its answer.
constexpr absl::Duration kMinSpacing = absl::Seconds(1);

// Safety bound on the times a single search walks forward to correct itself
// if kMinSpacing were ever violated; never reached for valid schedules.
constexpr int kMaxForwardFix = 1000;

// Safety bound on on-time runs in one plan (they span late_grace +
// lookahead; a few for the defaults). Larger spans are a configuration error.
constexpr size_t kMaxOnTimeRuns = 100'000;

// The largest schedule time t with lo < t < hi, or nullopt. O(log((hi-lo)/1s))
// next_after calls: exponential search backwards from hi for a probe p with
// a time in (p, hi), then bisection down to a gap below kMinSpacing, which
// holds at most one time.
std::optional<absl::Time> latest_between(const cron::Schedule& s, absl::Time lo, absl::Time hi) {
  if (hi <= lo) return std::nullopt;
  std::optional<absl::Time> first = s.next_after(lo);
  if (!first || *first >= hi) return std::nullopt;
  // good: some time in (good, hi); bad: no time in (bad, hi).
  absl::Time good = lo;
  absl::Time bad = hi;
  for (absl::Duration d = kMinSpacing;; d *= 2) {
    absl::Time p = hi - d;
    if (p <= lo) break;  // good = lo is known to have one
    std::optional<absl::Time> t = s.next_after(p);
    if (t && *t < hi) {
      good = p;
      break;
    }
    bad = p;
  }
  while (bad - good > kMinSpacing) {
    absl::Time mid = good + (bad - good) / 2;
    std::optional<absl::Time> t = s.next_after(mid);
    if (t && *t < hi) {
      good = mid;
    } else {
      bad = mid;
    }
  }
  std::optional<absl::Time> r = s.next_after(good);
  CHRONOS_CHECK(r && *r < hi) << "latest_between lost its invariant";
  for (int i = 0; i < kMaxForwardFix; ++i) {
    std::optional<absl::Time> n = s.next_after(*r);
    if (!n || *n >= hi) break;
    r = n;
  }
  return r;
}

// Number of schedule times t with lo < t < hi, counting at most `cap`.
struct Count {
  uint64_t n = 0;
  bool capped = false;
};
Count count_between(const cron::Schedule& s, absl::Time lo, absl::Time hi, size_t cap) {
  Count c;
  absl::Time cur = lo;
  while (true) {
    std::optional<absl::Time> t = s.next_after(cur);
    if (!t || *t >= hi) return c;
    if (c.n == cap) {
      c.capped = true;
      return c;
    }
    ++c.n;
    cur = *t;
  }
}

}  // namespace

Plan plan_job(const model::Job& job, const cron::Schedule& schedule,
              const store::ScheduleState& state, absl::Time now, const PlanOptions& opts) {
  Plan plan;
  plan.jitter_offset = jitter_offset(job);
  if (!job.enabled) return plan;  // nothing consumed: on resume the gap is missed runs

  const absl::Time from = std::max(state.last_scheduled, job.created_at);
  const absl::Duration off = plan.jitter_offset;
  // Nominal t is due when t + off <= now + lookahead; on time when
  // now - (t + off) <= late_grace; inside the catch-up window when
  // now - (t + off) <= catchup_window.
  const absl::Time due_until = now + std::max(opts.lookahead, absl::ZeroDuration()) - off;
  const absl::Time on_time_from = now - off - std::max(opts.late_grace, absl::ZeroDuration());
  const absl::Time window_from = now - off - job.catchup_window;

  std::optional<absl::Time> latest =
      latest_between(schedule, from, due_until + absl::Nanoseconds(1));
  if (latest) plan.last_scheduled = *latest;

  const absl::Time consumed_to = latest ? *latest : from;
  if (schedule.is_one_off() && !schedule.next_after(consumed_to)) plan.disable_job = true;
  if (!latest) return plan;

  // Missed times: from < t < on_time_from (and t <= latest).
  const absl::Time missed_hi = std::min(on_time_from, *latest + absl::Nanoseconds(1));
  switch (job.missed_run_policy) {
    case MissedRunPolicy::kIgnore: {
      Count c = count_between(schedule, from, missed_hi, opts.max_counted_missed);
      plan.missed = c.n;
      plan.missed_capped = c.capped;
      break;
    }
    case MissedRunPolicy::kExecuteOne: {
      std::optional<absl::Time> newest = latest_between(schedule, from, missed_hi);
      if (newest) {
        plan.runs.push_back({*newest, *newest + off, Trigger::kCatchup});
        Count c = count_between(schedule, from, *newest, opts.max_counted_missed);
        plan.missed = c.n;
        plan.missed_capped = c.capped;
      }
      break;
    }
    case MissedRunPolicy::kExecuteAll: {
      // The newest max_catchup_runs missed times with t >= window_from,
      // found backwards (bounded by the cap, not by the gap's length).
      const absl::Time lo = std::max(from, window_from - absl::Nanoseconds(1));
      std::vector<absl::Time> picked;
      absl::Time hi = missed_hi;
      while (picked.size() < opts.max_catchup_runs) {
        std::optional<absl::Time> t = latest_between(schedule, lo, hi);
        if (!t) break;
        picked.push_back(*t);
        hi = *t;
      }
      std::reverse(picked.begin(), picked.end());
      for (absl::Time t : picked) {
        plan.runs.push_back({t, t + off, Trigger::kCatchup});
      }
      // Everything missed before the oldest picked time was not run.
      const absl::Time uncounted_hi = picked.empty() ? missed_hi : picked.front();
      Count c = count_between(schedule, from, uncounted_hi, opts.max_counted_missed);
      plan.missed = c.n;
      plan.missed_capped = c.capped;
      break;
    }
  }

  // On-time runs: max(from, on_time_from - 1ns) < t <= latest.
  {
    absl::Time cur = std::max(from, on_time_from - absl::Nanoseconds(1));
    size_t n = 0;
    while (true) {
      std::optional<absl::Time> t = schedule.next_after(cur);
      if (!t || *t > *latest) break;
      CHRONOS_CHECK(++n <= kMaxOnTimeRuns)
          << "late_grace + lookahead span more than " << kMaxOnTimeRuns << " runs";
      plan.runs.push_back({*t, *t + off, Trigger::kSchedule});
      cur = *t;
    }
  }

  // The overlap rule itself (run, wait or skip) is applied when the start
  // is applied, against the state of that moment (model/concurrency.h);
  // replace cancels what runs now.
  if (!plan.runs.empty() && job.concurrency == Concurrency::kReplace) plan.cancel = state.running;
  return plan;
}

namespace {

template <typename JobLike>
std::optional<absl::Time> fire_after(const JobLike& job, const cron::Schedule& schedule,
                                     absl::Time last_scheduled) {
  if (!job.enabled) return std::nullopt;
  std::optional<absl::Time> t = schedule.next_after(std::max(last_scheduled, job.created_at));
  if (!t) return std::nullopt;
  return *t + jitter_offset(job);
}

}  // namespace

std::optional<absl::Time> next_fire_time(const model::Job& job, const cron::Schedule& schedule,
                                         absl::Time last_scheduled) {
  return fire_after(job, schedule, last_scheduled);
}

std::optional<absl::Time> next_fire_time(const model::JobTiming& job, const cron::Schedule& schedule,
                                         absl::Time last_scheduled) {
  return fire_after(job, schedule, last_scheduled);
}

std::optional<absl::Time> next_fire_time(const model::Job& job, const cron::Schedule& schedule,
                                         const store::ScheduleState& state) {
  return next_fire_time(job, schedule, state.last_scheduled);
}

ManualDecision decide_manual(const model::Job& job, const store::ScheduleState& state, bool force) {
  ManualDecision d;
  if (!force && job.concurrency == Concurrency::kReplace) d.cancel = state.running;
  return d;
}

namespace {

model::Execution base_execution(const model::Job& job, const StartContext& ctx) {
  CHRONOS_CHECK(ctx.next_id) << "StartContext::next_id is required";
  model::Execution e;
  e.id = ctx.next_id();
  CHRONOS_CHECK(!e.id.empty()) << "next_id returned an empty id";
  e.job_id = job.id;
  e.job_name = job.name;
  e.namespace_ = job.namespace_;
  e.job_version = job.version;
  e.status = ExecutionStatus::kRunning;
  e.attempts = 0;
  e.started_at = ctx.started_at;
  e.node_id = ctx.node_id;
  return e;
}

}  // namespace

model::StartExecutions to_command(const Plan& plan, const model::Job& job,
                                  const StartContext& ctx) {
  model::StartExecutions cmd;
  cmd.executions.reserve(plan.runs.size());
  for (const PlannedRun& r : plan.runs) {
    model::Execution e = base_execution(job, ctx);
    e.scheduled_time = r.scheduled_time;
    e.trigger = r.trigger;
    // A run planned ahead (lookahead) starts when it fires, not when its
    // start is recorded.
    e.started_at = std::max(e.started_at, r.fire_time);
    cmd.executions.push_back(std::move(e));
  }
  if (plan.last_scheduled) {
    cmd.schedule.push_back(model::ScheduleAdvance{job.id, *plan.last_scheduled});
  }
  return cmd;
}

model::Execution manual_execution(const model::Job& job, const StartContext& ctx) {
  model::Execution e = base_execution(job, ctx);
  e.scheduled_time = ctx.started_at;
  e.trigger = model::Trigger::kManual;
  return e;
}

}  // namespace chronos::sched
