#include "model/command.h"

#include <gtest/gtest.h>

#include <random>

#include "model/job_codec.h"
#include "model/limits.h"
#include "model/tests/test_jobs.h"

namespace chronos::model {
namespace {

using testing::full_job;

CommandBatch sample_batch() {
  Job dispatch_job = full_job();
  dispatch_job.webhook.reset();
  dispatch_job.dispatch =
      Dispatch{"kafka", nlohmann::json::parse(R"({"brokers":["k:9092"],"topic":"t","acks":-1})")};
  return CommandBatch{{PutJob{full_job(), 6}, DeleteJob{"0b6f3c1e-7d2a-4f5b-9c8d-1a2b3c4d5e6f", 3},
                       Noop{}, PutJob{dispatch_job, 0}}};
}

Execution sample_execution(std::string id, ExecutionStatus status) {
  Execution e;
  e.id = std::move(id);
  e.job_id = "0b6f3c1e-7d2a-4f5b-9c8d-1a2b3c4d5e6f";
  e.job_name = "billing.sync";
  e.namespace_ = "payments";
  e.job_version = 3;
  e.scheduled_time = absl::FromUnixSeconds(1710055800);
  e.trigger = Trigger::kCatchup;
  e.status = status;
  e.attempts = 1;
  e.started_at = absl::FromUnixMillis(1710055800004);
  e.node_id = "n1";
  return e;
}

StartExecutions sample_start() {
  Execution skipped =
      sample_execution("018e2b3c-4d5e-7f60-8a1b-000000000002", ExecutionStatus::kSkipped);
  skipped.error = "skipped: previous run still active";
  skipped.completed_at = skipped.started_at;
  return StartExecutions{
      {sample_execution("018e2b3c-4d5e-7f60-8a1b-000000000001", ExecutionStatus::kRunning),
       skipped},
      {ScheduleAdvance{"0b6f3c1e-7d2a-4f5b-9c8d-1a2b3c4d5e6f", absl::FromUnixSeconds(1710055800)},
       ScheduleAdvance{"other", absl::InfinitePast()}}};
}

FinishExecutions sample_finish() {
  ExecutionResult ok{"job-1", "exec-1", ExecutionStatus::kSuccess,
                     1,       200,      "{\"ok\":true}",
                     "",      "n1",     absl::FromUnixNanos(1710055801123456789)};
  ExecutionResult bad{"job-1",
                      "exec-2",
                      ExecutionStatus::kFailed,
                      3,
                      0,
                      std::string("\xff\x00bin", 5),
                      "connect: refused",
                      "n2",
                      absl::InfinitePast()};
  return FinishExecutions{{ok, bad}};
}

RedispatchExecutions sample_redispatch() {
  return RedispatchExecutions{{"job-1", "job-2"}, {"exec-1", "exec-9"}, {2, 5}, "n3"};
}

PruneExecutions sample_prune() { return PruneExecutions{"job-1", {"exec-1", "exec-2"}}; }

CommandBatch execution_batch() {
  return CommandBatch{{sample_start(), sample_finish(), sample_redispatch(), sample_prune()}};
}

void expect_round_trip(const CommandBatch& batch) {
  auto back = decode_batch(encode_batch(batch));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, batch);
}

TEST(BatchCodec, RoundTripsPutJob) { expect_round_trip(CommandBatch{{PutJob{full_job(), 6}}}); }

TEST(BatchCodec, RoundTripsDeleteJob) {
  expect_round_trip(CommandBatch{{DeleteJob{"some-id", 0}}});
}

TEST(BatchCodec, RoundTripsNoop) { expect_round_trip(CommandBatch{{Noop{}}}); }

TEST(BatchCodec, RoundTripsEmptyAndMixedBatches) {
  expect_round_trip(CommandBatch{});
  expect_round_trip(sample_batch());
}

TEST(BatchCodec, RoundTripsStartExecutions) { expect_round_trip(CommandBatch{{sample_start()}}); }

TEST(BatchCodec, RoundTripsFinishExecutionsWithBinaryResponse) {
  expect_round_trip(CommandBatch{{sample_finish()}});
}

TEST(BatchCodec, RoundTripsRedispatchExecutions) {
  expect_round_trip(CommandBatch{{sample_redispatch()}});
  RedispatchExecutions retry = sample_redispatch();
  retry.retry = true;
  retry.next_attempt_at = {absl::FromUnixSeconds(1'700'000'003), absl::InfinitePast()};
  expect_round_trip(CommandBatch{{retry}});
}

TEST(BatchCodec, RoundTripsPruneExecutions) { expect_round_trip(CommandBatch{{sample_prune()}}); }

TEST(BatchCodec, RoundTripsPutMemberWithTagEight) {
  const PutMember member{18446744073709551557ull, "n1", "127.0.0.1:7001", "127.0.0.1:8081"};
  expect_round_trip(CommandBatch{{member}});
  expect_round_trip(CommandBatch{{PutMember{42, "", "", ""}}});  // a removal
  EXPECT_EQ(encode_batch(CommandBatch{{member}})[9], static_cast<char>(8));
}

TEST(BatchCodec, RoundTripsEmptyExecutionCommands) {
  expect_round_trip(CommandBatch{
      {StartExecutions{}, FinishExecutions{}, RedispatchExecutions{}, PruneExecutions{}}});
}

TEST(BatchCodec, RoundTripsAResponseOfTheMaximumSize) {
  FinishExecutions finish = sample_finish();
  finish.results[0].response = std::string(kMaxResponseBytes, 'r');
  finish.results[1].response = std::string(kMaxResponseBytes, '\xfe');
  expect_round_trip(CommandBatch{{finish}});
}

TEST(BatchCodec, ExecutionCommandsUseTagsFourToSeven) {
  const CommandBatch batch = execution_batch();
  for (size_t i = 0; i < batch.commands.size(); ++i) {
    const std::string bytes = encode_batch(CommandBatch{{batch.commands[i]}});
    EXPECT_EQ(bytes[9], static_cast<char>(4 + i));
  }
}

TEST(BatchCodec, RejectsRedispatchWithUnequalLists) {
  RedispatchExecutions r = sample_redispatch();
  r.attempts.pop_back();
  auto back = decode_batch(encode_batch(CommandBatch{{r}}));
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.error().message.find("same length"), std::string::npos) << back.error().message;
}

TEST(BatchCodec, RejectsAnExecutionCommandWithAnotherCommandsPayload) {
  for (char tag = 4; tag <= 7; ++tag) {
    std::string bytes = encode_batch(CommandBatch{{DeleteJob{"j", 1}}});
    bytes[9] = tag;
    EXPECT_FALSE(decode_batch(bytes).ok()) << static_cast<int>(tag);
  }
  std::string bytes = encode_batch(CommandBatch{{sample_start()}});
  bytes[9] = 5;  // FinishExecutions tag, StartExecutions payload
  EXPECT_FALSE(decode_batch(bytes).ok());
}

TEST(BatchCodec, RejectsExecutionPayloadWithBadFields) {
  using nlohmann::json;
  auto entry = [](uint8_t tag, const json& payload) {
    const std::vector<uint8_t> p = json::to_msgpack(payload);
    std::string bytes = "CHRB";
    bytes.push_back(1);
    bytes.append(std::string("\x01\x00\x00\x00", 4));
    bytes.push_back(static_cast<char>(tag));
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((p.size() >> (8 * i)) & 0xff));
    bytes.append(p.begin(), p.end());
    return bytes;
  };
  // Sanity: the well-formed payloads decode.
  EXPECT_TRUE(decode_batch(entry(7, {{"job_id", "j"}, {"execution_ids", {"a"}}})).ok());
  EXPECT_TRUE(
      decode_batch(entry(4, {{"executions", json::array()}, {"schedule", json::array()}})).ok());
  // Missing, mistyped and out-of-range fields.
  EXPECT_FALSE(decode_batch(entry(7, {{"job_id", "j"}})).ok());
  EXPECT_FALSE(decode_batch(entry(7, {{"job_id", "j"}, {"execution_ids", {1}}})).ok());
  EXPECT_FALSE(
      decode_batch(entry(4, {{"executions", json::object()}, {"schedule", json::array()}})).ok());
  EXPECT_FALSE(
      decode_batch(entry(4, {{"executions", {json{{"id", "x"}}}}, {"schedule", json::array()}}))
          .ok());
  EXPECT_FALSE(
      decode_batch(entry(4, {{"executions", json::array()},
                             {"schedule", {json{{"job_id", "j"}, {"last_scheduled", "never"}}}}}))
          .ok());
  EXPECT_FALSE(decode_batch(entry(6, {{"job_ids", {"j"}},
                                      {"execution_ids", {"e"}},
                                      {"attempts", {int64_t{1} << 33}},
                                      {"node_id", "n"}}))
                   .ok());
  json result = {{"job_id", "j"}, {"execution_id", "e"}, {"status", "success"},
                 {"attempts", 1}, {"status_code", 200},  {"response", ""},
                 {"error", ""},   {"node_id", "n"},      {"completed_at", nullptr}};
  EXPECT_TRUE(decode_batch(entry(5, {{"results", {result}}})).ok());
  result["status"] = "finished";
  EXPECT_FALSE(decode_batch(entry(5, {{"results", {result}}})).ok());
  result["status"] = "success";
  result["surprise"] = true;
  auto r = decode_batch(entry(5, {{"results", {result}}}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("results[0].surprise"), std::string::npos) << r.error().message;
}

TEST(BatchCodec, ExecutionCommandsRejectEveryTruncation) {
  const std::string bytes = encode_batch(execution_batch());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_batch(std::string_view(bytes).substr(0, n)).ok()) << n;
  }
}

TEST(BatchCodec, ExecutionCommandsSurviveRandomCorruption) {
  const std::string good = encode_batch(execution_batch());
  std::mt19937 rng(20240311);
  for (int round = 0; round < 5000; ++round) {
    std::string bytes = good;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    (void)decode_batch(bytes);  // must not crash; may decode if the flip hit a value
  }
}

TEST(BatchCodec, StartsWithMagicAndVersion) {
  std::string bytes = encode_batch(sample_batch());
  EXPECT_EQ(bytes.substr(0, 4), "CHRB");
  EXPECT_EQ(bytes[4], 1);
  EXPECT_EQ(static_cast<uint8_t>(bytes[5]), 4);  // count, little-endian
}

TEST(BatchCodec, RejectsWrongVersion) {
  std::string bytes = encode_batch(sample_batch());
  bytes[4] = 2;
  auto r = decode_batch(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("version"), std::string::npos);
}

TEST(BatchCodec, RejectsBadMagic) {
  std::string bytes = encode_batch(sample_batch());
  bytes[0] = 'X';
  EXPECT_FALSE(decode_batch(bytes).ok());
}

TEST(BatchCodec, RejectsUnknownTag) {
  std::string bytes = encode_batch(CommandBatch{{Noop{}}});
  bytes[9] = 42;
  auto r = decode_batch(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("tag"), std::string::npos);
}

TEST(BatchCodec, RejectsEveryTruncation) {
  std::string bytes = encode_batch(sample_batch());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_batch(std::string_view(bytes).substr(0, n)).ok()) << n;
  }
}

TEST(BatchCodec, RejectsTrailingBytes) {
  EXPECT_FALSE(decode_batch(encode_batch(sample_batch()) + "x").ok());
}

TEST(BatchCodec, RejectsHugeCount) {
  std::string bytes = encode_batch(CommandBatch{});
  bytes[8] = static_cast<char>(0xff);
  EXPECT_FALSE(decode_batch(bytes).ok());
}

TEST(BatchCodec, RejectsPayloadOfWrongShape) {
  // A DeleteJob tag carrying a PutJob payload.
  std::string bytes = encode_batch(CommandBatch{{PutJob{full_job(), 0}}});
  bytes[9] = 2;
  EXPECT_FALSE(decode_batch(bytes).ok());
}

TEST(BatchCodec, RejectsDeeplyNestedPayloadWithoutRecursing) {
  std::string payload(100000, static_cast<char>(0x91));  // [[[[...
  payload.push_back(static_cast<char>(0xc0));
  std::string bytes = "CHRB";
  bytes.push_back(1);
  bytes.append(std::string("\x01\x00\x00\x00", 4));
  bytes.push_back(3);
  uint32_t len = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  bytes += payload;
  EXPECT_FALSE(decode_batch(bytes).ok());
}

TEST(BatchCodec, RejectsInvalidUtf8InStrings) {
  // Noop payload {"\xff": nil}.
  std::string payload = "\x81\xa1\xff\xc0";
  std::string bytes = "CHRB";
  bytes.push_back(1);
  bytes.append(std::string("\x01\x00\x00\x00", 4));
  bytes.push_back(3);
  bytes.append(std::string("\x04\x00\x00\x00", 4));
  bytes += payload;
  EXPECT_FALSE(decode_batch(bytes).ok());
}

TEST(BatchCodec, RejectsNonFiniteNumbers) {
  // DeleteJob payload {"job_id": "x", "expected_version": NaN}.
  std::string payload =
      "\x82\xa6job_id\xa1x\xb0"
      "expected_version\xcb\x7f\xf8";
  payload.append(6, '\0');
  std::string bytes = "CHRB";
  bytes.push_back(1);
  bytes.append(std::string("\x01\x00\x00\x00", 4));
  bytes.push_back(2);
  uint32_t len = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  bytes += payload;
  auto r = decode_batch(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("non-finite"), std::string::npos) << r.error().message;
}

TEST(BatchCodec, SurvivesRandomCorruption) {
  const std::string good = encode_batch(sample_batch());
  std::mt19937 rng(20240310);
  int decoded = 0;
  for (int round = 0; round < 5000; ++round) {
    std::string bytes = good;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    auto r = decode_batch(bytes);  // must not crash; may decode if the flip hit a value
    if (r.ok()) ++decoded;
  }
  SCOPED_TRACE(decoded);
  // Pure random bytes of assorted sizes as well.
  for (int round = 0; round < 2000; ++round) {
    std::string bytes = "CHRB";
    bytes.push_back(1);
    size_t n = rng() % 300;
    for (size_t i = 0; i < n; ++i) bytes.push_back(static_cast<char>(rng()));
    (void)decode_batch(bytes);
  }
}

// The documented layout, byte for byte: "CHRB", u8 version, u32 LE count,
// then (u8 tag, u32 LE length, MessagePack payload) per command.
TEST(BatchCodec, LayoutIsTheDocumentedLittleEndianFormat) {
  const std::string bytes = encode_batch(CommandBatch{{Noop{}, Noop{}}});
  // Noop's payload is the empty map, MessagePack 0x80.
  EXPECT_EQ(bytes, std::string("CHRB\x01\x02\0\0\0"
                               "\x03\x01\0\0\0\x80"
                               "\x03\x01\0\0\0\x80",
                               21));
  const std::string del = encode_batch(CommandBatch{{DeleteJob{"j", 1}}});
  const std::vector<uint8_t> payload =
      nlohmann::json::to_msgpack(nlohmann::json{{"job_id", "j"}, {"expected_version", 1}});
  ASSERT_EQ(del.size(), 9u + 5u + payload.size());
  EXPECT_EQ(del.substr(5, 4), std::string("\x01\0\0\0", 4));
  EXPECT_EQ(del[9], 2);
  EXPECT_EQ(static_cast<uint8_t>(del[10]), payload.size());
  EXPECT_EQ(del.substr(11, 3), std::string(3, '\0'));
  EXPECT_EQ(del.substr(14), std::string(payload.begin(), payload.end()));
}

// JSON arrays nested `depth` levels, a number at the bottom.
nlohmann::json nested_arrays(int depth) {
  nlohmann::json j = 1;
  for (int i = 0; i < depth; ++i) j = nlohmann::json::array({j});
  return j;
}

Job job_with_payload(const nlohmann::json& payload) {
  Job job = full_job();
  job.webhook.reset();
  job.dispatch = Dispatch{"nats", {{"url", "nats://n:4222"}, {"subject", "a.b"}}};
  job.dispatch->config["payload"] = payload;
  return job;
}

// model/limits.h: whatever validation lets through decodes from the log.
TEST(BatchCodec, JobWithPayloadAtTheValidationCapRoundTrips) {
  const Job job = job_with_payload(nested_arrays(kMaxPayloadDepth));
  ASSERT_TRUE(validate_job(job).ok()) << validate_job(job).error().message;
  expect_round_trip(CommandBatch{{PutJob{job, 0}}});
}

// Even without validation's payload cap, a job whose JSON form is as deep as
// the API lets a request body be (kMaxRequestJsonDepth) decodes; one level
// more than the codec allows does not.
TEST(BatchCodec, JobAsDeepAsTheRequestBodyLimitRoundTrips) {
  const int payload_depth = kMaxRequestJsonDepth - kPayloadWrapperDepth;
  expect_round_trip(CommandBatch{{PutJob{job_with_payload(nested_arrays(payload_depth)), 0}}});
  const int too_deep = kMaxBatchDecodeDepth - kBatchWrapperDepth - kPayloadWrapperDepth + 1;
  auto r = decode_batch(
      encode_batch(CommandBatch{{PutJob{job_with_payload(nested_arrays(too_deep)), 0}}}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("nesting too deep"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace chronos::model
