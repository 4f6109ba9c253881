#include "model/job.h"

namespace chronos::model {

std::string_view to_string(Concurrency c) {
  switch (c) {
    case Concurrency::kAllow:
      return "allow";
    case Concurrency::kForbid:
      return "forbid";
    case Concurrency::kReplace:
      return "replace";
    case Concurrency::kBufferOne:
      return "buffer_one";
  }
  return "buffer_one";
}

std::string_view to_string(MissedRunPolicy p) {
  switch (p) {
    case MissedRunPolicy::kIgnore:
      return "ignore";
    case MissedRunPolicy::kExecuteOne:
      return "execute_one";
    case MissedRunPolicy::kExecuteAll:
      return "execute_all";
  }
  return "execute_one";
}

std::optional<Concurrency> parse_concurrency(std::string_view s) {
  for (Concurrency c : {Concurrency::kAllow, Concurrency::kForbid, Concurrency::kBufferOne,
                        Concurrency::kReplace}) {
    if (s == to_string(c)) return c;
  }
  return std::nullopt;
}

std::optional<MissedRunPolicy> parse_missed_run_policy(std::string_view s) {
  for (MissedRunPolicy p :
       {MissedRunPolicy::kIgnore, MissedRunPolicy::kExecuteOne, MissedRunPolicy::kExecuteAll}) {
    if (s == to_string(p)) return p;
  }
  return std::nullopt;
}

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

namespace {

absl::Duration jitter_offset(std::string_view id, absl::Duration jitter) {
  int64_t jitter_ms = absl::ToInt64Milliseconds(jitter);
  if (jitter_ms <= 0) return absl::ZeroDuration();
  return absl::Milliseconds(static_cast<int64_t>(fnv1a64(id) % static_cast<uint64_t>(jitter_ms)));
}

}  // namespace

absl::Duration jitter_offset(const Job& job) { return jitter_offset(job.id, job.jitter); }
absl::Duration jitter_offset(const JobTiming& job) { return jitter_offset(job.id, job.jitter); }

JobTiming timing_of(const Job& job) {
  return JobTiming{job.id,     job.version,    job.enabled, job.schedule,
                   job.timezone, job.created_at, job.jitter};
}

}  // namespace chronos::model
