#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cron/schedule.h"
#include "model/command.h"
#include "model/execution.h"
#include "model/job.h"
#include "store/store.h"

// The scheduler's pure decision core (SPEC §1-§3, DESIGN "Key algorithms").
//
//   store (s/<job_id>) ──ScheduleState──┐
//   Job + cron::Schedule ───────────────┼──▶ plan_job(now) ──Plan──▶ to_command ──▶ StartExecutions
//   injected now / ids / node ──────────┘                     └─▶ cancel ids, disable_job, missed
//
// Everything here is a function of its arguments: no clock reads, no I/O, no
// randomness. The driver thread (later) owns the clock, the due queue and the
// Raft proposals.
namespace chronos::sched {

// Tunables of plan_job. The defaults are the server's; tests override them.
struct PlanOptions {
  // A due run whose fire time (scheduled time + jitter offset) is at most
  // this far behind `now` is ON TIME (trigger schedule); older ones are
  // MISSED and go through the job's missed_run_policy. It absorbs a late
  // wake-up, a slow commit or a leader change without turning ordinary runs
  // into catch-ups, while a node that was down for a whole period still
  // counts as missing it. Servers use default_late_grace(election timeout)
  // unless scheduler.late_grace is set; 2 s is for single-process tests.
  absl::Duration late_grace = absl::Seconds(2);
  // A run is due when its fire time is <= now + lookahead (DESIGN
  // "precision": commit a little ahead, fire exactly on time). The driver
  // must not dispatch before PlannedRun::fire_time. Lateness is measured
  // against `now`, never against now + lookahead.
  absl::Duration lookahead = absl::ZeroDuration();
  // execute_all catches up at most this many missed times (SPEC §1): the
  // NEWEST ones inside catchup_window, run oldest first.
  size_t max_catchup_runs = 1000;
  // Counting missed times (for chronos_missed_runs_total) enumerates them;
  // it stops here and sets Plan::missed_capped. Bounds the work for a job
  // paused for a year with a per-second schedule.
  size_t max_counted_missed = 10'000;
};

// The default late_grace for a cluster with this Raft election timeout: a
// leader change takes up to 2 election timeouts to notice a dead leader
// (libraft randomises the timeout between 1 and 2 ×), plus split votes;
// runs that fell due meanwhile are ordinary late runs, not missed ones.
// max(5 s, 2 s + 3 × the timeout): the deterministic simulation saw a
// majority split its votes for 3.5 s over 80 ms links with the 400 ms
// default (1 seed in 10 000).
absl::Duration default_late_grace(absl::Duration election_timeout);

// One run the plan decided on (started or recorded skipped).
struct PlannedRun {
  absl::Time scheduled_time;  // nominal schedule time, recorded in the execution
  absl::Time fire_time;       // scheduled_time + the job's jitter offset; never dispatch before
  model::Trigger trigger = model::Trigger::kSchedule;  // kSchedule | kCatchup
  bool operator==(const PlannedRun&) const = default;
};

// What plan_job decided for one job at one instant.
struct Plan {
  // Runs in scheduled-time order (oldest first).
  std::vector<PlannedRun> runs;
  // concurrency=replace: running executions (state.running) to cancel before
  // the new run(s) start. Empty otherwise. Whether a run runs, waits or is
  // skipped is decided when its start is applied (model/concurrency.h).
  std::vector<std::string> cancel;
  // The new s/<job_id>.last_scheduled: the latest due time consumed (run,
  // skipped or missed). nullopt = nothing consumed, state unchanged.
  std::optional<absl::Time> last_scheduled;
  // Due times consumed without any execution record (missed-run policy,
  // catchup_window, max_catchup_runs). A lower bound when missed_capped.
  uint64_t missed = 0;
  bool missed_capped = false;
  // An `@at` job whose one run is consumed (or can never happen): the driver
  // proposes a PutJob with enabled=false.
  bool disable_job = false;
  // The job's jitter offset (fire_time - scheduled_time of every run).
  absl::Duration jitter_offset = absl::ZeroDuration();

  // True when there is nothing to propose.
  bool empty() const { return runs.empty() && !last_scheduled && !disable_job; }
};

// The job's deterministic jitter offset and the hash behind it
// (model/job.h); the store needs them too, to tell a late run.
using model::fnv1a64;
using model::jitter_offset;

// Decides, for one job at `now`, which due times run, are skipped or are
// missed (see README.md "Rules"). `schedule` must be the job's schedule
// parsed with anchor job.created_at. Bounded work: O(max_catchup_runs +
// max_counted_missed) next_after calls plus O(log range) per search.
Plan plan_job(const model::Job& job, const cron::Schedule& schedule,
              const store::ScheduleState& state, absl::Time now, const PlanOptions& opts = {});

// When the driver should next wake for this job: the first nominal time
// after max(last_scheduled, job.created_at) plus the jitter offset (may be in
// the past: due now). nullopt when the job is disabled or never runs again.
// The driver subtracts its lookahead itself.
std::optional<absl::Time> next_fire_time(const model::Job& job, const cron::Schedule& schedule,
                                         absl::Time last_scheduled);
std::optional<absl::Time> next_fire_time(const model::JobTiming& job, const cron::Schedule& schedule,
                                         absl::Time last_scheduled);
std::optional<absl::Time> next_fire_time(const model::Job& job, const cron::Schedule& schedule,
                                         const store::ScheduleState& state);

// POST /jobs/{id}/trigger (SPEC §3). Manual triggers run on disabled jobs too.
// The overlap rule (run, wait, skip) is applied with the start, as for
// scheduled runs; what is decided here is what replace cancels.
struct ManualDecision {
  // concurrency=replace: running executions to cancel.
  std::vector<std::string> cancel;
  bool operator==(const ManualDecision&) const = default;
};
// force=true ignores the concurrency policy: cancels nothing (and the start
// is proposed with StartExecutions::force).
ManualDecision decide_manual(const model::Job& job, const store::ScheduleState& state, bool force);

// What the caller injects to turn decisions into executions: the id source
// (time-ordered UUIDv7 made outside the core), the instant the start is
// recorded and the proposing node.
struct StartContext {
  std::function<std::string()> next_id;
  absl::Time started_at = absl::InfinitePast();
  std::string node_id;
};

// The StartExecutions command of a plan: one Execution per run (kRunning,
// started_at = the later of ctx.started_at and the run's fire time, which
// is later for a run planned ahead; attempts 0), plus the ScheduleAdvance
// when plan.last_scheduled is set. Empty command for an empty plan.
model::StartExecutions to_command(const Plan& plan, const model::Job& job, const StartContext& ctx);

// The Execution of a manual trigger (trigger kManual, kRunning,
// scheduled_time = ctx.started_at).
model::Execution manual_execution(const model::Job& job, const StartContext& ctx);

}  // namespace chronos::sched
