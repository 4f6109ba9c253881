#include "model/command.h"

#include <gtest/gtest.h>

#include <random>

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

}  // namespace
}  // namespace chronos::model
