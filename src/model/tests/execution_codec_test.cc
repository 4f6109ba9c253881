#include "model/execution_codec.h"

#include <gtest/gtest.h>

#include "model/execution.h"
#include "model/job_codec.h"

namespace chronos::model {
namespace {

using Json = nlohmann::json;

Execution full_execution() {
  Execution e;
  e.id = "018e2b3c-4d5e-7f60-8a1b-2c3d4e5f6a7b";
  e.job_id = "0b6f3c1e-7d2a-4f5b-9c8d-1a2b3c4d5e6f";
  e.job_name = "billing.sync";
  e.namespace_ = "payments";
  e.job_version = 7;
  e.scheduled_time = absl::FromUnixSeconds(1710055800);
  e.trigger = Trigger::kReplay;
  e.status = ExecutionStatus::kFailed;
  e.attempts = 3;
  e.started_at = absl::FromUnixNanos(1710055800123456789);
  e.completed_at = absl::FromUnixMillis(1710055890623);
  e.status_code = 503;
  e.response = "{\"error\":\"busy\"}";
  e.error = "HTTP 503";
  e.node_id = "node-2";
  e.replay_of = "018e2b3c-0000-7000-8000-000000000001";
  return e;
}

TEST(ExecutionEnums, StatusNamesRoundTrip) {
  for (auto s :
       {ExecutionStatus::kPending, ExecutionStatus::kRunning, ExecutionStatus::kSuccess,
        ExecutionStatus::kFailed, ExecutionStatus::kSkipped, ExecutionStatus::kCancelled}) {
    EXPECT_EQ(parse_execution_status(to_string(s)), s);
  }
  EXPECT_EQ(to_string(ExecutionStatus::kCancelled), "cancelled");
  EXPECT_EQ(parse_execution_status("Running"), std::nullopt);
  EXPECT_EQ(parse_execution_status(""), std::nullopt);
}

TEST(ExecutionEnums, TriggerNamesRoundTrip) {
  for (auto t : {Trigger::kSchedule, Trigger::kManual, Trigger::kCatchup, Trigger::kReplay,
                 Trigger::kDependency}) {
    EXPECT_EQ(parse_trigger(to_string(t)), t);
  }
  EXPECT_EQ(to_string(Trigger::kCatchup), "catchup");
  EXPECT_EQ(parse_trigger("cron"), std::nullopt);
}

TEST(ExecutionEnums, OnlyPendingAndRunningAreNotTerminal) {
  EXPECT_FALSE(is_terminal(ExecutionStatus::kPending));
  EXPECT_FALSE(is_terminal(ExecutionStatus::kRunning));
  EXPECT_TRUE(is_terminal(ExecutionStatus::kSuccess));
  EXPECT_TRUE(is_terminal(ExecutionStatus::kFailed));
  EXPECT_TRUE(is_terminal(ExecutionStatus::kSkipped));
  EXPECT_TRUE(is_terminal(ExecutionStatus::kCancelled));
}

TEST(ExecutionApiJson, HasTheSpecFieldsInSnakeCase) {
  const Json j = execution_to_api_json(full_execution());
  EXPECT_EQ(j["id"], "018e2b3c-4d5e-7f60-8a1b-2c3d4e5f6a7b");
  EXPECT_EQ(j["job_id"], "0b6f3c1e-7d2a-4f5b-9c8d-1a2b3c4d5e6f");
  EXPECT_EQ(j["job_name"], "billing.sync");
  EXPECT_EQ(j["namespace"], "payments");
  EXPECT_EQ(j["job_version"], 7);
  EXPECT_EQ(j["scheduled_time"], "2024-03-10T07:30:00Z");
  EXPECT_EQ(j["trigger"], "replay");
  EXPECT_EQ(j["status"], "failed");
  EXPECT_EQ(j["attempts"], 3);
  EXPECT_EQ(j["started_at"], "2024-03-10T07:30:00.123456789Z");
  EXPECT_EQ(j["completed_at"], "2024-03-10T07:31:30.623Z");
  EXPECT_EQ(j["duration"], "1m30.499543211s");
  EXPECT_EQ(j["status_code"], 503);
  EXPECT_EQ(j["response"], "{\"error\":\"busy\"}");
  EXPECT_EQ(j["error"], "HTTP 503");
  EXPECT_EQ(j["node_id"], "node-2");
  EXPECT_EQ(j["replay_of"], "018e2b3c-0000-7000-8000-000000000001");
  EXPECT_TRUE(j["next_attempt_at"].is_null());  // not waiting for a retry
  EXPECT_EQ(j.size(), 18u);
}

TEST(ExecutionApiJson, UnsetTimesDurationCodeAndReplayAreNull) {
  Execution e;
  e.id = "x";
  e.job_id = "j";
  const Json j = execution_to_api_json(e);
  EXPECT_TRUE(j["scheduled_time"].is_null());
  EXPECT_TRUE(j["started_at"].is_null());
  EXPECT_TRUE(j["completed_at"].is_null());
  EXPECT_TRUE(j["duration"].is_null());
  EXPECT_TRUE(j["status_code"].is_null());
  EXPECT_TRUE(j["replay_of"].is_null());
  EXPECT_EQ(j["status"], "pending");
  EXPECT_EQ(j["trigger"], "schedule");
}

TEST(ExecutionApiJson, DurationNeedsBothStartAndCompletion) {
  Execution e = full_execution();
  e.completed_at = absl::InfinitePast();
  EXPECT_TRUE(execution_to_api_json(e)["duration"].is_null());
  e = full_execution();
  e.started_at = absl::InfinitePast();
  EXPECT_TRUE(execution_to_api_json(e)["duration"].is_null());
}

TEST(ExecutionApiJson, DurationIsNeverNegative) {
  Execution e = full_execution();
  e.completed_at = e.started_at - absl::Milliseconds(3);  // another node's clock
  EXPECT_EQ(execution_to_api_json(e)["duration"], "0s");
}

TEST(ExecutionApiJson, InvalidUtf8InResponseIsReplacedSoDumpNeverThrows) {
  Execution e = full_execution();
  e.response = std::string("ok\xff\xfe", 4);
  e.error = std::string("bad \xc3", 5);
  const Json j = execution_to_api_json(e);
  EXPECT_EQ(j["response"], "ok\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(j["error"], "bad \xef\xbf\xbd");
  EXPECT_NO_THROW((void)j.dump());
}

TEST(ExecutionInternalJson, RoundTripIsExact) {
  const Execution e = full_execution();
  auto back = execution_from_internal_json(execution_to_internal_json(e));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, e);
}

TEST(ExecutionInternalJson, RoundTripsARetrysDueTime) {
  Execution e = full_execution();
  e.status = ExecutionStatus::kRunning;
  e.next_attempt_at = absl::FromUnixSeconds(1'710'000'000);
  auto back = execution_from_internal_json(execution_to_internal_json(e));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, e);
  EXPECT_EQ(execution_to_api_json(e)["next_attempt_at"], "2024-03-09T16:00:00Z");
}

TEST(ExecutionInternalJson, RoundTripKeepsUnsetTimes) {
  Execution e;
  e.id = "x";
  e.job_id = "j";
  e.status = ExecutionStatus::kRunning;
  auto back = execution_from_internal_json(execution_to_internal_json(e));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, e);
}

TEST(ExecutionInternalJson, RoundTripsArbitraryBytesThroughText) {
  Execution e = full_execution();
  e.response = std::string("\0\xff\xc3(binary", 10);
  e.error = std::string("\xed\xa0\x80", 3);  // a surrogate: not UTF-8
  const Json j = execution_to_internal_json(e);
  EXPECT_TRUE(j["response"].is_object());
  auto back = execution_from_internal_json(Json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, e);
}

TEST(ExecutionInternalJson, RoundTripsThroughMessagePack) {
  const Execution e = full_execution();
  const std::vector<uint8_t> bytes = Json::to_msgpack(execution_to_internal_json(e));
  auto back = execution_from_internal_json(Json::from_msgpack(bytes));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, e);
}

TEST(ExecutionInternalJson, RejectsUnknownFields) {
  Json j = execution_to_internal_json(full_execution());
  j["extra"] = 1;
  auto r = execution_from_internal_json(j);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().field, "extra");
}

TEST(ExecutionInternalJson, RejectsUnknownStatusAndTrigger) {
  Json j = execution_to_internal_json(full_execution());
  j["status"] = "done";
  EXPECT_EQ(execution_from_internal_json(j).error().field, "status");
  j = execution_to_internal_json(full_execution());
  j["trigger"] = 3;
  EXPECT_EQ(execution_from_internal_json(j).error().field, "trigger");
}

TEST(ExecutionInternalJson, RejectsMissingIds) {
  Json j = execution_to_internal_json(full_execution());
  j.erase("id");
  EXPECT_EQ(execution_from_internal_json(j).error().field, "id");
  j = execution_to_internal_json(full_execution());
  j["job_id"] = nullptr;
  EXPECT_EQ(execution_from_internal_json(j).error().field, "job_id");
}

TEST(ExecutionInternalJson, RejectsAttemptsOutsideInt) {
  Json j = execution_to_internal_json(full_execution());
  j["attempts"] = int64_t{1} << 40;
  EXPECT_EQ(execution_from_internal_json(j).error().field, "attempts");
}

TEST(ExecutionInternalJson, RejectsBadTimesAndBadBase64) {
  Json j = execution_to_internal_json(full_execution());
  j["started_at"] = "yesterday";
  EXPECT_EQ(execution_from_internal_json(j).error().field, "started_at");
  j = execution_to_internal_json(full_execution());
  j["response"] = Json{{"base64", "!!!"}};
  EXPECT_EQ(execution_from_internal_json(j).error().field, "response.base64");
  j["response"] = Json{{"hex", "00"}};
  EXPECT_EQ(execution_from_internal_json(j).error().field, "response");
}

TEST(ExecutionInternalJson, RejectsNonObjects) {
  EXPECT_FALSE(execution_from_internal_json(Json::array()).ok());
  EXPECT_FALSE(execution_from_internal_json(Json("x")).ok());
}

TEST(TruncateUtf8, KeepsShortStrings) {
  EXPECT_EQ(truncate_utf8("abc", 3), "abc");
  EXPECT_EQ(truncate_utf8("", 0), "");
}

TEST(TruncateUtf8, CutsBeforeASplitCodePoint) {
  const std::string s = "ab\xe2\x82\xac";  // "ab€"
  EXPECT_EQ(truncate_utf8(s, 4), "ab");
  EXPECT_EQ(truncate_utf8(s, 3), "ab");
  EXPECT_EQ(truncate_utf8(s, 2), "ab");
  EXPECT_EQ(truncate_utf8(s, 1), "a");
  const std::string four = "\xf0\x9f\x98\x80z";  // emoji, z
  EXPECT_EQ(truncate_utf8(four, 4), "\xf0\x9f\x98\x80");
  EXPECT_EQ(truncate_utf8(four, 3), "");
}

TEST(TruncateUtf8, CutsPlainBytesWhereThereIsNoUtf8) {
  const std::string s(10, '\x80');  // continuation bytes only
  EXPECT_EQ(truncate_utf8(s, 5).size(), 5u);
}

TEST(SanitizeUtf8, LeavesValidTextAlone) {
  EXPECT_EQ(sanitize_utf8("h\xc3\xa9llo"), "h\xc3\xa9llo");
}

}  // namespace
}  // namespace chronos::model
