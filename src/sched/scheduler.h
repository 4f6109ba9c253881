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
#include "sched/driver.h"
#include "store/store.h"

namespace chronos::sched {

// The leader-only scheduler (DESIGN "Threads", "Failover"): a thread that
// runs the driver (driver.h) turn by turn, with the node's Raft log and
// webhook dispatcher as its ports.
//
//   Raft apply ──on_applied()──▶ inbox ─┐
//   API trigger / cancel ──────▶ inbox ─┤
//   proposal / attempt outcomes ▶ inbox ─┤
//                                        ▼
//   scheduler thread: Driver::turn(now, inbox) ──▶ propose / send
//                     sleeps until Driver::next_wake (≤ 20 ms) or new input
//
// Thread safety: every public method may be called from any thread
// (on_applied from the Raft apply thread). The store, Raft node, dispatcher, clock
// and registry must outlive it.
class Scheduler {
 public:
  struct Options {
    DriverOptions driver;
    // Bound of wait_for_result callers waiting at once, and of inputs
    // queued for the thread (trigger/cancel requests beyond it are refused).
    size_t max_waiters = 10'000;
    size_t max_requests = 10'000;
  };
  using TriggerRequest = Driver::TriggerRequest;
  using StartedCallback = Driver::StartedCallback;

  virtual ~Scheduler() = default;
  static std::unique_ptr<Scheduler> start(Options options, store::Store* store,
                                          raft::RaftNode* raft,
                                          dispatch::HttpDispatcher* dispatcher, const Clock* clock,
                                          metrics::Registry* metrics);

  // An entry was applied (Raft apply thread; cheap).
  virtual void on_applied(const model::CommandBatch& batch, const store::ApplyOutcome& outcome) = 0;

  // Starts a manual run (POST /jobs/{id}/trigger) or a replay of an earlier
  // execution (trigger kReplay, `replay_of` its id) now; see
  // Driver::StartedCallback. `started` runs on another thread.
  virtual void trigger(TriggerRequest request, StartedCallback started) = 0;

  // Calls `done` with the execution once its result is committed here, or
  // with kUnavailable when `timeout` passes first (it is still running) or
  // leadership is lost. At most max_waiters at once (then kUnavailable).
  virtual void wait_for_result(std::string job_id, std::string execution_id, absl::Duration timeout,
                               StartedCallback done) = 0;

  // Cancels a running or waiting execution: it is finished as kCancelled
  // (a result that arrives later is ignored: the first result wins).
  virtual void cancel(std::string job_id, std::string execution_id, StartedCallback done) = 0;

  // Stops the thread. Results not yet committed are dropped. Idempotent.
  virtual void stop() = 0;
};

}  // namespace chronos::sched
