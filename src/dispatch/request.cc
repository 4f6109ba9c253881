#include "dispatch/request.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "base/strings.h"
#include "model/job_codec.h"

namespace chronos::dispatch {

namespace {

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool has_line_break(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool is_owned_header(std::string_view name) {
  const std::string n = ascii_lower(name);
  return n.starts_with("x-chronos-") || n == "idempotency-key" || n == "content-length" ||
         n == "transfer-encoding" || n == "connection";
}

std::string rfc3339(absl::Time t) {
  return model::in_rfc3339_range(t) ? model::format_time(t) : std::string();
}

}  // namespace

std::string expand_placeholders(std::string_view body, const HttpRequestSpec& spec) {
  struct Placeholder {
    std::string_view token;
    std::string value;
  };
  const Placeholder kPlaceholders[] = {
      {"{{.JobID}}", spec.job_id},
      {"{{.JobName}}", spec.job_name},
      {"{{.ExecutionID}}", spec.execution_id},
      {"{{.ScheduledTime}}", rfc3339(spec.scheduled_time)},
      {"{{.Attempt}}", str_cat(spec.attempt)},
  };
  std::string out;
  out.reserve(body.size());
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t open = body.find("{{.", pos);
    if (open == std::string_view::npos) break;
    out.append(body.substr(pos, open - pos));
    const Placeholder* hit = nullptr;
    for (const Placeholder& p : kPlaceholders) {
      if (body.substr(open).starts_with(p.token)) {
        hit = &p;
        break;
      }
    }
    if (hit != nullptr) {
      out.append(hit->value);
      pos = open + hit->token.size();
    } else {
      out.append("{{.");
      pos = open + 3;
    }
  }
  if (pos < body.size()) out.append(body.substr(pos));
  return out;
}

HeaderList request_headers(const HttpRequestSpec& spec, std::string_view version) {
  const model::Webhook& w = spec.webhook;
  // The auth header (basic's is built by libcurl, so only its name is
  // reserved here); a job header of the same name gives way to it.
  std::string auth_name;
  std::optional<std::string> auth_value;
  if (w.auth) {
    if (w.auth->type == "basic") {
      auth_name = "Authorization";
    } else if (w.auth->type == "bearer") {
      auth_name = "Authorization";
      auth_value = str_cat("Bearer ", w.auth->token);
    } else if (w.auth->type == "api_key") {
      auth_name = w.auth->header.empty() ? "X-API-Key" : w.auth->header;
      auth_value = w.auth->key;
    }
  }
  HeaderList out;
  bool has_user_agent = false;
  bool has_content_type = false;
  for (const auto& [name, value] : w.headers) {
    if (name.empty() || is_owned_header(name)) continue;
    if (!auth_name.empty() && iequals(name, auth_name)) continue;
    has_user_agent = has_user_agent || iequals(name, "User-Agent");
    has_content_type = has_content_type || iequals(name, "Content-Type");
    out.emplace_back(name, value);
  }
  if (auth_value) out.emplace_back(auth_name, *auth_value);
  if (!has_user_agent) out.emplace_back("User-Agent", str_cat("chronos/", version));
  out.emplace_back("X-Chronos-Job-ID", spec.job_id);
  out.emplace_back("X-Chronos-Execution-ID", spec.execution_id);
  out.emplace_back("X-Chronos-Scheduled-Time", rfc3339(spec.scheduled_time));
  out.emplace_back("X-Chronos-Attempt", str_cat(spec.attempt));
  out.emplace_back("Idempotency-Key", spec.execution_id);
  if (!w.body.empty() && !has_content_type) out.emplace_back("Content-Type", "application/json");
  std::erase_if(out,
                [](const auto& h) { return has_line_break(h.first) || has_line_break(h.second); });
  return out;
}

bool is_success_code(const std::vector<std::pair<int, int>>& ranges, int status) {
  return std::any_of(ranges.begin(), ranges.end(),
                     [status](const auto& r) { return status >= r.first && status <= r.second; });
}

Result<std::string> endpoint_key(std::string_view url) {
  // <scheme>://[userinfo@]host[:port][/...]; model/ validated the URL when
  // the job was stored, so this only needs to cut it apart.
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) {
    return Error::validation("url", "must be an absolute http:// or https:// URL");
  }
  const std::string scheme = ascii_lower(url.substr(0, sep));
  int default_port = 0;
  if (scheme == "http") {
    default_port = 80;
  } else if (scheme == "https") {
    default_port = 443;
  } else {
    return Error::validation("url", "must be an absolute http:// or https:// URL");
  }
  std::string_view rest = url.substr(sep + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  std::string_view host = rest;
  std::string_view port_text;
  if (rest.starts_with('[')) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return Error::validation("url", "unterminated IPv6 host");
    host = rest.substr(0, close + 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Error::validation("url", "bad characters after IPv6 host");
      port_text = after.substr(1);
    }
  } else if (size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
  }
  if (host.empty() || host == "[]") return Error::validation("url", "has no host");
  int port = default_port;
  if (!port_text.empty() && (!parse_int(port_text, &port) || port < 1 || port > 65535)) {
    return Error::validation("url", "has a bad port");
  }
  return str_cat(scheme, "://", ascii_lower(host), ":", port);
}

}  // namespace chronos::dispatch
