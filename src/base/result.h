#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "base/check.h"

namespace chronos {

// Error kinds a caller reacts to differently. The API maps each to one HTTP
// status and envelope code (SPEC §5); add a code only when some caller must
// tell it apart.
enum class ErrorCode : uint8_t {
  kInvalidJson,      // 400 INVALID_JSON
  kValidation,       // 400 VALIDATION_ERROR
  kUnauthorized,     // 401
  kForbidden,        // 403
  kNotFound,         // 404
  kAlreadyExists,    // 409 ALREADY_EXISTS
  kConflict,         // 409 CONFLICT (version mismatch)
  kPayloadTooLarge,  // 413
  kRateLimited,      // 429
  kNoLeader,         // 503 NO_LEADER
  kUnavailable,      // 503 UNAVAILABLE (shutting down, queue full, io)
  kInternal,         // 500
};

std::string_view error_code_name(ErrorCode code);

// An expected failure: what went wrong, for whom (the request field, as a
// dot path such as "retry_policy.max_attempts"; empty when no field is to
// blame) and a message for humans that names the rule that was broken.
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  std::string field;

  static Error validation(std::string field, std::string message) {
    return Error{ErrorCode::kValidation, std::move(message), std::move(field)};
  }
  static Error not_found(std::string message) {
    return Error{ErrorCode::kNotFound, std::move(message), {}};
  }
  static Error internal(std::string message) {
    return Error{ErrorCode::kInternal, std::move(message), {}};
  }
  // Same error, with `prefix.` put before its field (nested validation).
  Error nested_in(std::string_view prefix) const&;

  bool operator==(const Error&) const = default;
};

// Result<T>: a T or an Error. A small stand-in for std::expected (C++23),
// which g++ 12 offers only in C++23 mode.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    CHRONOS_CHECK(ok()) << "Result::value() on error: " << error().message;
    return std::get<0>(v_);
  }
  const T& value() const& {
    CHRONOS_CHECK(ok()) << "Result::value() on error: " << error().message;
    return std::get<0>(v_);
  }
  T&& value() && {
    CHRONOS_CHECK(ok()) << "Result::value() on error: " << error().message;
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& {
    CHRONOS_CHECK(!ok()) << "Result::error() on value";
    return std::get<1>(v_);
  }
  Error&& error() && {
    CHRONOS_CHECK(!ok()) << "Result::error() on value";
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& {
    CHRONOS_CHECK(!ok_) << "Result::error() on success";
    return error_;
  }
  Error&& error() && {
    CHRONOS_CHECK(!ok_) << "Result::error() on success";
    return std::move(error_);
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status ok_status() { return Status(); }

}  // namespace chronos

// Evaluates `expr` (a Result); returns its error from the enclosing function
// when it failed.
#define CHRONOS_RETURN_IF_ERROR(expr)               \
  do {                                              \
    auto chronos_status_ = (expr);                  \
    if (!chronos_status_.ok()) {                    \
      return std::move(chronos_status_).error();    \
    }                                               \
  } while (0)

#define CHRONOS_CONCAT_INNER_(a, b) a##b
#define CHRONOS_CONCAT_(a, b) CHRONOS_CONCAT_INNER_(a, b)

// CHRONOS_ASSIGN_OR_RETURN(auto x, f()): x = f().value(), or return f()'s error.
#define CHRONOS_ASSIGN_OR_RETURN(lhs, expr) \
  CHRONOS_ASSIGN_OR_RETURN_IMPL_(CHRONOS_CONCAT_(chronos_result_, __LINE__), lhs, expr)
#define CHRONOS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) {                                     \
    return std::move(tmp).error();                     \
  }                                                    \
  lhs = std::move(tmp).value()
