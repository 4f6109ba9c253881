#include "raft/state_machine.h"

#include "base/check.h"
#include "raft/entry_framing.h"

namespace chronos::raft {

StateMachine::StateMachine(store::Store* store, AppliedHook on_applied)
    : store_(store), on_applied_(std::move(on_applied)) {}

store::ApplyOutcome StateMachine::apply(uint64_t index, std::string_view entry) {
  if (index <= store_->applied_index()) {
    // A replay after restart (the store already holds it): skipped without
    // decoding, since a restart replays every entry kept behind the last
    // snapshot (tens of thousands on a large store).
    store::ApplyOutcome skipped;
    skipped.index = index;
    skipped.skipped = true;
    return skipped;
  }
  auto batch = model::decode_batch(unframe_entry(entry));
  CHRONOS_CHECK(batch.ok()) << "undecodable log entry " << index << ": " << batch.error().message;
  auto outcome = store_->apply(index, *batch);
  CHRONOS_CHECK(outcome.ok()) << "store apply of entry " << index
                              << " failed: " << outcome.error().message;
  if (on_applied_ && !outcome->skipped) on_applied_(*batch, *outcome);
  return std::move(outcome).value();
}

bool StateMachine::holds(uint64_t image_index) const {
  const uint64_t applied = store_->applied_index();
  return applied > 0 && applied >= image_index;
}

StateMachine::RestoreResult StateMachine::restore(std::string_view image, std::string* error) {
  auto image_index = store::Store::snapshot_applied_index(image);
  if (!image_index.ok()) {
    *error = image_index.error().message;
    return RestoreResult::kCorrupt;
  }
  if (holds(*image_index)) return RestoreResult::kAlreadyHeld;
  auto st = store_->restore_snapshot(image);
  if (!st.ok()) {
    *error = st.error().message;
    return RestoreResult::kFailed;
  }
  return RestoreResult::kRestored;
}

}  // namespace chronos::raft
