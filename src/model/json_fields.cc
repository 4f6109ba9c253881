#include "model/json_fields.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "base/duration.h"
#include "base/strings.h"

namespace chronos::model::internal {

Error unknown_field(std::string_view field) {
  return Error::validation(std::string(field), str_cat("unknown field \"", field, "\""));
}

Status check_object(const Json& value, std::initializer_list<std::string_view> allowed) {
  if (!value.is_object()) return Error::validation("", "must be an object");
  for (const auto& [k, v] : value.items()) {
    bool known = false;
    for (std::string_view a : allowed) {
      if (a == k) {
        known = true;
        break;
      }
    }
    if (!known) return unknown_field(k);
  }
  return ok_status();
}

const Json* find(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::optional<std::string>> get_string(const Json& obj, std::string_view key) {
  const Json* v = find(obj, key);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return Error::validation(std::string(key), "must be a string");
  return std::optional<std::string>(v->get_ref<const std::string&>());
}

Result<std::optional<bool>> get_bool(const Json& obj, std::string_view key) {
  const Json* v = find(obj, key);
  if (v == nullptr) return std::optional<bool>();
  if (!v->is_boolean()) return Error::validation(std::string(key), "must be a boolean");
  return std::optional<bool>(v->get<bool>());
}

Result<std::optional<int64_t>> get_int(const Json& obj, std::string_view key) {
  const Json* v = find(obj, key);
  if (v == nullptr) return std::optional<int64_t>();
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error::validation(std::string(key), "is too large");
    }
    return std::optional<int64_t>(static_cast<int64_t>(u));
  }
  if (v->is_number_integer()) return std::optional<int64_t>(v->get<int64_t>());
  return Error::validation(std::string(key), "must be an integer");
}

Result<std::optional<double>> get_number(const Json& obj, std::string_view key) {
  const Json* v = find(obj, key);
  if (v == nullptr) return std::optional<double>();
  if (!v->is_number()) return Error::validation(std::string(key), "must be a number");
  return std::optional<double>(v->get<double>());
}

Result<std::optional<absl::Duration>> get_duration(const Json& obj, std::string_view key) {
  const Json* v = find(obj, key);
  if (v == nullptr) return std::optional<absl::Duration>();
  if (!v->is_string()) {
    return Error::validation(std::string(key), "must be a duration string like \"1m30s\"");
  }
  auto d = parse_duration(v->get_ref<const std::string&>());
  if (!d.ok()) {
    return Error::validation(std::string(key),
                             str_cat("must be a duration like 1m30s: ", d.error().message));
  }
  return std::optional<absl::Duration>(*d);
}

Status check_duration_range(absl::Duration d, absl::Duration lo, absl::Duration hi) {
  if (d < lo || d > hi) {
    return Error::validation(
        "", str_cat("must be between ", format_duration(lo), " and ", format_duration(hi)));
  }
  return ok_status();
}

Status check_string_map(const std::map<std::string, std::string>& m, const StringMapRules& rules) {
  if (m.size() > rules.max_entries) {
    return Error::validation("", str_cat("must have at most ", rules.max_entries, " entries"));
  }
  for (const auto& [k, v] : m) {
    if (k.empty() || k.size() > rules.max_key_bytes || (rules.key_ok && !rules.key_ok(k))) {
      return Error::validation(
          k, str_cat("key must be ", rules.key_rule, " (1-", rules.max_key_bytes, " bytes)"));
    }
    if (v.size() > rules.max_value_bytes) {
      return Error::validation(k, str_cat("must be at most ", rules.max_value_bytes, " bytes"));
    }
    if (rules.value_forbids_newlines &&
        v.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      return Error::validation(k, "must not contain CR, LF or NUL");
    }
  }
  return ok_status();
}

Result<std::map<std::string, std::string>> get_string_map(const Json& obj, std::string_view key,
                                                          const StringMapRules& rules) {
  std::map<std::string, std::string> out;
  const Json* v = find(obj, key);
  if (v == nullptr) return out;
  if (!v->is_object()) {
    return Error::validation(std::string(key), "must be an object of strings");
  }
  for (const auto& [k, val] : v->items()) {
    if (!val.is_string()) {
      return Error::validation(str_cat(key, ".", k), "must be a string");
    }
    out.emplace(k, val.get_ref<const std::string&>());
  }
  CHRONOS_RETURN_IF_ERROR(nest(check_string_map(out, rules), key));
  return out;
}

bool depth_within(const Json& j, int max_depth) {
  std::vector<std::pair<const Json*, int>> stack = {{&j, 0}};
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (!node->is_structured()) continue;
    if (depth + 1 > max_depth) return false;
    for (const Json& child : *node) stack.emplace_back(&child, depth + 1);
  }
  return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = absl::ascii_tolower(static_cast<unsigned char>(c));
  return out;
}

std::string ascii_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = absl::ascii_toupper(static_cast<unsigned char>(c));
  return out;
}

std::string_view trim_ascii(std::string_view s) {
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

}  // namespace chronos::model::internal
