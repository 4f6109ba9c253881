#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/result.h"
#include "raft/state_machine.h"
#include "store/store.h"

namespace chronos::raft {

// Committed entries applied off the thread that drives libraft, in log
// order. libraft's FSM apply only queues the entry (a copy: libraft may
// free its own once apply returns), so libraft's loop goes on sending
// heartbeats and storing entries while another thread writes the store.
// libraft then counts an entry as applied when it is queued; whatever needs
// it applied to the store waits here instead:
// - a proposer: await(index) runs its completion once the entry is applied
//   and libraft has confirmed (confirm) that the entry applied at that
//   index is the proposer's own;
// - a barrier (a consistent read, the leader's barrier per term): a marker
//   runs once everything queued before it is applied;
// - a snapshot: ticket() then wait_done() before the store is read;
// - a restore: drain() before the store is rewritten.
//
// One implementation for the node (raft_node.cc, where a thread calls
// run()) and the deterministic simulation (tests/sim, which calls
// run_one() between its steps and so lets the store lag libraft by a few
// entries).
//
// Thread safety: every member may be called from any thread. Entries,
// markers and completions run on the thread that calls run() / run_one(),
// one at a time; only one thread may do so.
class Applier {
 public:
  // A proposal's outcome once its entry is applied (outcome.skipped when
  // the store already held it), or why it never will be.
  using Completion = std::function<void(Result<store::ApplyOutcome>)>;

  struct Limits {
    // Bounds of the queue of entries not yet applied. When it is full,
    // push() waits: the store is falling behind what commits, and the
    // leader's proposals wait (max_pending_proposals) rather than memory
    // growing.
    size_t max_entries = 4096;
    size_t max_bytes = 32u << 20;
  };

  Applier(StateMachine* state_machine, Limits limits);
  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;

  // ---- the thread that drives libraft ----

  // Queues committed entry `index` (copied). False, with nothing queued,
  // when the queue is full.
  bool try_push(uint64_t index, std::string_view entry);
  // As try_push, waiting while the queue is full.
  void push(uint64_t index, std::string_view entry);
  // Runs `fn` on the applying thread once every entry queued before it is
  // applied. Not bounded by Limits; the callers bound them (raft_node: a
  // barrier keeps its pending-proposal slot until its marker runs, and the
  // leader's own barrier is one at a time).
  void push_marker(std::function<void()> fn);
  // The proposal at log `index`: `done` runs with its outcome once the
  // entry at that index is applied and confirm(index) was called, on the
  // thread that does the later of the two. Call it before the entry can
  // commit (right after raft_apply returned the index); an index may be
  // awaited once at a time.
  //
  // Both are needed because the entry applied at an index is not always
  // the one proposed there: a deposed leader's uncommitted entry can be
  // replaced by the new leader's, which libraft may queue here before it
  // fails the old request. libraft's request callback tells which
  // (status 0: confirm; an error: abandon).
  void await(uint64_t index, Completion done);
  // libraft reports the proposal at `index` applied (its request succeeded).
  void confirm(uint64_t index);
  // A proposal's request failed (leadership lost, shutdown): its
  // completion if it has not run, which then never runs here (an outcome
  // already applied at that index belongs to another entry and is
  // dropped); nullptr when it already ran or was never awaited.
  Completion abandon(uint64_t index);

  // How many items have been queued so far; wait_done(ticket()) waits for
  // everything queued until now.
  uint64_t ticket() const;

  // ---- the applying thread ----

  // Applies the oldest queued entry (or runs a marker) and its completion.
  // False when nothing was queued.
  bool run_one();
  // run_one() until finish() and the queue is empty, waiting for work.
  void run();

  // ---- any thread ----

  // Waits until the first `ticket` items queued are done. False when the
  // applier stopped first (finish() and nothing left).
  bool wait_done(uint64_t ticket);
  // Waits until nothing is queued or being applied.
  void drain() { wait_done(ticket()); }
  // Makes run() return once everything queued is done.
  void finish();

  // A snapshot at `index` was restored into the store (the queue is
  // drained): last_applied() moves up to it.
  void restored(uint64_t index);

  // The index of the last entry applied (or skipped as held) here, or
  // restored; 0 before the first. Entries libraft counts as applied
  // without queueing them (barriers, configuration changes) are not
  // included; idle() tells when libraft's own count is exact.
  uint64_t last_applied() const;
  // Nothing is queued or being applied.
  bool idle() const;

 private:
  struct Item {
    uint64_t index = 0;            // entries
    std::string entry;             // entries: framed, as in the log
    std::function<void()> marker;  // markers
  };

  StateMachine* state_machine_;
  const Limits limits_;

  mutable std::mutex mu_;
  std::condition_variable work_;     // an item was queued, or finish()
  std::condition_variable changed_;  // an item was done, or run() returned
  std::deque<Item> queue_;           // guarded by mu_
  size_t queued_entries_ = 0;        // entries in queue_; guarded by mu_
  size_t queued_bytes_ = 0;          // their bytes; guarded by mu_
  uint64_t pushed_ = 0;              // items ever queued; guarded by mu_
  uint64_t done_ = 0;                // items ever done; guarded by mu_
  uint64_t last_applied_ = 0;        // guarded by mu_
  bool finishing_ = false;           // guarded by mu_
  bool stopped_ = false;             // run() returned; guarded by mu_
  // A proposal awaited at an index: its completion, and what is known yet.
  struct Waiter {
    Completion done;
    bool confirmed = false;                          // confirm() was called
    std::optional<Result<store::ApplyOutcome>> outcome;  // set once applied
  };
  std::unordered_map<uint64_t, Waiter> waiting_;  // guarded by mu_
};

}  // namespace chronos::raft
