#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/time/time.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "base/result.h"
#include "cron/schedule.h"
#include "dispatch/outcome.h"
#include "model/command.h"
#include "model/job.h"
#include "sched/decide.h"
#include "sched/due_queue.h"
#include "store/store.h"

// The scheduler's driver (DESIGN "One driver, many shells"): every decision
// the leader's scheduler takes, single-threaded, turn by turn, reaching the
// world only through ports. The production thread (scheduler.cc) and the
// deterministic simulation (tests/sim) run this same code.
//
//           ┌───────────── Driver::turn(now, inputs) ─────────────┐
//   inputs: │ applied entries, proposal outcomes, attempt outcomes, │
//           │ trigger/cancel requests (posted by the shell)          │
//           │  due queue ─▶ plan_job ─▶ StartExecutions ──────────────┼──▶ LogPort::propose
//           │  committed ─▶ flight: wait fire time + lease ─▶ send ───┼──▶ TargetPort::send
//           │  attempt failed ─▶ record the next attempt ─▶ send ─────┤
//           │  final outcome ─▶ FinishExecutions (batched) ───────────┘
//           └───────────────────────────────────────────────────────┘
namespace chronos::sched {

class Driver;

// Work handed to the driver from elsewhere: a port's completion, an applied
// entry, a request. The shell collects them (thread-safely, in arrival
// order) and passes them to the next turn, which runs them first.
using Input = std::function<void(Driver&)>;
// Hands an Input to the shell. Safe from any thread; never runs it inline.
using Post = std::function<void(Input)>;

// The replicated log and this node's leadership.
class LogPort {
 public:
  struct Leadership {
    bool leader = false;
    // Its term's barrier is applied: everything committed before the term
    // is in the store. A leader schedules only then.
    bool caught_up = false;
    uint64_t term = 0;
    // The leadership lease (raft/leadership.h) on the Clock's monotonic
    // time: nothing is sent at or after it.
    absl::Duration lease_until = -absl::InfiniteDuration();
  };
  using Done = std::function<void(Result<store::ApplyOutcome>)>;

  virtual ~LogPort() = default;
  virtual Leadership leadership() const = 0;
  // Until when (monotonic) the driver needs the lease: its next send.
  // -InfiniteDuration(): nothing to send. Renewing costs a log entry, so an
  // idle leader does not.
  virtual void want_lease_until(absl::Duration until) = 0;
  // Proposes `batch` as one entry; `done` is called once, on any thread,
  // with the outcome once it is applied here, or an error (the entry may
  // still commit under the next leader).
  virtual void propose(model::CommandBatch batch, Done done) = 0;
};

// The targets: one attempt at a time.
class TargetPort {
 public:
  struct Attempt {
    model::Execution execution;
    model::Job job;  // the definition to send with
    int attempt = 1;
    // Monotonic; past it the attempt is not sent (kind kNotSent).
    absl::Duration send_by = absl::InfiniteDuration();
  };
  using Done = std::function<void(dispatch::AttemptOutcome)>;

  virtual ~TargetPort() = default;
  // `done` gets the outcome once, on any thread.
  virtual void send(Attempt attempt, Done done) = 0;
  // Aborts what is in flight for the execution (its outcome: kCancelled).
  virtual void cancel(const std::string& execution_id) = 0;
};

struct DriverOptions {
  std::string node_id;
  PlanOptions plan;
  // Executions per StartExecutions / FinishExecutions command; bigger sets
  // are split over several commands. Every member applies a command in one
  // store write, and everything committed after it waits for that write:
  // on a store of half a million jobs 1 000 starts took 200-300 ms to
  // apply. (That once held the Raft loop and cost the leadership; apply
  // now runs on its own thread, docs/architecture.md "Group commit".)
  size_t max_batch = 128;
  // How long finished results wait to be committed together.
  absl::Duration finish_batch_window = absl::Milliseconds(5);
  // Results waiting to be committed; beyond it the oldest are dropped and
  // their executions are re-dispatched by the next leader (at-least-once).
  // Half of it pauses new starts.
  size_t max_pending_results = 100'000;
  // Executions this driver tracks at once (started and not yet finished
  // here); at the bound new scheduled starts pause until some end.
  size_t max_flights = 200'000;
  // History retention (SPEC §3).
  size_t history_max_per_job = 1000;
  absl::Duration history_max_age = absl::Hours(24 * 30);
  absl::Duration retention_interval = absl::Minutes(1);
  uint64_t seed = 0;  // retry jitter; 0: from std::random_device
  // Jobs (timing records), or in-flight runs, a new leader reads per turn
  // while it loads (see Driver): it fires what is due between slices
  // instead of after reading a million jobs (~3 s on 2 cores).
  size_t load_slice = 5000;
};

// Everything the driver reaches. Pointers must outlive the driver.
struct DriverPorts {
  const store::Store* store = nullptr;  // reads only
  LogPort* log = nullptr;
  TargetPort* targets = nullptr;
  const Clock* clock = nullptr;
  Post post;
  std::function<std::string(absl::Time)> new_execution_id;
  metrics::Registry* metrics = nullptr;
  // Optional: one line per decision, for the simulation's event log.
  std::function<void(const std::string&)> trace;
};

// Single-threaded: construct, turn() and the rest on one thread (or under
// one lock). Lifecycle: constructed inactive; a turn on a caught-up leader
// activates it, and it then loads: each turn reads one slice (load_slice)
// of what an earlier leader left in flight (re-dispatched) and then of the
// jobs' timing records (into the due queue), and schedules what it has so
// far. Every decision reads the job's own state from the store, so a job
// not loaded yet is only late, never decided wrongly, and one the log
// touches meanwhile is loaded at once. A turn that finds leadership lost
// deactivates it (runs not yet sent are left to the next leader).
class Driver {
 public:
  // Starts a manual run or a replay now (POST /jobs/{id}/trigger, …/replay).
  struct TriggerRequest {
    std::string job_id;
    bool force = false;
    model::Trigger trigger = model::Trigger::kManual;
    std::string replay_of;
  };
  // Called with the execution once its start is committed (status running,
  // pending when it waits for an earlier run, skipped when the overlap rule
  // refused it: then as the error kConflict), or an error: kNotFound,
  // kNoLeader, kUnavailable.
  using StartedCallback = std::function<void(Result<model::Execution>)>;

  Driver(DriverOptions options, DriverPorts ports);
  ~Driver();
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  // One turn at wall time `now`: runs `inputs` in order, then acts.
  void turn(absl::Time now, std::vector<Input> inputs);
  // The shell stops: deactivates for good and runs `inputs` on the stopped
  // driver (requests are answered "not the leader"). Later turns do
  // nothing but that.
  void shutdown(std::vector<Input> inputs);
  // The latest wall time the next turn is needed at, with no new input.
  absl::Time next_wake(absl::Time now) const;

  // ---- inputs (run inside turn(); post them with Post) ----
  // An entry was applied (the Raft apply hook): its touched jobs are read
  // again, and executions it started (waiting runs whose turn came) are
  // sent. Empty when the entry holds nothing the driver looks at.
  static Input applied(const model::CommandBatch& batch, const store::ApplyOutcome& outcome);
  static Input trigger(TriggerRequest request, StartedCallback started);
  // Finishes a running or waiting execution as cancelled (POST …/cancel).
  static Input cancel(std::string job_id, std::string execution_id, StartedCallback done);

  bool active() const { return active_; }
  // Active, and still reading the jobs or the runs in flight.
  bool loading() const { return active_ && (load_.jobs || load_.in_flight); }
  uint64_t term() const { return term_; }
  // Whether this driver takes care of the execution: waiting for its fire
  // time or the lease, recording or making an attempt, committing its
  // result, or about to (its start or re-dispatch proposed). The
  // simulation checks that an active leader owns everything in flight.
  bool owns(const std::string& execution_id) const;

 private:
  // A job this leader schedules.
  struct JobEntry {
    cron::Schedule schedule;
    // Latest scheduled time consumed as this leader knows it: ahead of the
    // store while a StartExecutions entry is in flight.
    absl::Time last_scheduled = absl::InfinitePast();
    bool start_pending = false;  // a start entry for it is not committed yet
    // Queued at fire time + lookahead, so popped at its fire time and
    // planned then (see schedule_due).
    bool at_fire_time = false;
    int64_t version = 0;  // of the job as last read from the store
  };

  // A running execution this driver takes care of, from its committed
  // start (or re-dispatch, or promotion from a waiting line) to its
  // committed result.
  struct Flight {
    enum class Phase : uint8_t {
      kWaiting,    // for send_at (fire time, backoff) and a valid lease
      kRecording,  // the next attempt's number is being committed
      kSending,    // an attempt is at the target
      kFinishing,  // its result is being committed
    };
    model::Execution exec;  // exec.attempts: attempts the log says may have been sent
    model::Job job;         // the definition it was planned with
    Phase phase = Phase::kWaiting;
    absl::Time send_at = absl::InfinitePast();
    absl::Time armed_at = absl::InfinitePast();  // its live timer; older ones are stale
    // Before the next send, commit attempts = to_record (0: nothing to
    // commit); `redispatch`: a new leader's re-dispatch rather than a retry.
    int to_record = 0;
    bool redispatch = false;
    bool sent = false;  // this driver sent an attempt of it (lag is measured once)
  };

  struct Timer {
    absl::Time at;
    uint64_t seq = 0;
    std::string execution_id;
    bool operator>(const Timer& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  struct Pending;

  // What is left to load since the activation (or since the dirty set
  // overflowed: then the jobs only), and where each walk resumes.
  struct Load {
    bool in_flight = false;
    std::string in_flight_after;
    bool jobs = false;
    std::string jobs_after;
    absl::Time retry_at = absl::InfinitePast();  // after a failed read
    std::chrono::steady_clock::time_point started;  // for the log only
    int64_t in_flight_ms = 0;
  };

  // ---- leadership ----
  void activate(uint64_t term);
  void deactivate(const char* why);
  // Reads the next slice of what is left to load (one turn's share).
  void load_slice();
  void load_in_flight();
  void load_jobs();

  // ---- jobs and starts ----
  void refresh_job(const model::JobTiming& job, const store::ScheduleState& state);
  void drain_dirty();
  void schedule_due(absl::Time now);
  void start_manual(TriggerRequest request, StartedCallback started, absl::Time now);
  void start_cancel(std::string job_id, std::string execution_id, StartedCallback done,
                    absl::Time now);
  model::FinishExecutions cancel_command(const std::string& job_id,
                                         const std::vector<std::string>& ids, absl::Time now,
                                         const std::string& why) const;
  void propose_start(model::CommandBatch batch, size_t start_index,
                     std::shared_ptr<Pending> pending);
  void on_start_committed(const Pending& pending, Result<store::ApplyOutcome> outcome);
  // What an applied entry means to the driver, taken out of it on the
  // applying thread (the entry itself can be large).
  struct AppliedNote {
    std::vector<std::string> jobs;           // to read again
    std::vector<std::string> finished_jobs;  // retention candidates
    std::vector<std::string> ended;          // executions it ended
    std::vector<model::Execution> started;   // waiting runs it started
  };
  void note_applied(const AppliedNote& note);

  // ---- flights ----
  void fly(model::Execution exec, model::Job job, absl::Time send_at);
  void arm(const std::string& execution_id, absl::Time at);
  void send_due(absl::Time now);
  void send(const std::string& execution_id, Flight& f);
  void on_attempt(const std::string& execution_id, dispatch::AttemptOutcome o);
  void record(const std::vector<std::string>& execution_ids);
  void on_recorded(uint64_t epoch, const std::vector<std::string>& execution_ids,
                   const Result<store::ApplyOutcome>& outcome);
  void end_flight(const std::string& execution_id);

  // ---- results ----
  void push_result(const model::Execution& exec, model::ExecutionStatus status, int attempts,
                   int status_code, std::string response, std::string error);
  void flush_results(absl::Time now);
  void on_results_committed(uint64_t epoch, std::vector<model::ExecutionResult> results,
                            const Status& st);
  void mark_dirty(const std::string& job_id);
  bool lease_valid() const;

  void enforce_retention(absl::Time now);
  void want_lease();
  void trace(const std::string& line) const;
  double unit_random();

  DriverOptions options_;
  DriverPorts ports_;
  metrics::Family<metrics::Counter>& executions_total_;
  metrics::Family<metrics::Histogram>& duration_;
  metrics::Family<metrics::Histogram>& lag_;
  metrics::Family<metrics::Counter>& missed_;
  metrics::Family<metrics::Counter>& retries_;

  bool active_ = false;
  bool stopped_ = false;
  uint64_t term_ = 0;
  // Bumped on every (de)activation; a completion from an older epoch is
  // stale (it belongs to another leadership).
  uint64_t epoch_ = 0;
  absl::Time now_;                                          // of the current turn
  absl::Duration lease_until_ = -absl::InfiniteDuration();  // of the current turn
  bool waiting_for_lease_ = false;  // a due send waits for the lease to be renewed

  Load load_;
  DueQueue queue_;
  std::unordered_map<std::string, JobEntry> jobs_;
  cron::ScheduleParser schedules_;  // shares parsed schedules between jobs_
  std::unordered_set<std::string> dirty_;
  bool dirty_all_ = false;

  std::unordered_map<std::string, Flight> flights_;  // by execution id
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  uint64_t timer_seq_ = 0;
  // Executions whose start or re-dispatch is proposed, not yet committed.
  std::unordered_set<std::string> proposed_;
  // Proposed starts whose end was applied before their start entry was
  // reported committed (libraft may report applies before the proposals'
  // callbacks); a subset of proposed_.
  std::unordered_set<std::string> ended_early_;

  std::deque<model::ExecutionResult> results_;
  absl::Time oldest_result_;
  absl::Time retry_results_after_ = absl::InfinitePast();

  std::unordered_set<std::string> retention_due_;
  absl::Time last_retention_ = absl::InfinitePast();
  absl::Time last_full_retention_ = absl::InfinitePast();
  std::vector<std::string> sweep_order_;
  size_t sweep_pos_ = 0;

  std::mt19937_64 rng_;
};

}  // namespace chronos::sched
