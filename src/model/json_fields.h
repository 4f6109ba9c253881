#pragma once

// Private to model/: typed, strict access to the fields of a JSON object.
//
// Every helper reports errors with `field` relative to the object it reads
// (the key, or "" for the value itself); callers put the object's own path in
// front with nest()/Error::nested_in, so the final error names a dot path
// such as "webhook.auth.token". A JSON null counts as "not given" everywhere
// (clients that serialize absent pointers as null get the default).
//
// Pure functions; no exceptions escape (nlohmann access is type-checked).

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "base/result.h"
#include "nlohmann/json.hpp"

namespace chronos::model::internal {

using Json = nlohmann::json;

// Re-labels an error from a nested object: "max_attempts" -> "retry_policy.max_attempts".
template <typename T>
Result<T> nest(Result<T> r, std::string_view prefix) {
  if (r.ok()) return r;
  return std::move(r).error().nested_in(prefix);
}

// Error for `field` with message `unknown field "<field>"`.
Error unknown_field(std::string_view field);

// `value` must be an object; its first key not in `allowed` is an error.
Status check_object(const Json& value, std::initializer_list<std::string_view> allowed);

// Value of `key` in `obj`, or nullptr when absent or null. `obj` must be an object.
const Json* find(const Json& obj, std::string_view key);

Result<std::optional<std::string>> get_string(const Json& obj, std::string_view key);
Result<std::optional<bool>> get_bool(const Json& obj, std::string_view key);
// Integers only: 3.0 is "must be an integer".
Result<std::optional<int64_t>> get_int(const Json& obj, std::string_view key);
// Any JSON number.
Result<std::optional<double>> get_number(const Json& obj, std::string_view key);
// A duration string (parse_duration); other types and bad syntax are errors.
Result<std::optional<absl::Duration>> get_duration(const Json& obj, std::string_view key);

// Checks a duration against inclusive bounds; message "must be between <lo> and <hi>".
Status check_duration_range(absl::Duration d, absl::Duration lo, absl::Duration hi);

// Rules for an object of string -> string (headers, tags, metadata).
struct StringMapRules {
  size_t max_entries = 64;
  size_t max_key_bytes = 256;
  size_t max_value_bytes = 8192;
  // Key predicate and the rule it states in errors ("must be an HTTP header name").
  std::function<bool(std::string_view)> key_ok;
  std::string key_rule;
  bool value_forbids_newlines = true;
};

// Parses `key` of `obj` as a string map (absent/null -> empty). Errors name
// the entry: "<key>.<entry>".
Result<std::map<std::string, std::string>> get_string_map(const Json& obj, std::string_view key,
                                                          const StringMapRules& rules);
// Checks an already parsed map; errors are relative to the map ("X-Foo").
Status check_string_map(const std::map<std::string, std::string>& m, const StringMapRules& rules);

// True when `j` nests at most `max_depth` objects/arrays (a scalar has depth
// 0). Iterative: safe on hostile input. nlohmann's dump/to_msgpack recurse,
// so free-form values (payloads, patches) are checked before they are used.
bool depth_within(const Json& j, int max_depth);

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or
// code points beyond U+10FFFF).
bool valid_utf8(std::string_view s);
// Length (1..4) of the well-formed UTF-8 sequence starting at s[i], or 0
// when none starts there. `i` < s.size().
size_t utf8_sequence_length(std::string_view s, size_t i);

// A time that may be unset (absl::InfinitePast()): null, else format_time.
Json time_or_null(absl::Time t);
// Reads such a time: absent or null is InfinitePast, a string is parse_time.
Result<absl::Time> get_time_or_unset(const Json& obj, std::string_view key);

// Arbitrary bytes in a form whose strings are UTF-8 (a log entry's must
// be): the string itself when it is valid UTF-8, else {"base64": "..."}.
Json bytes_to_json(std::string_view bytes);
// Inverse of bytes_to_json; absent or null is "".
Result<std::string> get_bytes(const Json& obj, std::string_view key);

// String helpers on std::string_view (Debian's abseil has its own
// absl::string_view, so absl::StrSplit & co. do not take std ones).
// Splits on `sep`, keeping empty pieces ("a,,b" -> "a", "", "b").
std::vector<std::string_view> split(std::string_view s, char sep);
std::string ascii_lower(std::string_view s);
std::string ascii_upper(std::string_view s);
std::string_view trim_ascii(std::string_view s);

}  // namespace chronos::model::internal
