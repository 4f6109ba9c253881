#include "raft/applier.h"

#include <algorithm>
#include <utility>

#include "base/check.h"

namespace chronos::raft {

Applier::Applier(StateMachine* state_machine, Limits limits)
    : state_machine_(state_machine), limits_(limits) {}

bool Applier::try_push(uint64_t index, std::string_view entry) {
  std::lock_guard lock(mu_);
  // An entry larger than max_bytes still goes in alone.
  if (queued_entries_ > 0 && (queued_entries_ >= limits_.max_entries ||
                              queued_bytes_ + entry.size() > limits_.max_bytes)) {
    return false;
  }
  queue_.push_back(Item{index, std::string(entry), nullptr});
  ++queued_entries_;
  queued_bytes_ += entry.size();
  ++pushed_;
  work_.notify_one();
  return true;
}

void Applier::push(uint64_t index, std::string_view entry) {
  while (!try_push(index, entry)) {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] {
      return queued_entries_ == 0 || (queued_entries_ < limits_.max_entries &&
                                      queued_bytes_ + entry.size() <= limits_.max_bytes);
    });
  }
}

void Applier::push_marker(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  queue_.push_back(Item{0, {}, std::move(fn)});
  ++pushed_;
  work_.notify_one();
}

void Applier::await(uint64_t index, Completion done) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = waiting_.try_emplace(index);
  CHRONOS_CHECK(inserted) << "log index " << index << " is already awaited";
  it->second.done = std::move(done);
}

void Applier::confirm(uint64_t index) {
  Completion done;
  std::optional<Result<store::ApplyOutcome>> outcome;
  {
    std::lock_guard lock(mu_);
    auto it = waiting_.find(index);
    if (it == waiting_.end()) return;
    if (!it->second.outcome) {
      it->second.confirmed = true;  // run_one answers once it applies the entry
      return;
    }
    done = std::move(it->second.done);
    outcome = std::move(it->second.outcome);
    waiting_.erase(it);
  }
  done(std::move(*outcome));
}

Applier::Completion Applier::abandon(uint64_t index) {
  std::lock_guard lock(mu_);
  auto it = waiting_.find(index);
  if (it == waiting_.end()) return nullptr;
  Completion done = std::move(it->second.done);
  waiting_.erase(it);
  return done;
}

void Applier::restored(uint64_t index) {
  std::lock_guard lock(mu_);
  last_applied_ = std::max(last_applied_, index);
}

uint64_t Applier::ticket() const {
  std::lock_guard lock(mu_);
  return pushed_;
}

bool Applier::run_one() {
  Item item;
  {
    std::lock_guard lock(mu_);
    if (queue_.empty()) return false;
    // Left in the queue while it runs, so idle() and drain() see it.
    item = std::move(queue_.front());
  }
  Completion done;
  Result<store::ApplyOutcome> outcome = Error::internal("not applied");
  if (item.marker) {
    item.marker();
  } else {
    outcome = state_machine_->apply(item.index, item.entry);
  }
  {
    std::lock_guard lock(mu_);
    queue_.pop_front();
    if (!item.marker) {
      --queued_entries_;
      queued_bytes_ -= item.entry.size();
      last_applied_ = item.index;
      if (auto it = waiting_.find(item.index); it != waiting_.end()) {
        if (it->second.confirmed) {
          done = std::move(it->second.done);
          waiting_.erase(it);
        } else {
          it->second.outcome = std::move(outcome);  // confirm() answers
        }
      }
    }
    ++done_;
    changed_.notify_all();
  }
  // After last_applied_ moved: a proposer that hears back reads a status
  // that includes its entry.
  if (done) done(std::move(outcome));
  return true;
}

void Applier::run() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      work_.wait(lock, [this] { return !queue_.empty() || finishing_; });
      if (queue_.empty()) {
        stopped_ = true;
        changed_.notify_all();
        return;
      }
    }
    run_one();
  }
}

bool Applier::wait_done(uint64_t ticket) {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return done_ >= ticket || stopped_; });
  return done_ >= ticket;
}

void Applier::finish() {
  std::lock_guard lock(mu_);
  finishing_ = true;
  work_.notify_all();
}

uint64_t Applier::last_applied() const {
  std::lock_guard lock(mu_);
  return last_applied_;
}

bool Applier::idle() const {
  std::lock_guard lock(mu_);
  return queue_.empty();
}

}  // namespace chronos::raft
