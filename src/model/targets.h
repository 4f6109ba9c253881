#pragma once

// Private to model/: rules and JSON forms of the job targets (SPEC §4),
// webhook and dispatch. Errors are relative to the target object ("url",
// "auth.token", "brokers[1]"); job_codec.cc nests them under "webhook" /
// "dispatch". Pure functions.

#include <initializer_list>
#include <string>
#include <string_view>

#include "base/result.h"
#include "model/job.h"
#include "nlohmann/json.hpp"

namespace chronos::model::internal {

struct UrlParts {
  std::string scheme;    // lowercased
  std::string userinfo;  // "user:password" or "", before '@'
  std::string host;      // without brackets for IPv6
  int port = 0;          // 0 when not given
};

// A simple absolute-URL check: <scheme>://[userinfo@]host[:port][/path...],
// scheme one of `schemes` (case-insensitive), at most 2048 bytes, no spaces
// or control characters. Not a full RFC 3986 parser; enough to refuse typos.
Result<UrlParts> parse_url(std::string_view url, std::initializer_list<std::string_view> schemes);

// RFC 9110 token: the characters allowed in an HTTP header name.
bool is_http_token(std::string_view s);

// Webhook from its JSON object (structure and types; method uppercased).
Result<Webhook> webhook_from_json(const nlohmann::json& j);
// Rules on a parsed webhook (url, method, headers, body size, auth, codes).
Status validate_webhook(const Webhook& w);
nlohmann::json webhook_to_json(const Webhook& w, bool redact);

// Dispatch from a request: checks the per-type fields and rules and returns
// the normalised config (kafka brokers as an array, acks as an integer,
// rabbitmq delivery_mode filled in).
Result<Dispatch> dispatch_from_request(const nlohmann::json& j);
// Dispatch from the internal form: only the structure, no rules.
Result<Dispatch> dispatch_from_internal(const nlohmann::json& j);
Status validate_dispatch(const Dispatch& d);
nlohmann::json dispatch_to_json(const Dispatch& d, bool redact);

// "***" placeholder that replaces secrets in the API form.
inline constexpr std::string_view kRedacted = "***";

}  // namespace chronos::model::internal
