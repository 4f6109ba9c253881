#pragma once

#include <cstdint>

#include "absl/time/time.h"

namespace chronos::raft {

// What a Raft member knows about its own leadership beyond libraft's role:
// whether it has applied everything committed before its term (the term's
// barrier), and its leadership lease (SPEC §3, DESIGN "Leadership lease").
//
// The lease. A follower that hears from the leader does not vote (nor
// pre-vote) for anyone until its own election timer runs out, at least one
// election timeout T later (libraft's "has a leader" check). So once a
// majority has stored an entry that this leader proposed at monotonic time
// b in its current term, each of them heard from it after b, and no other
// leader can be elected before b + T. The lease runs until
// b + kLeaseFraction × T for the latest such b; the margin absorbs clock
// rate differences and timer slack. It is measured from when the entry was
// proposed, never from when an answer arrived: answers can sit in a socket
// while a process is paused, and reading them late proves nothing.
// The lease is renewed only where it is wanted: the scheduler says until
// when it needs one (its next send), and a barrier is proposed when the
// lease would not cover that time with a third of a lease to spare, at
// most once a third of a lease. An idle cluster writes nothing.
// A leadership transfer lets the target be elected at once (libraft's
// disrupt_leader), so a transfer in progress ends the lease.
//
// Used by raft_node.cc and the simulation's cluster (tests/sim), which
// drive it with their own clocks. Not thread-safe: confine it to the thread
// that owns the `struct raft` (the loop thread).
class LeadershipTracker {
 public:
  static constexpr double kLeaseFraction = 0.9;

  explicit LeadershipTracker(absl::Duration election_timeout);

  // Called on every status refresh with libraft's view at monotonic `now`
  // and until when a lease is wanted (-InfiniteDuration(): not at all).
  // True when a barrier should be proposed now, stamped `now`: the first of
  // a new term (catching up), or a lease renewal.
  bool want_barrier(bool leader, uint64_t term, bool transferring, absl::Duration now,
                    absl::Duration wanted_until);
  // The barrier that want_barrier asked for (proposed at `proposed_at` in
  // `term`) completed; `ok` false when it failed (it is asked for again).
  void barrier_done(uint64_t term, absl::Duration proposed_at, bool ok);
  // An entry this member proposed at `proposed_at` while leader of `term`
  // was committed (a majority stored it; it may not be applied yet).
  void committed(uint64_t term, absl::Duration proposed_at);

  // A barrier of `term` has been applied: on a leader of that term, every
  // entry committed before the term is applied here.
  bool caught_up(uint64_t term) const { return term != 0 && caught_up_term_ == term; }
  // Monotonic time until which this member, leader of `term`, may act as
  // the only leader; -InfiniteDuration() when it is not leader (as of the
  // last want_barrier), holds no lease for that term, or a transfer is in
  // progress.
  absl::Duration lease_until(uint64_t term) const;

 private:
  absl::Duration lease_;        // kLeaseFraction × election timeout
  absl::Duration renew_after_;  // a third of the lease: renewal cadence and margin
  uint64_t term_ = 0;           // the term the fields below belong to
  // As of the last want_barrier: libraft 0.15 steps a leader that lost its
  // quorum down without changing its term.
  bool leader_ = false;
  bool transferring_ = false;
  bool barrier_in_flight_ = false;
  uint64_t caught_up_term_ = 0;
  absl::Duration proven_at_ = -absl::InfiniteDuration();  // latest b proven in term_
};

}  // namespace chronos::raft
