// Table of bad create bodies: each must be refused with a kValidation error
// naming the right field and stating the rule.

#include <gtest/gtest.h>

#include "model/job_codec.h"
#include "model/tests/test_jobs.h"

namespace chronos::model {
namespace {

using nlohmann::json;

struct BadBody {
  const char* test_name;
  // RFC 7386 patch applied to minimal_body() (null removes a field).
  const char* patch;
  const char* field;
  const char* message_part;
};

// Shorthand for a dispatch body (the webhook removed).
#define DISPATCH(obj) R"({"webhook": null, "dispatch": )" obj "}"

const BadBody kBadBodies[] = {
    // Unknown fields, at every level.
    {"UnknownTopLevel", R"({"foo": 1})", "foo", "unknown field \"foo\""},
    {"UnknownRetryPolicy", R"({"retry_policy": {"max_retries": 1}})", "retry_policy.max_retries",
     "unknown field"},
    {"UnknownWebhook", R"({"webhook": {"timeout": "1s"}})", "webhook.timeout", "unknown field"},
    {"UnknownWebhookAuth", R"({"webhook": {"auth": {"type": "bearer", "token": "t", "x": 1}}})",
     "webhook.auth.x", "unknown field"},
    {"AuthFieldOfOtherType", R"({"webhook": {"auth": {"type": "bearer", "token": "t",
      "password": "p"}}})",
     "webhook.auth.password", "for auth type \"bearer\""},
    {"UnknownDependencies", R"({"dependencies": {"depends_on": ["a"], "when": "x"}})",
     "dependencies.when", "unknown field"},
    {"UnknownGrpcField", DISPATCH(R"({"type": "grpc", "target": "s:1", "method": "/S/M",
      "topic": "t"})"),
     "dispatch.topic", "unknown field"},
    {"UnknownKafkaField", DISPATCH(R"({"type": "kafka", "brokers": ["k:1"], "topic": "t",
      "subject": "s"})"),
     "dispatch.subject", "unknown field"},
    {"UnknownNatsField", DISPATCH(R"({"type": "nats", "url": "nats://n", "subject": "s",
      "exchange": "e"})"),
     "dispatch.exchange", "unknown field"},
    {"UnknownRabbitField", DISPATCH(R"({"type": "rabbitmq", "url": "amqp://m", "brokers": []})"),
     "dispatch.brokers", "unknown field"},
    // Server-owned fields.
    {"CreatedAtIsServerOwned", R"({"created_at": "2024-01-01T00:00:00Z"})", "created_at",
     "set by the server"},
    {"VersionIsServerOwned", R"({"version": 3})", "version", "set by the server"},
    {"NextRunIsServerOwned", R"({"next_run": "2024-01-01T00:00:00Z"})", "next_run",
     "set by the server"},
    {"IdMustBeUuid", R"({"id": "job-1"})", "id", "UUID"},
    // Wrong JSON types.
    {"NameNotString", R"({"name": 5})", "name", "must be a string"},
    {"EnabledNotBool", R"({"enabled": "yes"})", "enabled", "must be a boolean"},
    {"MaxAttemptsNotInteger", R"({"retry_policy": {"max_attempts": 2.5}})",
     "retry_policy.max_attempts", "must be an integer"},
    {"MultiplierNotNumber", R"({"retry_policy": {"multiplier": "2"}})", "retry_policy.multiplier",
     "must be a number"},
    {"TimeoutAsSeconds", R"({"timeout": 30})", "timeout", "must be a duration"},
    {"TagsNotObject", R"({"tags": ["a"]})", "tags", "must be an object"},
    {"TagValueNotString", R"({"tags": {"team": 1}})", "tags.team", "must be a string"},
    {"HeaderValueNotString", R"({"webhook": {"headers": {"X-A": 1}}})", "webhook.headers.X-A",
     "must be a string"},
    {"WebhookNotObject", R"({"webhook": "https://x"})", "webhook", "must be an object"},
    {"DependsOnNotArray", R"({"dependencies": {"depends_on": "a"}})", "dependencies.depends_on",
     "must be an array"},
    // Names.
    {"NameMissing", R"({"name": null})", "name", "is required"},
    {"NameUppercase", R"({"name": "Report"})", "name", "[a-z0-9][a-z0-9._-]{0,126}"},
    {"NameLeadingDash", R"({"name": "-report"})", "name", "must match"},
    {"NamespaceBad", R"({"namespace": "team a"})", "namespace", "must match"},
    {"DescriptionTooLong", nullptr, "description", "at most 4096 bytes"},
    // Schedule and zone.
    {"ScheduleMissing", R"({"schedule": null})", "schedule", "is required"},
    {"ScheduleGarbage", R"({"schedule": "every day"})", "schedule", ""},
    {"ScheduleImpossible", R"({"schedule": "0 0 30 2 *"})", "schedule", ""},
    {"TimezoneUnknown", R"({"timezone": "Mars/Olympus_Mons"})", "timezone", ""},
    // Targets.
    {"NeitherTarget", R"({"webhook": null})", "webhook", "one of webhook or dispatch is required"},
    {"BothTargets", R"({"dispatch": {"type": "nats", "url": "nats://n", "subject": "s"}})",
     "dispatch", "only one of webhook or dispatch"},
    {"UrlMissing", R"({"webhook": {"url": null}})", "webhook.url", "is required"},
    {"UrlBadScheme", R"({"webhook": {"url": "ftp://example.com"}})", "webhook.url",
     "http:// or https://"},
    {"UrlNoHost", R"({"webhook": {"url": "https:///path"}})", "webhook.url", "host"},
    {"UrlWithSpace", R"({"webhook": {"url": "https://exa mple.com"}})", "webhook.url", "spaces"},
    {"UrlBadPort", R"({"webhook": {"url": "https://example.com:70000/"}})", "webhook.url", "port"},
    {"MethodUnknown", R"({"webhook": {"method": "FETCH"}})", "webhook.method", "must be one of"},
    {"HeaderNameBad", R"({"webhook": {"headers": {"X Bad": "v"}}})", "webhook.headers.X Bad",
     "HTTP header name"},
    {"HeaderValueNewline", R"({"webhook": {"headers": {"X-A": "a\r\nX-B: b"}}})",
     "webhook.headers.X-A", "CR, LF"},
    {"HeaderReserved", R"({"webhook": {"headers": {"X-Chronos-Job-ID": "x"}}})",
     "webhook.headers.X-Chronos-Job-ID", "set by Chronos"},
    {"AuthTypeUnknown", R"({"webhook": {"auth": {"type": "oauth"}}})", "webhook.auth.type",
     "basic, bearer, api_key"},
    {"BasicAuthNoUser", R"({"webhook": {"auth": {"type": "basic", "password": "p"}}})",
     "webhook.auth.username", "is required"},
    {"BearerNoToken", R"({"webhook": {"auth": {"type": "bearer"}}})", "webhook.auth.token",
     "is required"},
    {"ApiKeyNoKey", R"({"webhook": {"auth": {"type": "api_key", "header": "X-Key"}}})",
     "webhook.auth.key", "is required"},
    {"SuccessCodeTooLow", R"({"webhook": {"success_codes": [99]}})", "webhook.success_codes[0]",
     "between 100 and 599"},
    {"SuccessRangeBackwards", R"({"webhook": {"success_codes": [200, "299-200"]}})",
     "webhook.success_codes[1]", "ascending range"},
    {"SuccessRangeMalformed", R"({"webhook": {"success_codes": ["2xx"]}})",
     "webhook.success_codes[0]", "range string"},
    {"SuccessRangeUpperBelowHundred", R"({"webhook": {"success_codes": ["200-099"]}})",
     "webhook.success_codes[0]", "ascending range"},
    {"SuccessRangeBelowHundred", R"({"webhook": {"success_codes": ["020-299"]}})",
     "webhook.success_codes[0]", "between 100 and 599"},
    {"SuccessCodesEmpty", R"({"webhook": {"success_codes": []}})", "webhook.success_codes",
     "must list 1 to 32"},
    // Retry policy bounds.
    {"MaxAttemptsZero", R"({"retry_policy": {"max_attempts": 0}})", "retry_policy.max_attempts",
     "between 1 and 100"},
    {"MaxAttempts101", R"({"retry_policy": {"max_attempts": 101}})", "retry_policy.max_attempts",
     "between 1 and 100"},
    {"InitialIntervalZero", R"({"retry_policy": {"initial_interval": "0s"}})",
     "retry_policy.initial_interval", "between 1ms and 1d"},
    {"MaxIntervalTooLong", R"({"retry_policy": {"max_interval": "25h"}})",
     "retry_policy.max_interval", "between 1ms and 1d"},
    {"InitialAboveMax", R"({"retry_policy": {"initial_interval": "2m", "max_interval": "1m"}})",
     "retry_policy.initial_interval", "must not exceed max_interval"},
    {"MultiplierBelowOne", R"({"retry_policy": {"multiplier": 0.5}})", "retry_policy.multiplier",
     "between 1.0 and 10.0"},
    {"MultiplierAboveTen", R"({"retry_policy": {"multiplier": 10.5}})", "retry_policy.multiplier",
     "between 1.0 and 10.0"},
    {"RetryJitterAboveOne", R"({"retry_policy": {"jitter": 1.5}})", "retry_policy.jitter",
     "between 0.0 and 1.0"},
    // Durations.
    {"TimeoutBadSyntax", R"({"timeout": "5 minutes"})", "timeout", "must be a duration like 1m30s"},
    {"TimeoutUnknownUnit", R"({"timeout": "5w"})", "timeout", "unknown unit"},
    {"TimeoutZero", R"({"timeout": "0s"})", "timeout", "between 1ms and 1d"},
    {"TimeoutTooLong", R"({"timeout": "24h1s"})", "timeout", "between 1ms and 1d"},
    {"CatchupTooLong", R"({"catchup_window": "366d"})", "catchup_window", "between 0s and 365d"},
    {"JitterTooLong", R"({"jitter": "2h"})", "jitter", "between 0s and 1h"},
    // Enums.
    {"ConcurrencyUnknown", R"({"concurrency": "queue"})", "concurrency",
     "allow, forbid, buffer_one, replace"},
    {"MissedRunPolicyUnknown", R"({"missed_run_policy": "all"})", "missed_run_policy",
     "ignore, execute_one, execute_all"},
    // Tags.
    {"TagKeyBad", R"({"tags": {"bad key": "v"}})", "tags.bad key", "[A-Za-z0-9._/-]"},
    {"TagValueTooLong", nullptr, "tags.team", "at most 256 bytes"},
    {"TooManyTags", nullptr, "tags", "at most 64 tags"},
    // Dependencies.
    {"DependsOnEmpty", R"({"dependencies": {"depends_on": []}})", "dependencies.depends_on",
     "must list 1 to 32"},
    {"DependsOnBadName", R"({"dependencies": {"depends_on": ["Bad Name"]}})",
     "dependencies.depends_on[0]", "job id, name"},
    {"DependsOnSelf", R"({"dependencies": {"depends_on": ["nightly-report"]}})",
     "dependencies.depends_on[0]", "itself"},
    {"DependsOnTwice", R"({"dependencies": {"depends_on": ["a", "a"]}})",
     "dependencies.depends_on[1]", "twice"},
    {"DependencyConditionUnknown",
     R"({"dependencies": {"depends_on": ["a"], "condition": "majority"}})",
     "dependencies.condition", "all_success"},
    // Dispatch per type.
    {"DispatchTypeMissing", DISPATCH(R"({"topic": "t"})"), "dispatch.type", "is required"},
    {"DispatchTypeUnknown", DISPATCH(R"({"type": "sqs"})"), "dispatch.type",
     "grpc, kafka, nats, rabbitmq"},
    {"GrpcTargetMissing", DISPATCH(R"({"type": "grpc", "method": "/S/M"})"), "dispatch.target",
     "is required"},
    {"GrpcMethodBad", DISPATCH(R"({"type": "grpc", "target": "s:1", "method": "Run"})"),
     "dispatch.method", "/pkg.Service/Method"},
    {"GrpcPayloadNotBase64", DISPATCH(R"({"type": "grpc", "target": "s:1", "method": "/S/M",
      "payload": "!!"})"),
     "dispatch.payload", "base64"},
    {"GrpcTlsUnknownField", DISPATCH(R"({"type": "grpc", "target": "s:1", "method": "/S/M",
      "tls": {"verify": false}})"),
     "dispatch.tls.verify", "unknown field"},
    {"KafkaBrokersMissing", DISPATCH(R"({"type": "kafka", "topic": "t"})"), "dispatch.brokers",
     "is required"},
    {"KafkaBrokerNoPort", DISPATCH(R"({"type": "kafka", "brokers": ["k1:9092", "k2"],
      "topic": "t"})"),
     "dispatch.brokers[1]", "host:port"},
    {"KafkaTopicBad", DISPATCH(R"({"type": "kafka", "brokers": "k:1", "topic": "a topic"})"),
     "dispatch.topic", "[a-zA-Z0-9._-]"},
    {"KafkaAcksBad", DISPATCH(R"({"type": "kafka", "brokers": "k:1", "topic": "t", "acks": 2})"),
     "dispatch.acks", "0, 1, -1 or \"all\""},
    {"KafkaCompressionBad", DISPATCH(R"({"type": "kafka", "brokers": "k:1", "topic": "t",
      "compression": "brotli"})"),
     "dispatch.compression", "gzip"},
    {"KafkaSaslNoPassword", DISPATCH(R"({"type": "kafka", "brokers": "k:1", "topic": "t",
      "sasl": {"mechanism": "PLAIN", "username": "u"}})"),
     "dispatch.sasl.password", "is required"},
    {"NatsUrlBadScheme", DISPATCH(R"({"type": "nats", "url": "http://n", "subject": "s"})"),
     "dispatch.url", "nats:// or tls://"},
    {"NatsSubjectWildcard", DISPATCH(R"({"type": "nats", "url": "nats://n", "subject": "a.*"})"),
     "dispatch.subject", "wildcards"},
    {"NatsAuthBoth", DISPATCH(R"({"type": "nats", "url": "nats://n", "subject": "s",
      "auth": {"token": "t", "user": "u", "password": "p"}})"),
     "dispatch.auth", "either token or user"},
    {"NatsMsgIdIsServerOwned", DISPATCH(R"({"type": "nats", "url": "nats://n", "subject": "s",
      "jetstream": {"msg_id": "x"}})"),
     "dispatch.jetstream.msg_id", "execution id"},
    {"NatsReplyTimeoutWithoutRequestReply", DISPATCH(R"({"type": "nats", "url": "nats://n",
      "subject": "s", "reply_timeout": "1s"})"),
     "dispatch.reply_timeout", "request_reply"},
    {"NatsRequestReplyWithJetstream", DISPATCH(R"({"type": "nats", "url": "nats://n",
      "subject": "s", "request_reply": true, "jetstream": {}})"),
     "dispatch.request_reply", "jetstream"},
    {"RabbitUrlMissing", DISPATCH(R"({"type": "rabbitmq", "exchange": "e"})"), "dispatch.url",
     "is required"},
    {"RabbitUrlBadScheme", DISPATCH(R"({"type": "rabbitmq", "url": "amqpx://m"})"), "dispatch.url",
     "amqp:// or amqps://"},
    {"RabbitDeliveryModeBad", DISPATCH(R"({"type": "rabbitmq", "url": "amqp://m",
      "delivery_mode": 3})"),
     "dispatch.delivery_mode", "1 (transient) or 2 (persistent)"},
    {"RabbitMessageIdIsServerOwned", DISPATCH(R"({"type": "rabbitmq", "url": "amqp://m",
      "message_id": "x"})"),
     "dispatch.message_id", "execution id"},
    {"PayloadTooDeep", nullptr, "dispatch.payload", "at most 32 levels"},
    {"PayloadWrongType", DISPATCH(R"({"type": "rabbitmq", "url": "amqp://m", "payload": 5})"),
     "dispatch.payload", "string, an object or an array"},
};

// Bodies too big to write inline, keyed by test name.
json body_for(const BadBody& c) {
  json body = testing::minimal_body();
  std::string name = c.test_name;
  if (name == "DescriptionTooLong") {
    body["description"] = std::string(4097, 'x');
  } else if (name == "TagValueTooLong") {
    body["tags"] = {{"team", std::string(257, 'v')}};
  } else if (name == "TooManyTags") {
    for (int i = 0; i < 65; ++i) body["tags"]["k" + std::to_string(i)] = "v";
  } else if (name == "PayloadTooDeep") {
    json payload = 1;
    for (int i = 0; i < 40; ++i) payload = json::array({payload});
    body.erase("webhook");
    body["dispatch"] = {
        {"type", "kafka"}, {"brokers", "k:1"}, {"topic", "t"}, {"payload", payload}};
  } else {
    body.merge_patch(json::parse(c.patch));
  }
  return body;
}

class BadBodyTest : public ::testing::TestWithParam<BadBody> {};

TEST_P(BadBodyTest, IsRejectedNamingTheField) {
  const BadBody& c = GetParam();
  json body = body_for(c);
  auto r = job_from_request(body, {});
  ASSERT_FALSE(r.ok()) << body.dump();
  EXPECT_EQ(r.error().code, ErrorCode::kValidation);
  EXPECT_EQ(r.error().field, c.field) << r.error().message;
  EXPECT_NE(r.error().message.find(c.message_part), std::string::npos)
      << "message: " << r.error().message << "\nexpected to contain: " << c.message_part;
}

INSTANTIATE_TEST_SUITE_P(JobFromRequest, BadBodyTest, ::testing::ValuesIn(kBadBodies),
                         [](const ::testing::TestParamInfo<BadBody>& info) {
                           return std::string(info.param.test_name);
                         });

TEST(JobFromRequest, TableHasAtLeastFortyBadBodies) { EXPECT_GE(std::size(kBadBodies), 40u); }

TEST(JobFromRequest, RejectsNonObjectBody) {
  for (const json& body : {json::array(), json("job"), json(nullptr), json(1)}) {
    auto r = job_from_request(body, {});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kValidation);
  }
}

TEST(JobFromRequest, AcceptsBoundaryValues) {
  json body = testing::minimal_body();
  body["retry_policy"] = {{"max_attempts", 100},
                          {"initial_interval", "1ms"},
                          {"max_interval", "24h"},
                          {"multiplier", 10},
                          {"jitter", 1}};
  body["timeout"] = "1d";
  body["catchup_window"] = "365d";
  body["jitter"] = "1h";
  body["description"] = std::string(4096, 'x');
  body["name"] = std::string(127, 'a');
  auto r = job_from_request(body, {});
  EXPECT_TRUE(r.ok()) << r.error().field << ": " << r.error().message;
}

}  // namespace
}  // namespace chronos::model
