#include <gtest/gtest.h>

#include "model/job_codec.h"
#include "model/tests/test_jobs.h"

namespace chronos::model {
namespace {

using nlohmann::json;
using testing::full_job;

Job patched(const Job& current, const char* patch) {
  auto r = apply_merge_patch(current, json::parse(patch), {});
  EXPECT_TRUE(r.ok()) << r.error().field << ": " << r.error().message;
  return r.ok() ? *r : Job{};
}

TEST(MergePatch, ChangesOnlyTheGivenField) {
  Job current = full_job();
  Job job = patched(current, R"({"description": "new"})");
  Job expected = current;
  expected.description = "new";
  EXPECT_EQ(job, expected);
}

TEST(MergePatch, NullResetsToDefault) {
  Job current = full_job();
  Job job = patched(current, R"({"timeout": null, "concurrency": null, "tags": null,
                                 "retry_policy": {"max_attempts": null}})");
  EXPECT_EQ(job.timeout, absl::Minutes(5));
  EXPECT_EQ(job.concurrency, Concurrency::kBufferOne);
  EXPECT_TRUE(job.tags.empty());
  EXPECT_EQ(job.retry_policy.max_attempts, 3);
  EXPECT_EQ(job.retry_policy.multiplier, current.retry_policy.multiplier);
}

TEST(MergePatch, NullMissedRunPolicyTakesServerDefault) {
  auto r = apply_merge_patch(full_job(), json::parse(R"({"missed_run_policy": null})"),
                             JobDefaults{MissedRunPolicy::kIgnore});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->missed_run_policy, MissedRunPolicy::kIgnore);
}

TEST(MergePatch, MergesNestedWebhookHeaders) {
  Job job =
      patched(full_job(), R"({"webhook": {"headers": {"X-New": "1", "Content-Type": null}}})");
  EXPECT_EQ(job.webhook->headers,
            (std::map<std::string, std::string>{{"Authorization", "Bearer abc"}, {"X-New", "1"}}));
  EXPECT_EQ(job.webhook->url, full_job().webhook->url);
}

TEST(MergePatch, KeepsSecretsItDoesNotTouch) {
  Job job = patched(full_job(), R"({"webhook": {"method": "POST"}})");
  ASSERT_TRUE(job.webhook->auth.has_value());
  EXPECT_EQ(job.webhook->auth->password, "s3cret");
  EXPECT_EQ(job.webhook->headers.at("Authorization"), "Bearer abc");
}

TEST(MergePatch, ChangingAuthTypeReplacesTheAuthObject) {
  Job job = patched(full_job(), R"({"webhook": {"auth": {"type": "bearer", "token": "t"}}})");
  EXPECT_EQ(job.webhook->auth, (WebhookAuth{.type = "bearer", .token = "t"}));
}

TEST(MergePatch, SwitchingToDispatchDropsTheWebhook) {
  Job job = patched(full_job(), R"({"dispatch": {"type": "nats", "url": "nats://n",
                                                "subject": "jobs"}})");
  EXPECT_FALSE(job.webhook.has_value());
  ASSERT_TRUE(job.dispatch.has_value());
  EXPECT_EQ(job.dispatch->type, "nats");
}

TEST(MergePatch, ChangingDispatchTypeReplacesTheConfig) {
  Job current = full_job();
  current.webhook.reset();
  current.dispatch = Dispatch{"kafka", json::parse(R"({"brokers":["k:1"],"topic":"t"})")};
  Job job = patched(current, R"({"dispatch": {"type": "nats", "url": "nats://n",
                                             "subject": "jobs"}})");
  EXPECT_EQ(job.dispatch->config, json::parse(R"({"url":"nats://n","subject":"jobs"})"));
}

TEST(MergePatch, CarriesServerFieldsOver) {
  Job current = full_job();
  Job job = patched(current, R"({"name": "renamed"})");
  EXPECT_EQ(job.name, "renamed");
  EXPECT_EQ(job.id, current.id);
  EXPECT_EQ(job.created_at, current.created_at);
  EXPECT_EQ(job.updated_at, current.updated_at);
  EXPECT_EQ(job.version, current.version);
}

TEST(MergePatch, RejectsServerFields) {
  for (const char* f : {"id", "created_at", "updated_at", "version", "next_run"}) {
    json patch = {{f, nullptr}};
    auto r = apply_merge_patch(full_job(), patch, {});
    ASSERT_FALSE(r.ok()) << f;
    EXPECT_EQ(r.error().field, f);
    EXPECT_NE(r.error().message.find("set by the server"), std::string::npos);
  }
}

TEST(MergePatch, ValidatesTheMergedJob) {
  auto r =
      apply_merge_patch(full_job(), json::parse(R"({"retry_policy": {"max_attempts": 0}})"), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().field, "retry_policy.max_attempts");
  auto unknown = apply_merge_patch(full_job(), json::parse(R"({"webhook": {"verb": "GET"}})"), {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().field, "webhook.verb");
  auto no_target = apply_merge_patch(full_job(), json::parse(R"({"webhook": null})"), {});
  ASSERT_FALSE(no_target.ok());
  EXPECT_EQ(no_target.error().field, "webhook");
}

TEST(MergePatch, RejectsDeeplyNestedPatchWithoutRecursing) {
  json patch = 1;
  for (int i = 0; i < 100000; ++i) patch = json{{"a", std::move(patch)}};
  auto r = apply_merge_patch(full_job(), patch, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("too deeply"), std::string::npos);
}

TEST(MergePatch, RejectsNonObjectPatch) {
  auto r = apply_merge_patch(full_job(), json::array(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kValidation);
}

}  // namespace
}  // namespace chronos::model
