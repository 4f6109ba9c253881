#include "base/result.h"

namespace chronos {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidJson:
      return "INVALID_JSON";
    case ErrorCode::kValidation:
      return "VALIDATION_ERROR";
    case ErrorCode::kUnauthorized:
      return "UNAUTHORIZED";
    case ErrorCode::kForbidden:
      return "FORBIDDEN";
    case ErrorCode::kNotFound:
      return "NOT_FOUND";
    case ErrorCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case ErrorCode::kConflict:
      return "CONFLICT";
    case ErrorCode::kPayloadTooLarge:
      return "PAYLOAD_TOO_LARGE";
    case ErrorCode::kRateLimited:
      return "RATE_LIMITED";
    case ErrorCode::kNoLeader:
      return "NO_LEADER";
    case ErrorCode::kUnavailable:
      return "UNAVAILABLE";
    case ErrorCode::kInternal:
      return "INTERNAL";
  }
  return "INTERNAL";
}

Error Error::nested_in(std::string_view prefix) const& {
  Error e = *this;
  if (e.field.empty()) {
    e.field = std::string(prefix);
  } else if (e.field.front() == '[') {
    e.field = std::string(prefix) + e.field;
  } else {
    e.field = std::string(prefix) + "." + e.field;
  }
  return e;
}

}  // namespace chronos
