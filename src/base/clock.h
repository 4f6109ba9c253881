#pragma once

#include <mutex>

#include "absl/time/time.h"

namespace chronos {

// Source of time. Everything that decides by time (scheduling, retention,
// timestamps put into Raft commands) takes a Clock so tests can drive it.
// Implementations are safe for concurrent use.
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time (UTC instant).
  virtual absl::Time now() const = 0;
  // Monotonic time for measuring intervals; never goes backwards. Its epoch
  // is arbitrary: compare only values from the same clock.
  virtual absl::Duration monotonic() const = 0;
};

// The process's real clock (system_clock / steady_clock).
class RealClock final : public Clock {
 public:
  absl::Time now() const override;
  absl::Duration monotonic() const override;
  static RealClock* instance();
};

// A clock that moves only when told to. Wall and monotonic time advance
// together on advance(); set_now() may jump wall time (also backwards) to
// model a stepped system clock while monotonic time stays put.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000));
  absl::Time now() const override;
  absl::Duration monotonic() const override;
  void advance(absl::Duration d);
  void set_now(absl::Time t);

 private:
  mutable std::mutex mu_;
  absl::Time now_;             // guarded by mu_
  absl::Duration mono_;        // guarded by mu_
};

}  // namespace chronos
