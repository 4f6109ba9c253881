#include "dispatch/circuit_breaker.h"

#include <algorithm>

#include "base/check.h"

namespace chronos::dispatch {

std::string_view to_string(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

CircuitBreaker::CircuitBreaker(BreakerOptions options) : options_(options) {
  CHRONOS_CHECK(options_.failure_threshold >= 1) << "failure_threshold must be >= 1";
  CHRONOS_CHECK(options_.success_threshold >= 1) << "success_threshold must be >= 1";
  CHRONOS_CHECK(options_.max_keys >= 1) << "max_keys must be >= 1";
}

CircuitBreaker::Entry& CircuitBreaker::touch(std::string_view key) {
  // Heterogeneous lookup needs C++20 transparent hashing; the key is short,
  // so a copy is fine.
  std::string k(key);
  auto it = entries_.find(k);
  if (it != entries_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second;
  }
  if (entries_.size() >= options_.max_keys) evict_one();
  lru_.push_front(k);
  Entry& e = entries_[std::move(k)];
  e.lru = lru_.begin();
  return e;
}

void CircuitBreaker::evict_one() {
  CHRONOS_CHECK(!lru_.empty());
  auto victim = std::prev(lru_.end());
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
    if (entries_.at(*it).state == BreakerState::kClosed) {
      victim = std::prev(it.base());
      break;
    }
  }
  entries_.erase(*victim);
  lru_.erase(victim);
}

void CircuitBreaker::open(Entry& e, absl::Time now) {
  e.state = BreakerState::kOpen;
  e.opened_at = now;
  e.half_open_successes = 0;
  e.probe_in_flight = false;
}

bool CircuitBreaker::allow(std::string_view key, absl::Time now) {
  std::lock_guard lock(mu_);
  Entry& e = touch(key);
  switch (e.state) {
    case BreakerState::kClosed:
      return true;
    case BreakerState::kOpen:
      if (now - e.opened_at < options_.open_duration) return false;
      e.state = BreakerState::kHalfOpen;
      e.half_open_successes = 0;
      e.probe_in_flight = true;
      e.probe_started = now;
      return true;
    case BreakerState::kHalfOpen:
      if (e.probe_in_flight && now - e.probe_started < options_.open_duration) return false;
      e.probe_in_flight = true;
      e.probe_started = now;
      return true;
  }
  return false;
}

void CircuitBreaker::record(std::string_view key, bool success, absl::Time now) {
  std::lock_guard lock(mu_);
  Entry& e = touch(key);
  switch (e.state) {
    case BreakerState::kClosed:
      if (success) {
        e.consecutive_failures = 0;
      } else if (++e.consecutive_failures >= options_.failure_threshold) {
        open(e, now);
      }
      return;
    case BreakerState::kOpen:
      return;  // a call admitted before it opened
    case BreakerState::kHalfOpen:
      e.probe_in_flight = false;
      if (!success) {
        ++e.consecutive_failures;
        open(e, now);
      } else if (++e.half_open_successes >= options_.success_threshold) {
        e.state = BreakerState::kClosed;
        e.consecutive_failures = 0;
        e.half_open_successes = 0;
      }
      return;
  }
}

BreakerInfo CircuitBreaker::info(std::string_view key) const {
  std::lock_guard lock(mu_);
  BreakerInfo info;
  info.key = std::string(key);
  auto it = entries_.find(info.key);
  if (it != entries_.end()) {
    info.state = it->second.state;
    info.consecutive_failures = it->second.consecutive_failures;
    info.opened_at = it->second.opened_at;
  }
  return info;
}

std::vector<BreakerInfo> CircuitBreaker::snapshot() const {
  std::vector<BreakerInfo> out;
  {
    std::lock_guard lock(mu_);
    out.reserve(entries_.size());
    for (const auto& [key, e] : entries_) {
      out.push_back(BreakerInfo{key, e.state, e.consecutive_failures, e.opened_at});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const BreakerInfo& a, const BreakerInfo& b) { return a.key < b.key; });
  return out;
}

void CircuitBreaker::release_probe(std::string_view key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(std::string(key));
  if (it == entries_.end()) return;
  if (it->second.state == BreakerState::kHalfOpen) it->second.probe_in_flight = false;
}

}  // namespace chronos::dispatch
