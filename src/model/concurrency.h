#pragma once

#include <cstddef>

#include "absl/time/time.h"
#include "model/execution.h"
#include "model/job.h"

// The overlap rule (SPEC §3 "Concurrency"; docs/schedules.md "Overlapping
// runs"): what happens to a run that wants to start while others of its job
// are active. Applied by the store when a StartExecutions entry is applied,
// against the replicated state of that moment, so it holds cluster-wide and
// across leader changes. Pure; safe from any thread.
//
//   new run ──▶ admit(policy, active runs, delayed?) ──▶ kRun  ─▶ running (dispatched)
//                                                    ├─▶ kWait ─▶ pending, in the job's waiting
//                                                    line └─▶ kSkip ─▶ skipped (terminal)
//
// A waiting run starts when the last running one ends (the store promotes
// the head of the line in the same entry that ends it).
namespace chronos::model {

enum class Admission : uint8_t { kRun, kWait, kSkip };

// The runs of one job that are active when a new one asks to start.
struct ActiveRuns {
  size_t running = 0;
  size_t waiting = 0;
  // Some running or waiting run was made late by the scheduler itself (it
  // was re-dispatched by a new leader, started late after a leader change
  // or an outage, or waited behind such a run) and is not more than
  // kMaxShelterLateness late: see delayed_run_shelters.
  bool any_delayed = false;
};

// The waiting line's bound. An on-time overlap under buffer_one waits only
// when the line is empty (at most one waits, SPEC §3); a run made late by a
// failover may wait behind up to this many, so the runs that fell due while
// no leader scheduled all run, one after another. Past it they are skipped.
inline constexpr size_t kMaxWaitingRuns = 10;

// How late after its fire time a scheduled run may start and still count as
// on time for the overlap rule. A healthy leader commits scheduled starts
// before their fire time (lookahead) or within milliseconds of it; a
// failover makes them hundreds of milliseconds late or more.
inline constexpr absl::Duration kOnTimeSlack = absl::Milliseconds(200);

// A delayed run lets the runs after it wait instead of being skipped only
// while it is at most this late (a running one: when it started; a waiting
// one: now). A failover makes runs late by about a second, a short quorum
// loss by up to the scheduler's late_grace (5 s by default); a target
// slower than the schedule makes a line of waiting runs ever later, and
// past this bound the line stops growing and the policy's skips apply
// again, so one failover cannot turn a slow job into a long backlog.
inline constexpr absl::Duration kMaxShelterLateness = absl::Seconds(8);

// Whether delayed execution `e` (running or waiting, of a job whose jitter
// offset is `offset`, jitter_offset(job)) still lets a new run wait behind
// it at `now`.
bool delayed_run_shelters(const Execution& e, absl::Duration offset, absl::Time now);

// Whether `e` (a start about to be applied, of a job whose jitter offset is
// `offset`) was made late by the scheduler: a catch-up run, or a scheduled
// run whose recorded start is more than kOnTimeSlack after its fire time
// (scheduled time + offset).
bool is_delayed_start(const Execution& e, absl::Duration offset);

// The rule:
//   force, allow, replace (its cancels are applied first) → run;
//   nothing active → run;
//   the new run or an active one is delayed → wait (line < kMaxWaitingRuns), else skip:
//     a run made late by a failover is never a reason to skip the next one,
//     and one that waits behind a delayed run is itself delayed;
//   buffer_one → wait when the line is empty, else skip;
//   forbid → skip.
Admission admit(Concurrency policy, const ActiveRuns& active, bool delayed, bool force);

}  // namespace chronos::model
