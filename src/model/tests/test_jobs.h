#pragma once

// Shared fixtures for the model tests.

#include "absl/time/time.h"
#include "model/job.h"
#include "model/job_codec.h"
#include "nlohmann/json.hpp"

namespace chronos::model::testing {

// Smallest valid create body: a webhook job.
inline nlohmann::json minimal_body() {
  return nlohmann::json{
      {"name", "nightly-report"},
      {"schedule", "0 3 * * *"},
      {"webhook", {{"url", "https://example.com/hook"}}},
  };
}

// A job using every field, with secrets, as the store would hold it.
inline Job full_job() {
  Job job;
  job.id = "0b6f3c1e-7d2a-4f5b-9c8d-1a2b3c4d5e6f";
  job.name = "billing.sync";
  job.namespace_ = "payments";
  job.description = "Syncs invoices";
  job.schedule = "*/5 * * * *";
  job.timezone = "Europe/Berlin";
  job.enabled = false;
  Webhook w;
  w.url = "https://user:pw@billing.example.com:8443/sync?x=1";
  w.method = "PUT";
  w.headers = {{"Content-Type", "application/json"}, {"Authorization", "Bearer abc"}};
  w.body = R"({"job":"{{.JobID}}"})";
  w.auth = WebhookAuth{.type = "basic", .username = "svc", .password = "s3cret"};
  w.success_codes = {{200, 299}, {304, 304}};
  w.tls_skip_verify = true;
  job.webhook = w;
  job.retry_policy = RetryPolicy{5, absl::Milliseconds(250), absl::Minutes(2), 1.5, 0.25};
  job.timeout = absl::Seconds(90);
  job.concurrency = Concurrency::kReplace;
  job.missed_run_policy = MissedRunPolicy::kExecuteAll;
  job.catchup_window = absl::Hours(6);
  job.jitter = absl::Seconds(30);
  job.tags = {{"team", "billing"}, {"tier/level", "1"}};
  job.dependencies = Dependencies{{"invoice-export", "ops/cleanup"}, "any_success"};
  job.created_at = absl::FromUnixNanos(1710055800123456789);
  job.updated_at = absl::FromUnixMicros(1710059400500000);
  job.version = 7;
  return job;
}

}  // namespace chronos::model::testing
