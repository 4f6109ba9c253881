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
  }
  return "forbid";
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

}  // namespace chronos::model
