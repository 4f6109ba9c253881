#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "dispatch/http_dispatcher.h"
#include "model/command.h"
#include "raft/raft_node.h"
#include "sched/decide.h"
#include "store/store.h"

namespace chronos::sched {

struct SchedulerOptions {
  std::string node_id;
  PlanOptions plan;
  // Executions per StartExecutions / FinishExecutions entry; bigger sets are
  // split over several entries.
  size_t max_batch = 1000;
  // How long finished results wait to be committed together.
  absl::Duration finish_batch_window = absl::Milliseconds(5);
  // Results waiting to be committed; beyond it the oldest are dropped and
  // their executions are re-dispatched by the next leader (at-least-once).
  size_t max_pending_results = 100'000;
  // History retention (SPEC §3): newest `history_max_per_job` executions per
  // job are kept, and none older than `history_max_age`.
  size_t history_max_per_job = 1000;
  absl::Duration history_max_age = absl::Hours(24 * 30);
  // How often retention runs over every job (leader only).
  absl::Duration retention_interval = absl::Minutes(1);
  // Bound of wait_for_result callers waiting at once, and of trigger/cancel
  // requests queued for the scheduler thread.
  size_t max_waiters = 10'000;
  size_t max_requests = 10'000;
};

// The leader-only scheduler (DESIGN "Threads", "Failover").
//
//   Raft apply ──on_applied()──▶ dirty job ids ─┐
//                                                ▼
//   scheduler thread: due queue ─▶ plan_job ─▶ propose StartExecutions
//        ▲                                          │ on commit
//        │ finished results (batched)               ▼
//        └── propose FinishExecutions ◀── dispatcher.call_with_retries
//
// One thread. It is active only while this node is the Raft leader and has
// applied everything committed (RaftStatus::caught_up): then it rebuilds the
// due queue from the store, applies missed-run policies to the gap, and
// re-dispatches executions left in flight by an earlier leader. It stops
// scheduling as soon as leadership is lost; results that cannot be
// committed any more are dropped (the next leader re-dispatches).
//
// Thread safety: on_applied() is called from the Raft loop thread; stop()
// from the controlling thread. Everything else is confined to the
// scheduler thread. The store, Raft node, dispatcher, clock and registry
// must outlive it.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  static std::unique_ptr<Scheduler> start(SchedulerOptions options, store::Store* store,
                                          raft::RaftNode* raft,
                                          dispatch::HttpDispatcher* dispatcher, const Clock* clock,
                                          metrics::Registry* metrics);

  // Notes the jobs an applied entry touched (Raft loop thread; cheap).
  virtual void on_applied(const model::CommandBatch& batch) = 0;

  // Called with the execution once its start is committed (kSkipped when
  // the concurrency policy refused it), or an error: kNotFound (no such
  // job), kNoLeader (not the active leader), kUnavailable.
  using StartedCallback = std::function<void(Result<model::Execution>)>;

  // Starts a manual run (POST /jobs/{id}/trigger) or a replay of an earlier
  // execution (trigger kReplay, `replay_of` its id) now. Concurrency policy
  // applies unless `force`. Any thread; `started` runs on another thread.
  struct TriggerRequest {
    std::string job_id;
    bool force = false;
    model::Trigger trigger = model::Trigger::kManual;
    std::string replay_of;
  };
  virtual void trigger(TriggerRequest request, StartedCallback started) = 0;

  // Calls `done` with the execution once its result is committed here, or
  // with kUnavailable when `timeout` passes first (it is still running) or
  // leadership is lost. At most max_waiters at once (then kUnavailable).
  virtual void wait_for_result(std::string job_id, std::string execution_id, absl::Duration timeout,
                               StartedCallback done) = 0;

  // Cancels a running execution: it is finished as kCancelled (a result
  // that arrives later is ignored: the first result wins).
  virtual void cancel(std::string job_id, std::string execution_id, StartedCallback done) = 0;

  // Stops the thread. Results not yet committed are dropped. Idempotent.
  virtual void stop() = 0;
};

}  // namespace chronos::sched
