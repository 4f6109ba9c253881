#include "base/clock.h"

#include <chrono>

#include "absl/time/clock.h"

namespace chronos {

absl::Time RealClock::now() const { return absl::Now(); }

absl::Duration RealClock::monotonic() const {
  return absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

RealClock* RealClock::instance() {
  static RealClock clock;
  return &clock;
}

SimulatedClock::SimulatedClock(absl::Time start) : now_(start), mono_(absl::Seconds(1)) {}

absl::Time SimulatedClock::now() const {
  std::lock_guard lock(mu_);
  return now_;
}

absl::Duration SimulatedClock::monotonic() const {
  std::lock_guard lock(mu_);
  return mono_;
}

void SimulatedClock::advance(absl::Duration d) {
  std::lock_guard lock(mu_);
  now_ += d;
  mono_ += d;
}

void SimulatedClock::set_now(absl::Time t) {
  std::lock_guard lock(mu_);
  now_ = t;
}

}  // namespace chronos
