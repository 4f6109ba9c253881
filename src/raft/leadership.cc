#include "raft/leadership.h"

#include <algorithm>

namespace chronos::raft {

LeadershipTracker::LeadershipTracker(absl::Duration election_timeout)
    : lease_(election_timeout * kLeaseFraction), renew_after_(lease_ / 3) {}

bool LeadershipTracker::want_barrier(bool leader, uint64_t term, bool transferring,
                                     absl::Duration now, absl::Duration wanted_until) {
  if (term != term_) {
    // A new term: nothing proven yet, and whatever was in flight belongs to
    // the old one (its completion is ignored).
    term_ = term;
    barrier_in_flight_ = false;
    proven_at_ = -absl::InfiniteDuration();
  }
  leader_ = leader;
  transferring_ = transferring;
  if (!leader || transferring || barrier_in_flight_) return false;
  const bool catch_up = caught_up_term_ != term;
  // Renew when the wanted time is not covered with a margin, a barrier
  // proposed now would cover it, and the last proof is not too fresh.
  const absl::Duration need_until = wanted_until + renew_after_;
  const bool renew = proven_at_ + lease_ < need_until && now + lease_ >= need_until &&
                     now - proven_at_ >= renew_after_;
  if (!catch_up && !renew) return false;
  barrier_in_flight_ = true;
  return true;
}

void LeadershipTracker::barrier_done(uint64_t term, absl::Duration proposed_at, bool ok) {
  if (term != term_) return;
  barrier_in_flight_ = false;
  if (!ok) return;
  caught_up_term_ = term;
  committed(term, proposed_at);
}

void LeadershipTracker::committed(uint64_t term, absl::Duration proposed_at) {
  if (term != term_) return;
  proven_at_ = std::max(proven_at_, proposed_at);
}

absl::Duration LeadershipTracker::lease_until(uint64_t term) const {
  if (term != term_ || !leader_ || transferring_ || caught_up_term_ != term) {
    return -absl::InfiniteDuration();
  }
  return proven_at_ + lease_;
}

}  // namespace chronos::raft
