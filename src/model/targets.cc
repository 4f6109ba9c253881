#include "model/targets.h"

#include <array>
#include <cstdint>
#include <span>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "base/duration.h"
#include "base/strings.h"
#include "model/json_fields.h"
#include "model/limits.h"

namespace chronos::model::internal {
namespace {

using Json = nlohmann::json;

// Bounds (README "Validation bounds").
constexpr size_t kMaxUrlBytes = 2048;
constexpr size_t kMaxWebhookBodyBytes = 64 * 1024;
constexpr size_t kMaxPayloadBytes = 256 * 1024;
constexpr size_t kMaxSuccessCodes = 32;
constexpr size_t kMaxSecretBytes = 8192;
constexpr size_t kMaxShortStringBytes = 255;  // AMQP shortstr; also names, users
constexpr size_t kMaxBrokers = 64;
constexpr absl::Duration kMaxReplyTimeout = absl::Hours(1);

constexpr std::array<std::string_view, 7> kMethods = {"GET",    "POST", "PUT",    "PATCH",
                                                      "DELETE", "HEAD", "OPTIONS"};

bool has_ctl_or_space(std::string_view s) {
  for (unsigned char c : s) {
    if (c <= 0x20 || c == 0x7f) return true;
  }
  return false;
}

bool has_newline(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool is_host_char(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

// host[:port]; `port_required` for broker lists.
Result<std::pair<std::string, int>> parse_host_port(std::string_view hp, bool port_required) {
  std::string_view host = hp;
  std::string_view port;
  if (hp.starts_with("[")) {
    size_t close = hp.find(']');
    if (close == std::string_view::npos)
      return Error::validation("", "has an unclosed '[' in the host");
    host = hp.substr(1, close - 1);
    std::string_view rest = hp.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return Error::validation("", "has junk after the IPv6 host");
      port = rest.substr(1);
      if (port.empty()) return Error::validation("", "has an empty port");
    }
    for (char c : host) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        return Error::validation("", "has an invalid IPv6 host");
      }
    }
  } else {
    size_t colon = hp.find(':');
    if (colon != std::string_view::npos) {
      host = hp.substr(0, colon);
      port = hp.substr(colon + 1);
      if (port.empty()) return Error::validation("", "has an empty port");
    }
    for (char c : host) {
      if (!is_host_char(c)) {
        return Error::validation(
            "", str_cat("has an invalid character '", std::string(1, c), "' in the host"));
      }
    }
  }
  if (host.empty()) return Error::validation("", "must have a host");
  int port_value = 0;
  if (!port.empty()) {
    bool digits = port.size() <= 5;
    for (char c : port) digits = digits && absl::ascii_isdigit(static_cast<unsigned char>(c));
    if (!digits || !parse_int(port, &port_value) || port_value < 1 || port_value > 65535) {
      return Error::validation("", "must have a port between 1 and 65535");
    }
  } else if (port_required) {
    return Error::validation("", "must be host:port");
  }
  return std::make_pair(std::string(host), port_value);
}

std::string scheme_list(std::initializer_list<std::string_view> schemes) {
  std::string out;
  for (std::string_view s : schemes) out += str_cat(out.empty() ? "" : " or ", s, "://");
  return out;
}

// Header names whose values are credentials; redacted in the API form.
bool is_secret_header(std::string_view name) {
  std::string n = ascii_lower(name);
  if (n == "authorization" || n == "proxy-authorization" || n == "cookie" || n == "x-api-key") {
    return true;
  }
  for (std::string_view word : {"token", "secret", "password", "apikey", "api-key", "api_key"}) {
    if (n.find(word) != std::string::npos) return true;
  }
  return false;
}

// Headers Chronos sets itself on every webhook call (SPEC §4) or that the
// HTTP client owns.
bool is_reserved_header(std::string_view name) {
  std::string n = ascii_lower(name);
  return n.starts_with("x-chronos-") || n == "idempotency-key" || n == "content-length" ||
         n == "transfer-encoding" || n == "connection";
}

StringMapRules http_header_rules() {
  StringMapRules r;
  r.max_entries = 64;
  r.max_key_bytes = 256;
  r.max_value_bytes = kMaxSecretBytes;
  r.key_ok = is_http_token;
  r.key_rule = "an HTTP header name (token characters)";
  return r;
}

// Message-queue / gRPC metadata keys: printable, no separators that break
// the wire formats.
StringMapRules metadata_rules() {
  StringMapRules r;
  r.max_entries = 64;
  r.max_key_bytes = 256;
  r.max_value_bytes = kMaxSecretBytes;
  r.key_ok = [](std::string_view k) {
    for (char c : k) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
        return false;
      }
    }
    return true;
  };
  r.key_rule = "letters, digits, '-', '_' or '.'";
  return r;
}

Error required(std::string_view field) {
  return Error::validation(std::string(field), "is required");
}

Status check_length(std::string_view field, std::string_view v, size_t max_bytes) {
  if (v.size() > max_bytes) {
    return Error::validation(std::string(field), str_cat("must be at most ", max_bytes, " bytes"));
  }
  return ok_status();
}

// ---- success codes ---------------------------------------------------------

Result<std::pair<int, int>> parse_code_range(const Json& v) {
  constexpr std::string_view kRule =
      "must be a status code (200) or an ascending range string (\"200-299\") between 100 and "
      "599";
  if (v.is_number_integer()) {
    int64_t c = v.get<int64_t>();
    if (c < 100 || c > 599) return Error::validation("", std::string(kRule));
    return std::make_pair(static_cast<int>(c), static_cast<int>(c));
  }
  if (!v.is_string()) return Error::validation("", std::string(kRule));
  const std::string& s = v.get_ref<const std::string&>();
  size_t dash = s.find('-');
  std::string_view first = std::string_view(s).substr(0, dash);
  std::string_view second =
      dash == std::string::npos ? std::string_view() : std::string_view(s).substr(dash + 1);
  auto code = [](std::string_view t, int* out) {
    return t.size() == 3 && absl::ascii_isdigit(static_cast<unsigned char>(t[0])) &&
           absl::ascii_isdigit(static_cast<unsigned char>(t[1])) &&
           absl::ascii_isdigit(static_cast<unsigned char>(t[2])) && parse_int(t, out);
  };
  int lo = 0;
  int hi = 0;
  if (!code(first, &lo)) return Error::validation("", std::string(kRule));
  hi = lo;
  if (s.find('-') != std::string::npos && !code(second, &hi)) {
    return Error::validation("", std::string(kRule));
  }
  // Three digits are not enough: "020" would be stored as 20, and "200-099"
  // as (200, 99); both are written back as something that no longer parses
  // (found by batch_fuzz). Each bound is a code and the range ascends.
  if (lo < 100 || lo > 599 || hi < 100 || hi > 599 || lo > hi) {
    return Error::validation("", std::string(kRule));
  }
  return std::make_pair(lo, hi);
}

std::string format_code_range(const std::pair<int, int>& r) {
  return r.first == r.second ? str_cat(r.first) : str_cat(r.first, "-", r.second);
}

// ---- auth ------------------------------------------------------------------

Result<WebhookAuth> auth_from_json(const Json& j) {
  CHRONOS_RETURN_IF_ERROR(
      check_object(j, {"type", "username", "password", "token", "key", "header"}));
  WebhookAuth a;
  CHRONOS_ASSIGN_OR_RETURN(auto type, get_string(j, "type"));
  if (!type) return Error::validation("type", "is required (basic, bearer or api_key)");
  a.type = *type;
  static constexpr std::array<std::string_view, 3> kBasic = {"type", "username", "password"};
  static constexpr std::array<std::string_view, 2> kBearer = {"type", "token"};
  static constexpr std::array<std::string_view, 3> kApiKey = {"type", "key", "header"};
  std::span<const std::string_view> allowed;
  if (a.type == "basic") {
    allowed = kBasic;
  } else if (a.type == "bearer") {
    allowed = kBearer;
  } else if (a.type == "api_key") {
    allowed = kApiKey;
  } else {
    return Error::validation("type", "must be one of basic, bearer, api_key");
  }
  for (const auto& [k, v] : j.items()) {
    bool ok = false;
    for (std::string_view f : allowed) ok = ok || f == k;
    if (!ok) {
      return Error::validation(k,
                               str_cat("unknown field \"", k, "\" for auth type \"", a.type, "\""));
    }
  }
  CHRONOS_ASSIGN_OR_RETURN(auto username, get_string(j, "username"));
  CHRONOS_ASSIGN_OR_RETURN(auto password, get_string(j, "password"));
  CHRONOS_ASSIGN_OR_RETURN(auto token, get_string(j, "token"));
  CHRONOS_ASSIGN_OR_RETURN(auto key, get_string(j, "key"));
  CHRONOS_ASSIGN_OR_RETURN(auto header, get_string(j, "header"));
  a.username = username.value_or("");
  a.password = password.value_or("");
  a.token = token.value_or("");
  a.key = key.value_or("");
  a.header = header.value_or(a.type == "api_key" ? "X-API-Key" : "");
  return a;
}

Status validate_auth(const WebhookAuth& a) {
  auto unused = [&](std::string_view field, const std::string& v) -> Status {
    if (!v.empty()) {
      return Error::validation(std::string(field),
                               str_cat("is not used by auth type \"", a.type, "\""));
    }
    return ok_status();
  };
  auto secret = [](std::string_view field, const std::string& v) -> Status {
    if (v.empty()) return required(field);
    if (has_newline(v))
      return Error::validation(std::string(field), "must not contain CR, LF or NUL");
    return check_length(field, v, kMaxSecretBytes);
  };
  if (a.type == "basic") {
    if (a.username.empty()) return required("username");
    if (a.username.find(':') != std::string::npos || has_newline(a.username)) {
      return Error::validation("username", "must not contain ':', CR, LF or NUL");
    }
    CHRONOS_RETURN_IF_ERROR(check_length("username", a.username, kMaxShortStringBytes));
    if (has_newline(a.password)) {
      return Error::validation("password", "must not contain CR, LF or NUL");
    }
    CHRONOS_RETURN_IF_ERROR(check_length("password", a.password, kMaxSecretBytes));
    CHRONOS_RETURN_IF_ERROR(unused("token", a.token));
    CHRONOS_RETURN_IF_ERROR(unused("key", a.key));
    return unused("header", a.header);
  }
  if (a.type == "bearer") {
    CHRONOS_RETURN_IF_ERROR(secret("token", a.token));
    CHRONOS_RETURN_IF_ERROR(unused("username", a.username));
    CHRONOS_RETURN_IF_ERROR(unused("password", a.password));
    CHRONOS_RETURN_IF_ERROR(unused("key", a.key));
    return unused("header", a.header);
  }
  if (a.type == "api_key") {
    CHRONOS_RETURN_IF_ERROR(secret("key", a.key));
    if (a.header.empty() || a.header.size() > 256 || !is_http_token(a.header)) {
      return Error::validation("header", "must be an HTTP header name (token characters)");
    }
    CHRONOS_RETURN_IF_ERROR(unused("username", a.username));
    CHRONOS_RETURN_IF_ERROR(unused("password", a.password));
    return unused("token", a.token);
  }
  return Error::validation("type", "must be one of basic, bearer, api_key");
}

Json auth_to_json(const WebhookAuth& a, bool redact) {
  auto secret = [&](const std::string& v) { return redact ? std::string(kRedacted) : v; };
  Json j = Json::object();
  j["type"] = a.type;
  if (a.type == "basic") {
    j["username"] = a.username;
    j["password"] = secret(a.password);
  } else if (a.type == "bearer") {
    j["token"] = secret(a.token);
  } else {
    j["header"] = a.header;
    j["key"] = secret(a.key);
  }
  return j;
}

// ---- dispatch field helpers (errors relative to the dispatch object) -------

Status check_optional_string(const Json& c, std::string_view key, size_t max_bytes) {
  CHRONOS_ASSIGN_OR_RETURN(auto v, get_string(c, key));
  if (v) return check_length(key, *v, max_bytes);
  return ok_status();
}

Result<std::string> required_string(const Json& c, std::string_view key, size_t max_bytes) {
  CHRONOS_ASSIGN_OR_RETURN(auto v, get_string(c, key));
  if (!v || v->empty()) return required(key);
  CHRONOS_RETURN_IF_ERROR(check_length(key, *v, max_bytes));
  return *v;
}

// payload: a string (sent as is) or a JSON object/array (sent serialized).
Status check_payload(const Json& c) {
  const Json* p = find(c, "payload");
  if (p == nullptr) return ok_status();
  if (!p->is_string() && !p->is_object() && !p->is_array()) {
    return Error::validation("payload", "must be a string, an object or an array");
  }
  if (!depth_within(*p, kMaxPayloadDepth)) {
    return Error::validation("payload", str_cat("must nest at most ", kMaxPayloadDepth, " levels"));
  }
  size_t bytes = p->is_string() ? p->get_ref<const std::string&>().size()
                                : p->dump(-1, ' ', false, Json::error_handler_t::replace).size();
  if (bytes > kMaxPayloadBytes) {
    return Error::validation("payload", str_cat("must be at most ", kMaxPayloadBytes, " bytes"));
  }
  return ok_status();
}

Status check_metadata(const Json& c, std::string_view key, const StringMapRules& rules) {
  auto m = get_string_map(c, key, rules);
  if (!m.ok()) return std::move(m).error();
  return ok_status();
}

// tls: true/false, or {insecure_skip_verify, server_name, ca_pem, cert_pem, key_pem}.
Status check_tls(const Json& c) {
  const Json* t = find(c, "tls");
  if (t == nullptr || t->is_boolean()) return ok_status();
  if (!t->is_object()) return Error::validation("tls", "must be a boolean or an object");
  CHRONOS_RETURN_IF_ERROR(nest(
      check_object(*t, {"insecure_skip_verify", "server_name", "ca_pem", "cert_pem", "key_pem"}),
      "tls"));
  CHRONOS_RETURN_IF_ERROR(nest(get_bool(*t, "insecure_skip_verify"), "tls"));
  CHRONOS_RETURN_IF_ERROR(
      nest(check_optional_string(*t, "server_name", kMaxShortStringBytes), "tls"));
  for (std::string_view k : {"ca_pem", "cert_pem", "key_pem"}) {
    CHRONOS_RETURN_IF_ERROR(nest(check_optional_string(*t, k, kMaxPayloadBytes), "tls"));
  }
  if ((find(*t, "cert_pem") == nullptr) != (find(*t, "key_pem") == nullptr)) {
    return Error::validation("tls.key_pem", "cert_pem and key_pem must be given together");
  }
  return ok_status();
}

// ---- per-type dispatch rules; each normalises `c` in place -----------------

Status check_grpc(Json& c) {
  CHRONOS_RETURN_IF_ERROR(check_object(c, {"target", "method", "payload", "metadata", "tls"}));
  CHRONOS_ASSIGN_OR_RETURN(auto target, required_string(c, "target", 1024));
  if (has_ctl_or_space(target)) return Error::validation("target", "must not contain spaces");
  CHRONOS_ASSIGN_OR_RETURN(auto method, required_string(c, "method", 1024));
  // /pkg.Service/Method (package optional).
  bool ok = method.size() > 3 && method[0] == '/';
  size_t slash = method.find('/', 1);
  ok = ok && slash != std::string::npos && slash > 1 && slash + 1 < method.size() &&
       method.find('/', slash + 1) == std::string::npos;
  for (size_t i = 1; ok && i < method.size(); ++i) {
    char ch = method[i];
    ok = absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '/' ||
         (ch == '.' && i < slash);
  }
  if (!ok) return Error::validation("method", "must look like /pkg.Service/Method");
  CHRONOS_RETURN_IF_ERROR(check_payload(c));
  if (const Json* p = find(c, "payload"); p != nullptr && p->is_string()) {
    std::string bytes;
    if (!absl::Base64Unescape(p->get_ref<const std::string&>(), &bytes)) {
      return Error::validation("payload",
                               "must be a JSON object (mapped by reflection) or base64 bytes");
    }
  }
  CHRONOS_RETURN_IF_ERROR(check_metadata(c, "metadata", metadata_rules()));
  return check_tls(c);
}

Status check_sasl(const Json& c) {
  const Json* s = find(c, "sasl");
  if (s == nullptr) return ok_status();
  CHRONOS_RETURN_IF_ERROR(nest(check_object(*s, {"mechanism", "username", "password"}), "sasl"));
  CHRONOS_ASSIGN_OR_RETURN(auto mech, nest(required_string(*s, "mechanism", 64), "sasl"));
  if (mech != "PLAIN" && mech != "SCRAM-SHA-256" && mech != "SCRAM-SHA-512") {
    return Error::validation("sasl.mechanism",
                             "must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512");
  }
  CHRONOS_RETURN_IF_ERROR(nest(required_string(*s, "username", kMaxShortStringBytes), "sasl"));
  CHRONOS_RETURN_IF_ERROR(nest(required_string(*s, "password", kMaxSecretBytes), "sasl"));
  return ok_status();
}

Status check_kafka(Json& c) {
  CHRONOS_RETURN_IF_ERROR(check_object(
      c, {"brokers", "topic", "key", "payload", "headers", "acks", "compression", "tls", "sasl"}));
  // brokers: ["h:9092", ...] or "h1:9092,h2:9092"; stored as an array.
  const Json* b = find(c, "brokers");
  if (b == nullptr) return required("brokers");
  std::vector<std::string> brokers;
  if (b->is_string()) {
    for (std::string_view part : split(b->get_ref<const std::string&>(), ',')) {
      brokers.emplace_back(trim_ascii(part));
    }
  } else if (b->is_array()) {
    for (size_t i = 0; i < b->size(); ++i) {
      if (!(*b)[i].is_string()) {
        return Error::validation(str_cat("brokers[", i, "]"), "must be a string");
      }
      brokers.push_back((*b)[i].get<std::string>());
    }
  } else {
    return Error::validation("brokers",
                             "must be an array of host:port strings or a comma-separated string");
  }
  if (brokers.empty() || brokers.size() > kMaxBrokers) {
    return Error::validation("brokers", str_cat("must list 1 to ", kMaxBrokers, " brokers"));
  }
  for (size_t i = 0; i < brokers.size(); ++i) {
    auto hp = parse_host_port(brokers[i], /*port_required=*/true);
    if (!hp.ok()) {
      return Error::validation(str_cat("brokers[", i, "]"),
                               str_cat("must be host:port: ", hp.error().message));
    }
  }
  c["brokers"] = brokers;
  CHRONOS_ASSIGN_OR_RETURN(auto topic, required_string(c, "topic", 249));
  for (char ch : topic) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' &&
        ch != '-') {
      return Error::validation("topic", "must be 1-249 of [a-zA-Z0-9._-]");
    }
  }
  if (topic == "." || topic == "..") return Error::validation("topic", "must not be '.' or '..'");
  CHRONOS_RETURN_IF_ERROR(check_optional_string(c, "key", 16 * 1024));
  CHRONOS_RETURN_IF_ERROR(check_payload(c));
  CHRONOS_RETURN_IF_ERROR(check_metadata(c, "headers", metadata_rules()));
  if (const Json* a = find(c, "acks"); a != nullptr) {
    if (a->is_string() && a->get_ref<const std::string&>() == "all") {
      c["acks"] = -1;
    } else if (!a->is_number_integer() || a->get<int64_t>() < -1 || a->get<int64_t>() > 1) {
      return Error::validation("acks", "must be 0, 1, -1 or \"all\"");
    }
  }
  CHRONOS_ASSIGN_OR_RETURN(auto compression, get_string(c, "compression"));
  if (compression && *compression != "none" && *compression != "gzip" && *compression != "snappy" &&
      *compression != "lz4" && *compression != "zstd") {
    return Error::validation("compression", "must be one of none, gzip, snappy, lz4, zstd");
  }
  CHRONOS_RETURN_IF_ERROR(check_tls(c));
  return check_sasl(c);
}

Status check_url_list(const Json& c, std::string_view key,
                      std::initializer_list<std::string_view> schemes, bool allow_list) {
  CHRONOS_ASSIGN_OR_RETURN(auto url, required_string(c, key, kMaxUrlBytes));
  std::vector<std::string_view> urls;
  if (allow_list) {
    urls = split(url, ',');
  } else {
    urls.push_back(url);
  }
  for (std::string_view u : urls) {
    auto parsed = parse_url(u, schemes);
    if (!parsed.ok()) return std::move(parsed).error().nested_in(key);
  }
  return ok_status();
}

Status check_nats(Json& c) {
  CHRONOS_RETURN_IF_ERROR(check_object(c, {"url", "subject", "payload", "headers", "auth",
                                           "jetstream", "request_reply", "reply_timeout"}));
  CHRONOS_RETURN_IF_ERROR(check_url_list(c, "url", {"nats", "tls"}, /*allow_list=*/true));
  CHRONOS_ASSIGN_OR_RETURN(auto subject, required_string(c, "subject", 256));
  for (std::string_view token : split(subject, '.')) {
    if (token.empty() || has_ctl_or_space(token) || token == "*" || token == ">") {
      return Error::validation(
          "subject", "must be dot-separated non-empty tokens without spaces or wildcards");
    }
  }
  CHRONOS_RETURN_IF_ERROR(check_payload(c));
  CHRONOS_RETURN_IF_ERROR(check_metadata(c, "headers", http_header_rules()));
  if (const Json* a = find(c, "auth"); a != nullptr) {
    CHRONOS_RETURN_IF_ERROR(nest(check_object(*a, {"token", "user", "password"}), "auth"));
    bool token = find(*a, "token") != nullptr;
    bool user = find(*a, "user") != nullptr || find(*a, "password") != nullptr;
    if (token == user) {
      return Error::validation("auth", "must have either token or user and password");
    }
    if (token) {
      CHRONOS_RETURN_IF_ERROR(nest(required_string(*a, "token", kMaxSecretBytes), "auth"));
    } else {
      CHRONOS_RETURN_IF_ERROR(nest(required_string(*a, "user", kMaxShortStringBytes), "auth"));
      CHRONOS_RETURN_IF_ERROR(nest(required_string(*a, "password", kMaxSecretBytes), "auth"));
    }
  }
  const Json* js = find(c, "jetstream");
  if (js != nullptr) {
    if (js->is_object() && js->contains("msg_id")) {
      return Error::validation("jetstream.msg_id", "is set by the server (the execution id)");
    }
    CHRONOS_RETURN_IF_ERROR(nest(check_object(*js, {"stream"}), "jetstream"));
    CHRONOS_RETURN_IF_ERROR(nest(check_optional_string(*js, "stream", 256), "jetstream"));
  }
  CHRONOS_ASSIGN_OR_RETURN(auto request_reply, get_bool(c, "request_reply"));
  CHRONOS_ASSIGN_OR_RETURN(auto reply_timeout, get_duration(c, "reply_timeout"));
  if (request_reply.value_or(false) && js != nullptr) {
    return Error::validation("request_reply", "cannot be combined with jetstream");
  }
  if (reply_timeout) {
    if (!request_reply.value_or(false)) {
      return Error::validation("reply_timeout", "requires request_reply: true");
    }
    CHRONOS_RETURN_IF_ERROR(
        nest(check_duration_range(*reply_timeout, absl::Milliseconds(1), kMaxReplyTimeout),
             "reply_timeout"));
  }
  return ok_status();
}

Status check_rabbitmq(Json& c) {
  if (c.is_object() && c.contains("message_id")) {
    return Error::validation("message_id", "is set by the server (the execution id)");
  }
  CHRONOS_RETURN_IF_ERROR(check_object(c, {"url", "exchange", "routing_key", "payload", "headers",
                                           "content_type", "delivery_mode"}));
  CHRONOS_RETURN_IF_ERROR(check_url_list(c, "url", {"amqp", "amqps"}, /*allow_list=*/false));
  CHRONOS_RETURN_IF_ERROR(check_optional_string(c, "exchange", kMaxShortStringBytes));
  CHRONOS_RETURN_IF_ERROR(check_optional_string(c, "routing_key", kMaxShortStringBytes));
  CHRONOS_RETURN_IF_ERROR(check_optional_string(c, "content_type", kMaxShortStringBytes));
  CHRONOS_RETURN_IF_ERROR(check_payload(c));
  CHRONOS_RETURN_IF_ERROR(check_metadata(c, "headers", metadata_rules()));
  CHRONOS_ASSIGN_OR_RETURN(auto mode, get_int(c, "delivery_mode"));
  if (mode && *mode != 1 && *mode != 2) {
    return Error::validation("delivery_mode", "must be 1 (transient) or 2 (persistent)");
  }
  c["delivery_mode"] = mode.value_or(2);
  return ok_status();
}

Status check_dispatch_config(std::string_view type, Json& config) {
  // Nulls mean "not given"; drop them so the stored form has no nulls.
  if (config.is_object()) {
    for (auto it = config.begin(); it != config.end();) {
      it = it->is_null() ? config.erase(it) : std::next(it);
    }
  }
  if (type == "grpc") return check_grpc(config);
  if (type == "kafka") return check_kafka(config);
  if (type == "nats") return check_nats(config);
  if (type == "rabbitmq") return check_rabbitmq(config);
  return Error::validation("type", "must be one of grpc, kafka, nats, rabbitmq");
}

std::string redact_url(const std::string& url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url;
  size_t auth_start = scheme_end + 3;
  size_t auth_end = url.find_first_of("/?#", auth_start);
  if (auth_end == std::string::npos) auth_end = url.size();
  size_t at = url.rfind('@', auth_end - 1);
  if (at == std::string::npos || at < auth_start) return url;
  size_t colon = url.find(':', auth_start);
  if (colon == std::string::npos || colon > at) return url;
  return str_cat(url.substr(0, colon + 1), kRedacted, url.substr(at));
}

void redact_headers(Json& c, std::string_view key) {
  auto it = c.find(key);
  if (it == c.end() || !it->is_object()) return;
  for (auto& [k, v] : it->items()) {
    if (is_secret_header(k)) v = kRedacted;
  }
}

}  // namespace

bool is_http_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

Result<UrlParts> parse_url(std::string_view url, std::initializer_list<std::string_view> schemes) {
  std::string rule = str_cat("must be a URL starting with ", scheme_list(schemes));
  if (url.empty()) return Error::validation("", "is required");
  if (url.size() > kMaxUrlBytes) {
    return Error::validation("", str_cat("must be at most ", kMaxUrlBytes, " bytes"));
  }
  if (has_ctl_or_space(url)) {
    return Error::validation("", "must not contain spaces or control characters");
  }
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return Error::validation("", rule);
  UrlParts out;
  out.scheme = ascii_lower(url.substr(0, sep));
  bool known = false;
  for (std::string_view s : schemes) known = known || s == out.scheme;
  if (!known) return Error::validation("", rule);
  std::string_view rest = url.substr(sep + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    out.userinfo = std::string(authority.substr(0, at));
    authority = authority.substr(at + 1);
  }
  auto hp = parse_host_port(authority, /*port_required=*/false);
  if (!hp.ok()) {
    return Error::validation("", str_cat(rule, ": ", hp.error().message));
  }
  out.host = hp->first;
  out.port = hp->second;
  return out;
}

Result<Webhook> webhook_from_json(const Json& j) {
  CHRONOS_RETURN_IF_ERROR(check_object(
      j, {"url", "method", "headers", "body", "auth", "success_codes", "tls_skip_verify"}));
  Webhook w;
  CHRONOS_ASSIGN_OR_RETURN(auto url, get_string(j, "url"));
  w.url = url.value_or("");
  CHRONOS_ASSIGN_OR_RETURN(auto method, get_string(j, "method"));
  if (method) w.method = ascii_upper(*method);
  if (const Json* h = find(j, "headers"); h != nullptr) {
    if (!h->is_object()) return Error::validation("headers", "must be an object of strings");
    for (const auto& [k, v] : h->items()) {
      if (!v.is_string()) return Error::validation(str_cat("headers.", k), "must be a string");
      w.headers.emplace(k, v.get<std::string>());
    }
  }
  CHRONOS_ASSIGN_OR_RETURN(auto body, get_string(j, "body"));
  w.body = body.value_or("");
  if (const Json* a = find(j, "auth"); a != nullptr) {
    CHRONOS_ASSIGN_OR_RETURN(w.auth, nest(auth_from_json(*a), "auth"));
  }
  if (const Json* codes = find(j, "success_codes"); codes != nullptr) {
    if (!codes->is_array()) {
      return Error::validation("success_codes", "must be an array of codes or \"200-299\" ranges");
    }
    w.success_codes.clear();
    for (size_t i = 0; i < codes->size(); ++i) {
      CHRONOS_ASSIGN_OR_RETURN(
          auto range, nest(parse_code_range((*codes)[i]), str_cat("success_codes[", i, "]")));
      w.success_codes.push_back(range);
    }
  }
  CHRONOS_ASSIGN_OR_RETURN(auto skip, get_bool(j, "tls_skip_verify"));
  w.tls_skip_verify = skip.value_or(false);
  return w;
}

Status validate_webhook(const Webhook& w) {
  if (w.url.empty()) return required("url");
  CHRONOS_RETURN_IF_ERROR(nest(parse_url(w.url, {"http", "https"}), "url"));
  bool known = false;
  for (std::string_view m : kMethods) known = known || m == w.method;
  if (!known) {
    std::string list;
    for (std::string_view m : kMethods) list += str_cat(list.empty() ? "" : ", ", m);
    return Error::validation("method", str_cat("must be one of ", list));
  }
  CHRONOS_RETURN_IF_ERROR(nest(check_string_map(w.headers, http_header_rules()), "headers"));
  for (const auto& [k, v] : w.headers) {
    if (is_reserved_header(k)) {
      return Error::validation(str_cat("headers.", k),
                               "is set by Chronos and cannot be overridden");
    }
  }
  CHRONOS_RETURN_IF_ERROR(check_length("body", w.body, kMaxWebhookBodyBytes));
  if (w.auth) CHRONOS_RETURN_IF_ERROR(nest(validate_auth(*w.auth), "auth"));
  if (w.success_codes.empty() || w.success_codes.size() > kMaxSuccessCodes) {
    return Error::validation("success_codes",
                             str_cat("must list 1 to ", kMaxSuccessCodes, " codes or ranges"));
  }
  for (size_t i = 0; i < w.success_codes.size(); ++i) {
    auto [lo, hi] = w.success_codes[i];
    if (lo < 100 || hi > 599 || lo > hi) {
      return Error::validation(str_cat("success_codes[", i, "]"),
                               "must be a code or an ascending range between 100 and 599");
    }
  }
  return ok_status();
}

Json webhook_to_json(const Webhook& w, bool redact) {
  Json j = Json::object();
  j["url"] = redact ? redact_url(w.url) : w.url;
  j["method"] = w.method;
  Json headers = Json::object();
  for (const auto& [k, v] : w.headers) {
    headers[k] = redact && is_secret_header(k) ? std::string(kRedacted) : v;
  }
  j["headers"] = std::move(headers);
  j["body"] = w.body;
  if (w.auth) j["auth"] = auth_to_json(*w.auth, redact);
  Json codes = Json::array();
  for (const auto& r : w.success_codes) codes.push_back(format_code_range(r));
  j["success_codes"] = std::move(codes);
  j["tls_skip_verify"] = w.tls_skip_verify;
  return j;
}

Result<Dispatch> dispatch_from_internal(const Json& j) {
  if (!j.is_object()) return Error::validation("", "must be an object");
  CHRONOS_ASSIGN_OR_RETURN(auto type, get_string(j, "type"));
  if (!type) return Error::validation("type", "is required (grpc, kafka, nats or rabbitmq)");
  Dispatch d;
  d.type = *type;
  d.config = j;
  d.config.erase("type");
  return d;
}

Result<Dispatch> dispatch_from_request(const Json& j) {
  CHRONOS_ASSIGN_OR_RETURN(Dispatch d, dispatch_from_internal(j));
  CHRONOS_RETURN_IF_ERROR(check_dispatch_config(d.type, d.config));
  return d;
}

Status validate_dispatch(const Dispatch& d) {
  Json copy = d.config;
  return check_dispatch_config(d.type, copy);
}

Json dispatch_to_json(const Dispatch& d, bool redact) {
  Json j = d.config.is_object() ? d.config : Json::object();
  if (redact) {
    if (auto it = j.find("url"); it != j.end() && it->is_string()) {
      *it = redact_url(it->get<std::string>());
    }
    for (std::string_view obj : {"sasl", "auth", "tls"}) {
      auto it = j.find(obj);
      if (it == j.end() || !it->is_object()) continue;
      for (std::string_view secret : {"password", "token", "key_pem"}) {
        if (it->contains(secret)) (*it)[std::string(secret)] = kRedacted;
      }
    }
    redact_headers(j, "headers");
    redact_headers(j, "metadata");
  }
  j["type"] = d.type;
  return j;
}

}  // namespace chronos::model::internal
