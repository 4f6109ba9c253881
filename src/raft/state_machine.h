#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "model/command.h"
#include "store/store.h"

namespace chronos::raft {

// Called after every entry is applied to the store (proposed here or not,
// leader or follower; not for entries skipped as replays), with what apply
// did. On the thread that applies (raft_node's apply thread); must return at
// once.
using AppliedHook =
    std::function<void(const model::CommandBatch& batch, const store::ApplyOutcome& outcome)>;

// The replicated state machine's side of a Raft member: committed log
// entries applied to a store::Store, and snapshot images restored into it.
// One implementation for the node (raft_node.cc) and the deterministic
// simulation (tests/sim), which differ only in how libraft is driven.
//
// Not thread-safe: confine it to the thread that applies entries. The
// store must outlive it.
class StateMachine {
 public:
  StateMachine(store::Store* store, AppliedHook on_applied);

  // Applies committed entry `index` (its bytes as they are in the log,
  // framed) and returns what apply did (`skipped` for an entry the store
  // already holds, a replay after restart). An entry that does not decode,
  // or a store write that fails, crashes the process: skipping it would
  // silently diverge from the other members. Proposers hear of their
  // entries' outcomes through the Applier, which calls this.
  store::ApplyOutcome apply(uint64_t index, std::string_view entry);

  enum class RestoreResult : uint8_t {
    kRestored,     // the store now holds the image's state
    kAlreadyHeld,  // the store already holds it (the usual restart): nothing written
    kCorrupt,      // not an image (nothing written)
    kFailed,       // the store could not write it
  };
  // Restores a snapshot image unless the store already holds that state.
  // A store at index 0 has applied nothing, yet an image at index 0 may
  // hold state (a restored backup snapshotted before any command applied),
  // so such an image is always restored. `error` gets a message on failure.
  RestoreResult restore(std::string_view image, std::string* error);
  // Whether the store already holds the state of an image at `index`
  // (restore's kAlreadyHeld): at start-up libraft then does not read the
  // image at all (RaftNode's snapshot_held).
  bool holds(uint64_t image_index) const;

 private:
  store::Store* store_;
  AppliedHook on_applied_;
};

}  // namespace chronos::raft
