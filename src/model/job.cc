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

}  // namespace chronos::model
