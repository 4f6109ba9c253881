#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "sim/cluster.h"
#include "sim/support.h"

namespace chronos::sim {

// [from, to) of simulated time.
struct Interval {
  absl::Time from;
  absl::Time to;
};

// A stretch during which one server was the effective leader: its driver
// was active (leader, caught up) and it was alive on a side with a live
// majority, so what it proposed could commit.
struct Stretch {
  unsigned server = 0;
  absl::Time from;
  absl::Time to;
};

// The timing the checks rely on (see README.md "Deadline").
struct Timing {
  absl::Duration late_grace;     // PlanOptions::late_grace of the drivers
  absl::Duration commit_margin;  // a leader that lasts this long plans and commits a due run
  absl::Duration deadline;       // a run served on time fires by scheduled + jitter + this
};

struct CheckInput {
  Cluster* cluster = nullptr;  // every server alive and converged
  const Receiver* receiver = nullptr;
  std::vector<model::Job> acked_jobs;            // PutJob answered ok to the client
  std::map<std::string, absl::Time> visible_at;  // job id -> first applied on any server
  std::map<std::string, std::string> names;      // job id -> short name
  std::vector<Interval> majority;                // a live majority existed
  std::vector<Stretch> leaders;                  // an effective leader existed
  absl::Time epoch;    // times in messages are seconds since it, as in the log
  absl::Time horizon;  // scheduled times after it are not checked
  Timing timing;
  // Fail on CheckResult::strict_misses instead of counting them.
  bool strict = false;
};

struct CheckResult {
  std::vector<std::string> failures;     // each names its job as " jN " when it has one
  std::string first_job;                 // name of the job of the first failure, if any
  std::optional<absl::Time> first_time;  // the scheduled time it is about, if any
  // Largest (first request - fire time) over runs the deadline applies to:
  // the observed margin under the deadline.
  absl::Duration max_lateness = absl::ZeroDuration();
  size_t executions = 0;
  size_t required = 0;  // scheduled times that had to run
  // Scheduled times with no execution although a majority was up from the
  // fire time to the deadline: runs the missed-run policy legitimately
  // dropped because no leader was active within late_grace of them (a
  // failover took longer). Not failures; counted to show how often the
  // configured late_grace is shorter than a failover. `strict_example`
  // describes the first.
  size_t strict_misses = 0;
  std::string strict_example;
};

// The end-of-seed invariants (README.md "Checks"):
//  1. every acknowledged job is in every server's store;
//  2. every scheduled time a leader could serve has an execution, fired by
//     the deadline while a majority stayed up; missed-run policies account
//     for every other time (execute_all: none missing; execute_one: each
//     run of missing times ends in a catch-up; ignore: only unserved times
//     missing); nothing fires before its time;
//  3. at most one execution per (job, scheduled time), and every request
//     for it carries that execution's id;
//  4. all stores hold the same state (their snapshot images' keys and values);
//  5. the attempt numbers of one execution arrive strictly increasing;
//  6. no request from an older leadership term arrives after one from a
//     newer term (a deposed leader never sends);
//  7. jobs whose target never fails are never skipped under forbid or
//     buffer_one (only a failover could make their runs overlap).
CheckResult check_all(const CheckInput& in);

}  // namespace chronos::sim
