#include "dispatch/request.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace chronos::dispatch {
namespace {

HttpRequestSpec spec() {
  HttpRequestSpec s;
  s.webhook.url = "https://hooks.example.com/run?x=1";
  s.job_id = "3f1c2a4e-0000-4000-8000-000000000001";
  s.job_name = "nightly-report";
  s.execution_id = "0190a000-0000-7000-8000-000000000002";
  s.scheduled_time = absl::FromCivil(absl::CivilSecond(2024, 3, 10, 7, 30, 0), absl::UTCTimeZone());
  s.attempt = 3;
  return s;
}

std::vector<std::string> values(const HeaderList& h, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : h) {
    if (k == name) out.push_back(v);
  }
  return out;
}

TEST(ExpandPlaceholders, ReplacesEveryPlaceholder) {
  EXPECT_EQ(
      expand_placeholders(R"({"job":"{{.JobID}}","name":"{{.JobName}}","exec":"{{.ExecutionID}}",)"
                          R"("at":"{{.ScheduledTime}}","try":{{.Attempt}}})",
                          spec()),
      R"({"job":"3f1c2a4e-0000-4000-8000-000000000001","name":"nightly-report",)"
      R"("exec":"0190a000-0000-7000-8000-000000000002","at":"2024-03-10T07:30:00Z","try":3})");
}

TEST(ExpandPlaceholders, ReplacesRepeatedPlaceholders) {
  EXPECT_EQ(expand_placeholders("{{.Attempt}}/{{.Attempt}}", spec()), "3/3");
}

TEST(ExpandPlaceholders, LeavesUnknownAndPartialPlaceholdersAlone) {
  EXPECT_EQ(expand_placeholders("{{.Nope}} {{.JobID} {{ .JobID }} {{.", spec()),
            "{{.Nope}} {{.JobID} {{ .JobID }} {{.");
}

TEST(ExpandPlaceholders, DoesNotExpandSubstitutedValues) {
  auto s = spec();
  s.job_name = "{{.Attempt}}";
  EXPECT_EQ(expand_placeholders("{{.JobName}}", s), "{{.Attempt}}");
}

TEST(RequestHeaders, CarriesTheSpecHeaders) {
  auto h = request_headers(spec(), "1.2.3");
  EXPECT_EQ(values(h, "User-Agent"), std::vector<std::string>{"chronos/1.2.3"});
  EXPECT_EQ(values(h, "X-Chronos-Job-ID"),
            std::vector<std::string>{"3f1c2a4e-0000-4000-8000-000000000001"});
  EXPECT_EQ(values(h, "X-Chronos-Execution-ID"),
            std::vector<std::string>{"0190a000-0000-7000-8000-000000000002"});
  EXPECT_EQ(values(h, "X-Chronos-Scheduled-Time"),
            std::vector<std::string>{"2024-03-10T07:30:00Z"});
  EXPECT_EQ(values(h, "X-Chronos-Attempt"), std::vector<std::string>{"3"});
  EXPECT_EQ(values(h, "Idempotency-Key"),
            std::vector<std::string>{"0190a000-0000-7000-8000-000000000002"});
}

TEST(RequestHeaders, DefaultsContentTypeToJsonOnlyWithABody) {
  auto s = spec();
  EXPECT_TRUE(values(request_headers(s, "1"), "Content-Type").empty());
  s.webhook.body = "{}";
  EXPECT_EQ(values(request_headers(s, "1"), "Content-Type"),
            std::vector<std::string>{"application/json"});
  s.webhook.headers["content-type"] = "text/plain";
  auto h = request_headers(s, "1");
  EXPECT_TRUE(values(h, "Content-Type").empty());
  EXPECT_EQ(values(h, "content-type"), std::vector<std::string>{"text/plain"});
}

TEST(RequestHeaders, JobHeadersPassThroughButNotOwnedOnes) {
  auto s = spec();
  s.webhook.headers = {{"X-Team", "core"},
                       {"User-Agent", "custom/9"},
                       {"X-Chronos-Attempt", "99"},
                       {"idempotency-key", "mine"},
                       {"Connection", "keep-alive"}};
  auto h = request_headers(s, "1");
  EXPECT_EQ(values(h, "X-Team"), std::vector<std::string>{"core"});
  EXPECT_EQ(values(h, "User-Agent"), std::vector<std::string>{"custom/9"});
  EXPECT_EQ(values(h, "X-Chronos-Attempt"), std::vector<std::string>{"3"});
  EXPECT_TRUE(values(h, "idempotency-key").empty());
  EXPECT_TRUE(values(h, "Connection").empty());
}

TEST(RequestHeaders, BearerAuthSetsAuthorizationOverAJobHeader) {
  auto s = spec();
  s.webhook.headers["authorization"] = "Basic old";
  s.webhook.auth = model::WebhookAuth{.type = "bearer", .token = "tok-123"};
  auto h = request_headers(s, "1");
  EXPECT_EQ(values(h, "Authorization"), std::vector<std::string>{"Bearer tok-123"});
  EXPECT_TRUE(values(h, "authorization").empty());
}

TEST(RequestHeaders, ApiKeyUsesItsHeaderNameOrXApiKey) {
  auto s = spec();
  s.webhook.auth = model::WebhookAuth{.type = "api_key", .key = "k1"};
  EXPECT_EQ(values(request_headers(s, "1"), "X-API-Key"), std::vector<std::string>{"k1"});
  s.webhook.auth->header = "X-Secret-Key";
  EXPECT_EQ(values(request_headers(s, "1"), "X-Secret-Key"), std::vector<std::string>{"k1"});
}

TEST(RequestHeaders, BasicAuthIsLeftToLibcurl) {
  auto s = spec();
  s.webhook.headers["Authorization"] = "Bearer stale";
  s.webhook.auth = model::WebhookAuth{.type = "basic", .username = "u", .password = "p"};
  auto h = request_headers(s, "1");
  EXPECT_TRUE(values(h, "Authorization").empty());
}

TEST(RequestHeaders, DropsHeadersWithLineBreaks) {
  auto s = spec();
  s.webhook.headers["X-Evil"] = "a\r\nX-Injected: 1";
  EXPECT_TRUE(values(request_headers(s, "1"), "X-Evil").empty());
}

TEST(SuccessCodes, MatchInclusiveRanges) {
  std::vector<std::pair<int, int>> codes = {{200, 299}, {304, 304}};
  EXPECT_TRUE(is_success_code(codes, 200));
  EXPECT_TRUE(is_success_code(codes, 299));
  EXPECT_TRUE(is_success_code(codes, 304));
  EXPECT_FALSE(is_success_code(codes, 300));
  EXPECT_FALSE(is_success_code(codes, 503));
}

TEST(EndpointKey, FillsDefaultPortsAndLowercases) {
  EXPECT_EQ(endpoint_key("HTTPS://Hooks.Example.com/a/b?c=d").value(),
            "https://hooks.example.com:443");
  EXPECT_EQ(endpoint_key("http://example.com").value(), "http://example.com:80");
  EXPECT_EQ(endpoint_key("http://127.0.0.1:8080/x").value(), "http://127.0.0.1:8080");
}

TEST(EndpointKey, DropsUserinfoAndKeepsIpv6Brackets) {
  EXPECT_EQ(endpoint_key("http://user:pw@host:81/p").value(), "http://host:81");
  EXPECT_EQ(endpoint_key("http://[::1]:9000/p").value(), "http://[::1]:9000");
  EXPECT_EQ(endpoint_key("https://[::1]").value(), "https://[::1]:443");
}

TEST(EndpointKey, RejectsOtherSchemesAndBadPorts) {
  EXPECT_FALSE(endpoint_key("ftp://host/").ok());
  EXPECT_FALSE(endpoint_key("host:80").ok());
  EXPECT_FALSE(endpoint_key("http://host:0/").ok());
  EXPECT_FALSE(endpoint_key("http://host:99999/").ok());
  EXPECT_FALSE(endpoint_key("http:///path").ok());
}

}  // namespace
}  // namespace chronos::dispatch
