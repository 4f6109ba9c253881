// libFuzzer target for job bodies (SPEC §1): create/PUT parsing, PATCH, and
// the two JSON forms (model/job_codec.h).
//
// Input: a JSON document, as a client would send it. For every body that
// job_from_request accepts:
//  - the job passes validate_job,
//  - the internal form round-trips to an equal Job (as a value and through
//    MessagePack inside a PutJob batch, as the Raft log carries it),
//  - resending the internal form as a request (server fields dropped) gives
//    the same job back (GET -> edit -> PUT, secrets not redacted),
//  - the API form builds and serializes to text without throwing.
// Every object is also applied as a merge patch to two fixed valid jobs
// (webhook with secrets, kafka dispatch); an accepted patch gives a job that
// passes validate_job and round-trips the same way.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "absl/time/time.h"
#include "base/check.h"
#include "base/result.h"
#include "model/command.h"
#include "model/job.h"
#include "model/job_codec.h"
#include "nlohmann/json.hpp"

namespace {

using chronos::model::Job;
using nlohmann::json;

constexpr size_t kMaxInputBytes = 64 * 1024;
// nlohmann's dump, merge_patch and destructor recurse; the API refuses deeper
// bodies before they reach the codec.
constexpr int kMaxDepth = 64;

// Bracket depth of a JSON text, brackets inside strings not counted. Does not
// validate; parse() does that.
bool nesting_within(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

Job job_from_literal(const char* body) {
  chronos::Result<Job> job = chronos::model::job_from_request(json::parse(body), {});
  CHRONOS_CHECK(job.ok()) << "fixed job does not parse: " << job.error().field << ": "
                          << job.error().message;
  Job j = std::move(job).value();
  j.id = "0b6f3c1e-7d2a-4f5b-9c8d-1a2b3c4d5e6f";
  j.created_at = absl::FromUnixSeconds(1'710'055'800);
  j.updated_at = absl::FromUnixSeconds(1'710'059'400);
  j.version = 3;
  return j;
}

const Job& webhook_job() {
  static const Job kJob = job_from_literal(R"({
    "name": "billing.sync", "namespace": "payments", "description": "Syncs invoices",
    "schedule": "*/5 * * * *", "timezone": "Europe/Berlin",
    "webhook": {"url": "https://user:pw@billing.example.com:8443/sync?x=1", "method": "PUT",
                "headers": {"Content-Type": "application/json", "Authorization": "Bearer abc"},
                "body": "{\"job\":\"{{.JobID}}\"}",
                "auth": {"type": "basic", "username": "svc", "password": "s3cret"},
                "success_codes": ["200-299", 304], "tls_skip_verify": true},
    "retry_policy": {"max_attempts": 5, "initial_interval": "250ms", "max_interval": "2m",
                     "multiplier": 1.5, "jitter": 0.25},
    "timeout": "1m30s", "concurrency": "replace", "missed_run_policy": "execute_all",
    "catchup_window": "6h", "jitter": "30s", "tags": {"team": "billing", "tier/level": "1"},
    "dependencies": {"depends_on": ["invoice-export", "ops/cleanup"], "condition": "any_success"}
  })");
  return kJob;
}

const Job& kafka_job() {
  static const Job kJob = job_from_literal(R"({
    "name": "events", "schedule": "@every 90s",
    "dispatch": {"type": "kafka", "brokers": "k1:9092,k2:9092", "topic": "jobs", "key": "k",
                 "payload": {"a": [1, 2.5, null, true]}, "acks": "all", "compression": "zstd",
                 "sasl": {"mechanism": "PLAIN", "username": "u", "password": "p"}}
  })");
  return kJob;
}

// For failure messages; must not throw itself (invalid UTF-8 is replaced).
std::string show(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Invariants every accepted job satisfies; `what` names its origin.
void check_job(const Job& job, const char* what) {
  chronos::Status valid = chronos::model::validate_job(job);
  CHRONOS_CHECK(valid.ok()) << what << ": accepted job fails validate_job: " << valid.error().field
                            << ": " << valid.error().message;

  json internal = chronos::model::job_to_internal_json(job);
  chronos::Result<Job> back = chronos::model::job_from_internal_json(internal);
  CHRONOS_CHECK(back.ok()) << what << ": internal form does not load: " << back.error().field
                           << ": " << back.error().message << "\n"
                           << show(internal);
  CHRONOS_CHECK(*back == job) << what << ": internal form round trip changed the job\n"
                              << show(internal);

  chronos::model::CommandBatch batch;
  batch.commands.emplace_back(chronos::model::PutJob{job, job.version - 1});
  chronos::Result<chronos::model::CommandBatch> decoded =
      chronos::model::decode_batch(chronos::model::encode_batch(batch));
  CHRONOS_CHECK(decoded.ok()) << what
                              << ": PutJob batch does not decode: " << decoded.error().message
                              << "\n"
                              << show(internal);
  CHRONOS_CHECK(*decoded == batch) << what << ": PutJob batch round trip changed the job\n"
                                   << show(internal);

  // GET -> PUT: the internal form minus server fields is a valid request for
  // the same job.
  json request = internal;
  for (const char* f : {"created_at", "updated_at", "version"}) request.erase(f);
  if (job.id.empty()) request.erase("id");
  chronos::Result<Job> resent = chronos::model::job_from_request(request, {});
  CHRONOS_CHECK(resent.ok()) << what
                             << ": internal form is not a valid request: " << resent.error().field
                             << ": " << resent.error().message << "\n"
                             << show(request);
  Job expected = job;
  expected.created_at = resent->created_at;
  expected.updated_at = resent->updated_at;
  expected.version = resent->version;
  CHRONOS_CHECK(*resent == expected) << what << ": resending the internal form changed the job\n"
                                     << show(request);

  try {
    json api = chronos::model::job_to_api_json(job);
    CHRONOS_CHECK(api.is_object()) << what << ": API form is not an object";
    // The API sends it as text: dump() throws on invalid UTF-8 (e.g. a
    // redaction that cut a multi-byte character).
    (void)api.dump();
  } catch (const std::exception& e) {
    CHRONOS_CHECK(false) << what << ": API form does not build or serialize: " << e.what() << "\n"
                         << show(internal);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInputBytes) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (!nesting_within(text, kMaxDepth)) return 0;

  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return 0;

  chronos::Result<Job> job = chronos::model::job_from_request(j, {});
  if (job.ok()) {
    check_job(*job, "request");
  } else {
    CHRONOS_CHECK(job.error().code == chronos::ErrorCode::kValidation)
        << "request error with code " << chronos::error_code_name(job.error().code);
    CHRONOS_CHECK(!job.error().message.empty()) << "request error without a message";
  }

  for (const Job* current : {&webhook_job(), &kafka_job()}) {
    chronos::Result<Job> patched = chronos::model::apply_merge_patch(*current, j, {});
    if (!patched.ok()) {
      CHRONOS_CHECK(patched.error().code == chronos::ErrorCode::kValidation)
          << "patch error with code " << chronos::error_code_name(patched.error().code);
      continue;
    }
    CHRONOS_CHECK(patched->id == current->id && patched->version == current->version &&
                  patched->created_at == current->created_at)
        << "patch changed a server field";
    check_job(*patched, "patch");
  }
  return 0;
}
