#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/clock.h"
#include "cron/schedule.h"
#include "model/command.h"
#include "model/job.h"
#include "sched/decide.h"
#include "sched/due_queue.h"
#include "sim/cluster.h"
#include "sim/support.h"
#include "store/store.h"

namespace chronos::sim {

// Where a driver stops dead, for the "leader crashes mid-dispatch" fault:
// right after a StartExecutions entry committed and its runs were handed to
// dispatch (nothing sent yet), or right after the first request of a
// scheduled run reached the receiver (its result not committed yet).
enum class CrashPoint : uint8_t { kNone, kStartCommitted, kFirstSend };

// What a driver needs from its world. Pointers are owned by the World and
// outlive every driver.
struct DriverEnv {
  Cluster* cluster = nullptr;
  const Clock* clock = nullptr;
  IdSource* ids = nullptr;
  std::mt19937_64* rng = nullptr;  // dispatch durations and outcomes
  Receiver* receiver = nullptr;
  EventLog* log = nullptr;
  std::function<std::string(const std::string&)> job_name;  // job id -> short name for the log
  sched::PlanOptions plan;                                  // the server's defaults
  size_t max_batch = 1000;
  absl::Duration finish_batch_window = absl::Milliseconds(5);
  double attempt_failure_rate = 0.1;  // a failed attempt answers 503 (retryable)
};

// The simulated target calls of one process: call_with_retries, cancel and
// retries as dispatch::HttpDispatcher does them (decide_retry between
// attempts, first_delay before the first), with request durations and
// outcomes drawn from the seed. Every attempt is recorded in the Receiver
// when it is sent. Owned by its Driver; single-threaded; run() is its
// thread's turn at `now`.
class SimDispatcher {
 public:
  struct CallEnd {
    bool success = false;
    bool cancelled = false;
    int attempts_made = 0;
    int status_code = 0;
  };
  using Done = std::function<void(const CallEnd&)>;
  // Returns true when the process must stop dead right now (a crash point).
  using SentHook = std::function<bool(const model::Execution&, int attempt)>;

  SimDispatcher(const DriverEnv* env, unsigned server) : env_(env), server_(server) {}
  void call_with_retries(model::Execution exec, model::Job job, int first_attempt,
                         absl::Time first_at, Done done);
  void cancel(const std::string& execution_id);
  // Sends what is due and finishes what completed by `now`. Returns false
  // when `sent` asked to stop (the rest waits for a run that never comes).
  bool run(absl::Time now, const SentHook& sent);
  size_t calls() const { return calls_.size(); }

 private:
  struct Call {
    model::Execution exec;
    model::Job job;
    int attempt = 1;
    int attempts_made = 0;
    absl::Time next_at;
    bool in_flight = false;
    absl::Time done_at;
    bool success = false;
    bool cancelled = false;
    bool finished = false;
    Done done;
  };
  absl::Duration draw_duration(const model::Job& job);

  const DriverEnv* env_;
  unsigned server_;
  std::vector<std::unique_ptr<Call>> calls_;  // in submission order (deterministic)
};

// The leader-side scheduler of one simulated process, mirroring
// sched/scheduler.cc's SchedulerImpl turn by turn (activate / deactivate,
// rebuild, drain_dirty, schedule_due, drain_committed, dispatch,
// push_result, flush_results, redispatch_in_flight) over the REAL pure core
// (plan_job, next_fire_time, to_command, DueQueue) and this server's real
// store. What the real driver does with threads and condition variables
// happens here in poll(), called after every fixture step; proposal
// completions are queued and handled at the next poll, as the real driver
// hands them from the Raft loop to its thread. Not mirrored: manual
// triggers, waiters and history retention (no request reaches it here, and
// retention never prunes within a seed's minute).
//
// Lifecycle: one Driver per process; a crash replaces it (its memory,
// dispatches in progress and pending results are lost). Single-threaded.
class Driver {
 public:
  Driver(const DriverEnv* env, unsigned server);

  // The Raft apply hook (Scheduler::on_applied): notes the jobs a committed
  // batch touched.
  void on_applied(const model::CommandBatch& batch);
  // One turn of the scheduler thread and the dispatcher at clock->now().
  void poll();

  bool active() const { return active_; }
  uint64_t active_term() const { return term_; }
  // Stop dead at the next `point` reached while leading (then halted()).
  void arm_crash(CrashPoint point) { crash_point_ = point; }
  CrashPoint armed() const { return crash_point_; }
  bool halted() const { return halted_; }
  // True while this process is responsible for the execution: dispatching
  // it, holding its result, committing that result, or about to dispatch
  // it (its start or re-dispatch committed, not yet handed over). An
  // execution in flight in the store that the active leader does not own
  // would never end.
  bool owns(const std::string& execution_id) const;

 private:
  struct JobEntry {
    cron::Schedule schedule;
    absl::Time last_scheduled = absl::InfinitePast();
    bool start_pending = false;
  };
  struct PendingStart {
    model::Execution execution;
    model::Job job;
    size_t item = 0;
  };
  struct Committed {
    uint64_t epoch = 0;
    Result<store::ApplyOutcome> outcome = Error::internal("unset");
    std::vector<PendingStart> starts;
    std::vector<std::string> job_ids;
    std::vector<std::string> cancels;
  };

  void activate(uint64_t term);
  void deactivate(const char* why);
  void rebuild();
  void refresh_job(const model::Job& job, const store::ScheduleState& state);
  void drain_dirty();
  void schedule_due(absl::Time now);
  void propose(model::CommandBatch batch, size_t start_index, Committed c);
  void drain_committed();
  void dispatch(model::Execution exec, const model::Job& job);
  void push_result(const model::Execution& exec, model::ExecutionStatus status, int attempts,
                   int status_code);
  void flush_results(absl::Time now);
  void redispatch_in_flight();
  model::FinishExecutions cancel_command(const std::string& job_id,
                                         const std::vector<std::string>& ids, absl::Time now);
  void log(const std::string& line);
  bool crash_here(CrashPoint point);

  const DriverEnv* env_;
  unsigned server_;
  std::string node_id_;
  store::Store* store_;
  SimDispatcher dispatcher_;

  bool active_ = false;
  uint64_t term_ = 0;
  uint64_t epoch_ = 0;
  sched::DueQueue queue_;
  std::map<std::string, JobEntry> jobs_;
  std::set<std::string> dirty_;
  std::deque<Committed> committed_;
  std::deque<model::ExecutionResult> results_;
  absl::Time oldest_result_;
  absl::Time retry_results_after_ = absl::InfinitePast();
  std::set<std::string> live_;  // executions this process is dispatching (any term)
  // Results proposed and not yet answered (test bookkeeping for owns()).
  std::multiset<std::string> finishing_;

  CrashPoint crash_point_ = CrashPoint::kNone;
  bool halted_ = false;
};

}  // namespace chronos::sim
