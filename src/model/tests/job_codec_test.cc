#include "model/job_codec.h"

#include <gtest/gtest.h>

#include "model/limits.h"
#include "model/tests/test_jobs.h"

namespace chronos::model {
namespace {

using nlohmann::json;
using testing::full_job;
using testing::minimal_body;

Job parse_ok(const json& body, const JobDefaults& defaults = {}) {
  auto r = job_from_request(body, defaults);
  EXPECT_TRUE(r.ok()) << r.error().field << ": " << r.error().message;
  return r.ok() ? *r : Job{};
}

TEST(JobFromRequest, AppliesDefaultsToMissingFields) {
  Job job = parse_ok(minimal_body());
  EXPECT_EQ(job.id, "");
  EXPECT_EQ(job.name, "nightly-report");
  EXPECT_EQ(job.namespace_, "default");
  EXPECT_EQ(job.description, "");
  EXPECT_EQ(job.timezone, "UTC");
  EXPECT_TRUE(job.enabled);
  ASSERT_TRUE(job.webhook.has_value());
  EXPECT_EQ(job.webhook->method, "POST");
  EXPECT_TRUE(job.webhook->headers.empty());
  EXPECT_FALSE(job.webhook->auth.has_value());
  EXPECT_EQ(job.webhook->success_codes, (std::vector<std::pair<int, int>>{{200, 299}}));
  EXPECT_FALSE(job.webhook->tls_skip_verify);
  EXPECT_FALSE(job.dispatch.has_value());
  EXPECT_EQ(job.retry_policy, RetryPolicy{});
  EXPECT_EQ(job.retry_policy.max_attempts, 3);
  EXPECT_EQ(job.timeout, absl::Minutes(5));
  EXPECT_EQ(job.concurrency, Concurrency::kBufferOne);
  EXPECT_EQ(job.missed_run_policy, MissedRunPolicy::kExecuteOne);
  EXPECT_EQ(job.catchup_window, absl::Hours(24));
  EXPECT_EQ(job.jitter, absl::ZeroDuration());
  EXPECT_TRUE(job.tags.empty());
  EXPECT_FALSE(job.dependencies.has_value());
  EXPECT_EQ(job.version, 1);
}

TEST(JobFromRequest, MissedRunPolicyDefaultComesFromServerDefaults) {
  Job job = parse_ok(minimal_body(), JobDefaults{MissedRunPolicy::kIgnore});
  EXPECT_EQ(job.missed_run_policy, MissedRunPolicy::kIgnore);
}

TEST(JobFromRequest, NullMeansNotGiven) {
  json body = minimal_body();
  body["timeout"] = nullptr;
  body["dispatch"] = nullptr;
  body["tags"] = nullptr;
  Job job = parse_ok(body);
  EXPECT_EQ(job.timeout, absl::Minutes(5));
  EXPECT_FALSE(job.dispatch.has_value());
}

TEST(JobFromRequest, ParsesEveryField) {
  json body = json::parse(R"({
    "name": "billing.sync", "namespace": "payments", "description": "d",
    "schedule": "*/5 * * * *", "timezone": "Europe/Berlin", "enabled": false,
    "webhook": {"url": "https://x.example.com/a", "method": "put",
                "headers": {"X-Team": "billing"}, "body": "{}",
                "auth": {"type": "api_key", "key": "k1"},
                "success_codes": [200, "202-204"], "tls_skip_verify": true},
    "retry_policy": {"max_attempts": 5, "initial_interval": "250ms", "max_interval": "2m",
                     "multiplier": 1.5, "jitter": 0},
    "timeout": "1m30s", "concurrency": "allow", "missed_run_policy": "execute_all",
    "catchup_window": "6h", "jitter": "30s", "tags": {"team": "billing"},
    "dependencies": {"depends_on": ["export"], "condition": "any_complete"}
  })");
  Job job = parse_ok(body);
  EXPECT_EQ(job.webhook->method, "PUT");
  EXPECT_EQ(job.webhook->auth->header, "X-API-Key");
  EXPECT_EQ(job.webhook->auth->key, "k1");
  EXPECT_EQ(job.webhook->success_codes, (std::vector<std::pair<int, int>>{{200, 200}, {202, 204}}));
  EXPECT_EQ(job.retry_policy.initial_interval, absl::Milliseconds(250));
  EXPECT_EQ(job.retry_policy.jitter, 0.0);
  EXPECT_EQ(job.timeout, absl::Seconds(90));
  EXPECT_EQ(job.concurrency, Concurrency::kAllow);
  EXPECT_EQ(job.missed_run_policy, MissedRunPolicy::kExecuteAll);
  EXPECT_EQ(job.dependencies->condition, "any_complete");
}

TEST(JobFromRequest, AcceptsUuidIdAndReportsIt) {
  json body = minimal_body();
  body["id"] = "0b6f3c1e-7d2a-4f5b-9c8d-1a2b3c4d5e6f";
  EXPECT_EQ(parse_ok(body).id, "0b6f3c1e-7d2a-4f5b-9c8d-1a2b3c4d5e6f");
}

TEST(JobFromRequest, NormalisesKafkaBrokersAndAcks) {
  json body = minimal_body();
  body.erase("webhook");
  body["dispatch"] = {
      {"type", "kafka"}, {"brokers", "k1:9092, k2:9092"}, {"topic", "jobs"}, {"acks", "all"}};
  Job job = parse_ok(body);
  ASSERT_TRUE(job.dispatch.has_value());
  EXPECT_EQ(job.dispatch->type, "kafka");
  EXPECT_EQ(job.dispatch->config["brokers"], json::array({"k1:9092", "k2:9092"}));
  EXPECT_EQ(job.dispatch->config["acks"], -1);
  EXPECT_FALSE(job.dispatch->config.contains("type"));
}

TEST(JobFromRequest, RabbitmqDeliveryModeDefaultsToPersistent) {
  json body = minimal_body();
  body.erase("webhook");
  body["dispatch"] = {
      {"type", "rabbitmq"}, {"url", "amqps://u:p@mq.example.com/vh"}, {"exchange", "jobs"}};
  EXPECT_EQ(parse_ok(body).dispatch->config["delivery_mode"], 2);
}

TEST(JobFromRequest, AcceptsEachDispatchType) {
  for (json d : {json::parse(R"({"type":"grpc","target":"dns:///svc:50051",
                                "method":"/pkg.v1.Jobs/Run","payload":{"a":1},
                                "metadata":{"x-team":"a"},"tls":{"server_name":"svc"}})"),
                 json::parse(R"({"type":"grpc","target":"svc:1","method":"/Svc/Run",
                                "payload":"aGVsbG8=","tls":true})"),
                 json::parse(R"({"type":"kafka","brokers":["[::1]:9092"],"topic":"t",
                                "key":"k","compression":"zstd","acks":1,
                                "sasl":{"mechanism":"SCRAM-SHA-512","username":"u",
                                        "password":"p"}})"),
                 json::parse(R"({"type":"nats","url":"nats://a:4222,tls://b:4222",
                                "subject":"jobs.run","auth":{"token":"t"},
                                "jetstream":{"stream":"JOBS"}})"),
                 json::parse(R"({"type":"nats","url":"nats://a","subject":"svc.rpc",
                                "request_reply":true,"reply_timeout":"5s",
                                "auth":{"user":"u","password":"p"}})"),
                 json::parse(R"({"type":"rabbitmq","url":"amqp://mq","routing_key":"r",
                                "headers":{"x-kind":"cron"},"content_type":"text/plain",
                                "delivery_mode":1,"payload":[1,2]})")}) {
    json body = minimal_body();
    body.erase("webhook");
    body["dispatch"] = d;
    auto r = job_from_request(body, {});
    EXPECT_TRUE(r.ok()) << d.dump() << " -> " << r.error().field << ": " << r.error().message;
  }
}

TEST(JobApiJson, RoundTripsThroughTheRequestParser) {
  json body = minimal_body();
  body["retry_policy"] = {{"initial_interval", "1500ms"}};
  body["timeout"] = "90s";
  body["tags"] = {{"team", "x"}};
  Job job = parse_ok(body);
  json api = job_to_api_json(job);
  EXPECT_EQ(api["timeout"], "1m30s");
  EXPECT_EQ(api["retry_policy"]["initial_interval"], "1.5s");
  EXPECT_EQ(api["concurrency"], "buffer_one");
  EXPECT_EQ(api["webhook"]["success_codes"], json::array({"200-299"}));
  for (const char* f : {"id", "created_at", "updated_at", "version"}) api.erase(f);
  EXPECT_EQ(parse_ok(api), job);
}

TEST(JobApiJson, HasTheSpecShape) {
  json api = job_to_api_json(full_job());
  EXPECT_EQ(api["id"], "0b6f3c1e-7d2a-4f5b-9c8d-1a2b3c4d5e6f");
  EXPECT_EQ(api["namespace"], "payments");
  EXPECT_EQ(api["created_at"], "2024-03-10T07:30:00.123456789Z");
  EXPECT_EQ(api["updated_at"], "2024-03-10T08:30:00.5Z");
  EXPECT_EQ(api["version"], 7);
  EXPECT_EQ(api["missed_run_policy"], "execute_all");
  EXPECT_EQ(api["catchup_window"], "6h");
  EXPECT_EQ(api["jitter"], "30s");
  EXPECT_EQ(api["webhook"]["success_codes"], json::array({"200-299", "304"}));
  EXPECT_EQ(api["dependencies"]["depends_on"], json::array({"invoice-export", "ops/cleanup"}));
  EXPECT_FALSE(api.contains("dispatch"));
  EXPECT_FALSE(api.contains("next_run"));
}

TEST(JobApiJson, RedactsWebhookSecrets) {
  json api = job_to_api_json(full_job());
  EXPECT_EQ(api["webhook"]["auth"],
            json({{"type", "basic"}, {"username", "svc"}, {"password", "***"}}));
  EXPECT_EQ(api["webhook"]["headers"]["Authorization"], "***");
  EXPECT_EQ(api["webhook"]["headers"]["Content-Type"], "application/json");
  EXPECT_EQ(api["webhook"]["url"], "https://user:***@billing.example.com:8443/sync?x=1");
  EXPECT_EQ(api.dump().find("s3cret"), std::string::npos);
}

TEST(JobApiJson, RedactsDispatchSecrets) {
  Job job = full_job();
  job.webhook.reset();
  job.dispatch = Dispatch{"kafka", json::parse(R"({"brokers":["k:9092"],"topic":"t",
      "sasl":{"mechanism":"PLAIN","username":"u","password":"hunter2"},
      "headers":{"x-api-token":"tok","x-kind":"a"},
      "tls":{"cert_pem":"C","key_pem":"PRIVATE"}})")};
  json api = job_to_api_json(job);
  EXPECT_EQ(api["dispatch"]["sasl"]["password"], "***");
  EXPECT_EQ(api["dispatch"]["sasl"]["username"], "u");
  EXPECT_EQ(api["dispatch"]["headers"]["x-api-token"], "***");
  EXPECT_EQ(api["dispatch"]["headers"]["x-kind"], "a");
  EXPECT_EQ(api["dispatch"]["tls"]["key_pem"], "***");
  EXPECT_EQ(api["dispatch"]["type"], "kafka");
  job.dispatch = Dispatch{"nats", json::parse(R"({"url":"nats://a:b@n:4222","subject":"s",
      "auth":{"token":"tk"}})")};
  api = job_to_api_json(job);
  EXPECT_EQ(api["dispatch"]["auth"]["token"], "***");
  EXPECT_EQ(api["dispatch"]["url"], "nats://a:***@n:4222");
}

TEST(JobInternalJson, KeepsSecrets) {
  json internal = job_to_internal_json(full_job());
  EXPECT_EQ(internal["webhook"]["auth"]["password"], "s3cret");
  EXPECT_EQ(internal["webhook"]["headers"]["Authorization"], "Bearer abc");
  EXPECT_EQ(internal["webhook"]["url"], "https://user:pw@billing.example.com:8443/sync?x=1");
}

TEST(JobInternalJson, RoundTripIsIdentity) {
  Job job = full_job();
  auto back = job_from_internal_json(job_to_internal_json(job));
  ASSERT_TRUE(back.ok()) << back.error().field << ": " << back.error().message;
  EXPECT_EQ(*back, job);
  // Also through text, as a store would keep it.
  auto again = job_from_internal_json(json::parse(job_to_internal_json(job).dump()));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, job);
}

TEST(JobInternalJson, RoundTripKeepsDispatchConfig) {
  Job job = full_job();
  job.webhook.reset();
  job.dispatch = Dispatch{"nats", json::parse(R"({"url":"nats://n","subject":"a.b",
      "request_reply":true,"reply_timeout":"2s"})")};
  auto back = job_from_internal_json(job_to_internal_json(job));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, job);
}

TEST(JobInternalJson, RejectsUnknownFields) {
  json j = job_to_internal_json(full_job());
  j["next_run"] = "2024-01-01T00:00:00Z";
  auto r = job_from_internal_json(j);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().field, "next_run");
}

TEST(ValidateJob, AcceptsTheFullJob) { EXPECT_TRUE(validate_job(full_job()).ok()); }

TEST(ValidateJob, RejectsAnInvalidStoredVersion) {
  Job job = full_job();
  job.retry_policy.max_attempts = 0;
  auto s = validate_job(job);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().field, "retry_policy.max_attempts");
  EXPECT_EQ(s.error().code, ErrorCode::kValidation);
}

TEST(TimeFormat, TrimsFractionAndUsesZ) {
  EXPECT_EQ(format_time(absl::FromUnixSeconds(1710055800)), "2024-03-10T07:30:00Z");
  EXPECT_EQ(format_time(absl::FromUnixMillis(1710055800250)), "2024-03-10T07:30:00.25Z");
}

TEST(TimeFormat, ParsesZAndOffsets) {
  auto z = parse_time("2024-03-10T07:30:00Z");
  ASSERT_TRUE(z.ok()) << z.error().message;
  EXPECT_EQ(*z, absl::FromUnixSeconds(1710055800));
  auto off = parse_time("2024-03-10T08:30:00.5+01:00");
  ASSERT_TRUE(off.ok()) << off.error().message;
  EXPECT_EQ(*off, absl::FromUnixMillis(1710055800500));
}

TEST(TimeFormat, RejectsNonRfc3339) {
  for (const char* bad : {"", "2024-03-10", "2024-03-10 07:30:00Z", " 2024-03-10T07:30:00Z",
                          "2024-03-10T07:30:00", "yesterday", "2024-13-10T07:30:00Z"}) {
    auto r = parse_time(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find("RFC 3339"), std::string::npos);
    }
  }
}

TEST(TimeFormat, RoundTripsNanoseconds) {
  absl::Time t = absl::FromUnixNanos(1710055800123456789);
  auto back = parse_time(format_time(t));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, t);
}

TEST(Names, FollowTheSpecCharset) {
  EXPECT_TRUE(is_valid_name("a"));
  EXPECT_TRUE(is_valid_name("0abc.def_g-h"));
  EXPECT_TRUE(is_valid_name(std::string(127, 'a')));
  EXPECT_FALSE(is_valid_name(std::string(128, 'a')));
  EXPECT_FALSE(is_valid_name(""));
  EXPECT_FALSE(is_valid_name("-a"));
  EXPECT_FALSE(is_valid_name(".a"));
  EXPECT_FALSE(is_valid_name("Abc"));
  EXPECT_FALSE(is_valid_name("a b"));
  EXPECT_FALSE(is_valid_name("a/b"));
}

TEST(EnumNames, MatchTheWireForm) {
  EXPECT_EQ(to_string(Concurrency::kAllow), "allow");
  EXPECT_EQ(to_string(Concurrency::kForbid), "forbid");
  EXPECT_EQ(to_string(Concurrency::kReplace), "replace");
  EXPECT_EQ(to_string(Concurrency::kBufferOne), "buffer_one");
  EXPECT_EQ(to_string(MissedRunPolicy::kIgnore), "ignore");
  EXPECT_EQ(to_string(MissedRunPolicy::kExecuteOne), "execute_one");
  EXPECT_EQ(to_string(MissedRunPolicy::kExecuteAll), "execute_all");
}

TEST(EnumNames, ParsersInvertToString) {
  for (Concurrency c : {Concurrency::kAllow, Concurrency::kForbid, Concurrency::kBufferOne,
                        Concurrency::kReplace}) {
    EXPECT_EQ(parse_concurrency(to_string(c)), c);
  }
  for (MissedRunPolicy p :
       {MissedRunPolicy::kIgnore, MissedRunPolicy::kExecuteOne, MissedRunPolicy::kExecuteAll}) {
    EXPECT_EQ(parse_missed_run_policy(to_string(p)), p);
  }
}

TEST(EnumNames, ParsersRefuseAnythingElse) {
  for (const char* bad : {"", "Allow", "FORBID", " replace", "allowed"}) {
    EXPECT_EQ(parse_concurrency(bad), std::nullopt) << bad;
  }
  for (const char* bad : {"", "Ignore", "execute-one", "execute_one ", "all"}) {
    EXPECT_EQ(parse_missed_run_policy(bad), std::nullopt) << bad;
  }
}

TEST(EnumNames, RequestParserNamesTheFieldOfABadEnum) {
  json body = minimal_body();
  body["concurrency"] = "sometimes";
  auto r = job_from_request(body, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().field, "concurrency");
  EXPECT_EQ(r.error().message, "must be one of allow, forbid, buffer_one, replace");
  body = minimal_body();
  body["missed_run_policy"] = "execute-one";
  r = job_from_request(body, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().field, "missed_run_policy");
  EXPECT_EQ(r.error().message, "must be one of ignore, execute_one, execute_all");
}

absl::Time utc(int64_t y, int m, int d, int hh = 0, int mm = 0, int ss = 0) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss), absl::UTCTimeZone());
}

TEST(TimeFormat, RegressPrintsFourDigitYears) {
  EXPECT_EQ(format_time(utc(4, 2, 29)), "0004-02-29T00:00:00Z");
  EXPECT_EQ(format_time(utc(1, 1, 1)), "0001-01-01T00:00:00Z");
  EXPECT_EQ(format_time(utc(999, 12, 31, 23, 59, 59)), "0999-12-31T23:59:59Z");
  EXPECT_EQ(format_time(utc(9999, 12, 31, 23, 59, 59)), "9999-12-31T23:59:59Z");
}

TEST(TimeFormat, RoundTripsTheEdgesOfTheRange) {
  for (absl::Time t : {utc(1, 1, 1), utc(4, 2, 29, 12, 0, 0),
                       utc(9999, 12, 31, 23, 59, 59) + absl::Nanoseconds(999999999)}) {
    auto back = parse_time(format_time(t));
    ASSERT_TRUE(back.ok()) << format_time(t) << ": " << back.error().message;
    EXPECT_EQ(*back, t);
  }
}

TEST(TimeFormat, RejectsYearsOutsideFourDigits) {
  for (const char* bad : {"4-02-29T00:00:00Z", "10000-01-01T00:00:00Z", "-001-01-01T00:00:00Z",
                          "+2024-03-10T07:30:00Z", "02024-03-10T07:30:00Z"}) {
    auto r = parse_time(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("RFC 3339"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("four digits"), std::string::npos) << r.error().message;
  }
}

TEST(TimeFormat, RejectsYearsOutside0001To9999InUtc) {
  // Year 0000 as written, and times that an offset moves out of range in UTC.
  for (const char* bad :
       {"0000-06-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"}) {
    auto r = parse_time(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("between 0001 and 9999"), std::string::npos)
        << r.error().message;
  }
  EXPECT_TRUE(parse_time("0001-01-01T00:30:00+00:30").ok());
  EXPECT_TRUE(parse_time("9999-12-31T23:30:00+01:00").ok());
}

TEST(TimeFormat, InRfc3339RangeCoversYears0001To9999) {
  EXPECT_TRUE(in_rfc3339_range(utc(1, 1, 1)));
  EXPECT_TRUE(in_rfc3339_range(utc(2024, 3, 10)));
  EXPECT_TRUE(in_rfc3339_range(utc(9999, 12, 31, 23, 59, 59) + absl::Nanoseconds(999999999)));
  EXPECT_FALSE(in_rfc3339_range(utc(1, 1, 1) - absl::Nanoseconds(1)));
  EXPECT_FALSE(in_rfc3339_range(utc(10000, 1, 1)));
  EXPECT_FALSE(in_rfc3339_range(absl::InfiniteFuture()));
  EXPECT_FALSE(in_rfc3339_range(absl::InfinitePast()));
}

// JSON nested `depth` levels (objects and arrays alternating), a string at
// the bottom.
json nested(int depth) {
  json j = "leaf";
  for (int i = 0; i < depth; ++i) j = i % 2 == 0 ? json::array({j}) : json{{"k", j}};
  return j;
}

int depth_of(const json& j) {
  int deepest = 0;
  if (j.is_structured()) {
    for (const json& child : j) deepest = std::max(deepest, depth_of(child));
    return deepest + 1;
  }
  return 0;
}

json nats_body(const json& payload) {
  json body = minimal_body();
  body.erase("webhook");
  body["dispatch"] = {{"type", "nats"},
                      {"url", "nats://nats.example.com:4222"},
                      {"subject", "jobs.run"},
                      {"payload", payload}};
  return body;
}

TEST(DepthLimits, RequestWithPayloadAtTheCapIsAcceptedWithinTheBodyLimit) {
  const json body = nats_body(nested(kMaxPayloadDepth));
  EXPECT_LE(depth_of(body), kMaxRequestJsonDepth);
  Job job = parse_ok(body);
  ASSERT_TRUE(job.dispatch.has_value());
  EXPECT_EQ(depth_of(job.dispatch->config["payload"]), kMaxPayloadDepth);
}

TEST(DepthLimits, PayloadDeeperThanTheCapIsRefused) {
  auto r = job_from_request(nats_body(nested(kMaxPayloadDepth + 1)), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().field, "dispatch.payload");
}

TEST(DepthLimits, PatchCanSetAPayloadAtTheCap) {
  Job current = parse_ok(nats_body("x"));
  const json patch = {{"dispatch", {{"payload", nested(kMaxPayloadDepth)}}}};
  ASSERT_LE(depth_of(patch), kMaxMergePatchDepth);
  auto r = apply_merge_patch(current, patch, {});
  ASSERT_TRUE(r.ok()) << r.error().field << ": " << r.error().message;
  EXPECT_EQ(r->dispatch->config["payload"], nested(kMaxPayloadDepth));
}

}  // namespace
}  // namespace chronos::model
