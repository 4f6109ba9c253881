#include "model/json_fields.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "base/duration.h"
#include "base/strings.h"
#include "model/job_codec.h"

namespace chronos::model::internal {

size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto c = static_cast<uint8_t>(s[i]);
  size_t n = 0;
  uint32_t cp = 0;
  if (c < 0x80) {
    return 1;
  } else if ((c & 0xe0) == 0xc0) {
    n = 1;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    n = 2;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    n = 3;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n > s.size() - i - 1) return 0;
  for (size_t k = 1; k <= n; ++k) {
    const auto cc = static_cast<uint8_t>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  // Overlong forms, surrogates and values beyond U+10FFFF.
  if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
      cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return n + 1;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

Json time_or_null(absl::Time t) {
  if (t == absl::InfinitePast()) return nullptr;
  return format_time(t);
}

Result<absl::Time> get_time_or_unset(const Json& obj, std::string_view key) {
  CHRONOS_ASSIGN_OR_RETURN(auto text, get_string(obj, key));
  if (!text) return absl::InfinitePast();
  return nest(parse_time(*text), key);
}

Json bytes_to_json(std::string_view bytes) {
  if (valid_utf8(bytes)) return std::string(bytes);
  return Json{{"base64", absl::Base64Escape(absl::string_view(bytes.data(), bytes.size()))}};
}

Result<std::string> get_bytes(const Json& obj, std::string_view key) {
  const Json* v = find(obj, key);
  if (v == nullptr) return std::string();
  if (v->is_string()) return v->get<std::string>();
  const std::string field(key);
  if (!v->is_object() || v->size() != 1 || !v->contains("base64") || !(*v)["base64"].is_string()) {
    return Error::validation(field, "must be a string or {\"base64\": string}");
  }
  const std::string& text = (*v)["base64"].get_ref<const std::string&>();
  std::string out;
  if (!absl::Base64Unescape(absl::string_view(text.data(), text.size()), &out)) {
    return Error::validation(field + ".base64", "is not base64");
  }
  return out;
}

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
