#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "model/command.h"
#include "sched/decide.h"
#include "sched/driver.h"
#include "sim/cluster.h"
#include "sim/support.h"

namespace chronos::sim {

// Where a process stops dead, for the "leader crashes mid-dispatch" fault:
// right after a StartExecutions entry committed (the driver never hears of
// it: nothing sent), or right after the first request of a run reached the
// receiver (its result not committed yet).
enum class CrashPoint : uint8_t { kNone, kStartCommitted, kFirstSend };

// What a process needs from its world. Pointers are owned by the World and
// outlive every process.
struct ProcessEnv {
  Cluster* cluster = nullptr;
  const Clock* clock = nullptr;
  IdSource* ids = nullptr;
  std::mt19937_64* rng = nullptr;  // target durations and outcomes, retry jitter seeds
  Receiver* receiver = nullptr;
  EventLog* log = nullptr;
  metrics::Registry* metrics = nullptr;
  // Job id -> short name, for the log.
  std::function<std::string(const std::string&)> job_name;
  sched::PlanOptions plan;  // the server's defaults
};

// The simulated target calls of one process (sched::TargetPort): each
// attempt reaches the Receiver when it is sent and ends after a duration
// drawn from the job's "sim" tag; some profiles answer 503 at times.
// Single-threaded; run() is the dispatcher thread's turn at `now`.
class SimTargets final : public sched::TargetPort {
 public:
  // Asked after each request reaches the receiver: true stops the process
  // dead (a crash point).
  using SentHook = std::function<bool(const model::Execution&, int attempt)>;

  SimTargets(const ProcessEnv* env, unsigned server) : env_(env), server_(server) {}
  void send(Attempt attempt, Done done) override;
  void cancel(const std::string& execution_id) override;
  // Sends what was submitted and ends what is due by `now`. False when
  // `sent` stopped the process.
  bool run(absl::Time now, uint64_t term, const SentHook& sent);

 private:
  struct Call {
    Attempt attempt;
    Done done;
    bool sent = false;
    absl::Time done_at;
    bool success = false;
    bool cancelled = false;
  };
  absl::Duration draw_duration(const model::Job& job);

  const ProcessEnv* env_;
  unsigned server_;
  std::vector<Call> calls_;  // in submission order (deterministic)
};

// One simulated process's scheduler: the production sched::Driver, with the
// cluster as its log port and SimTargets as its target port, turned after
// every fixture step as the scheduler thread would turn it. Completions
// posted by the ports wait in an inbox for the next turn, as they cross
// threads in the node.
//
// Lifecycle: one per process; a crash replaces it (its memory, attempts in
// progress and pending results are lost). Single-threaded.
class Process {
 public:
  Process(const ProcessEnv* env, unsigned server);
  ~Process();

  // The Raft apply hook (Scheduler::on_applied).
  void on_applied(const model::CommandBatch& batch, const store::ApplyOutcome& outcome);
  // One turn of the scheduler thread and the dispatcher at clock->now().
  void poll();

  bool active() const { return driver_->active(); }
  uint64_t active_term() const { return driver_->term(); }
  bool owns(const std::string& execution_id) const { return driver_->owns(execution_id); }
  // Stop dead at the next `point` reached while leading (then halted()).
  void arm_crash(CrashPoint point) { crash_point_ = point; }
  bool halted() const { return halted_; }

 private:
  class ClusterLog;
  bool crash_here(CrashPoint point);

  const ProcessEnv* env_;
  unsigned server_;
  std::unique_ptr<ClusterLog> log_;
  SimTargets targets_;
  std::vector<sched::Input> inbox_;
  std::unique_ptr<sched::Driver> driver_;
  CrashPoint crash_point_ = CrashPoint::kNone;
  bool halted_ = false;
};

}  // namespace chronos::sim
