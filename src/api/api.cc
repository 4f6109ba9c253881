#include "api/api.h"

#include <arpa/inet.h>

#include <deque>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/duration.h"
#include "base/ids.h"
#include "base/strings.h"
#include "cron/schedule.h"
#include "model/execution_codec.h"
#include "model/job_codec.h"
#include "model/limits.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace chronos::api {

using nlohmann::json;

namespace {

constexpr std::string_view kApiPrefix = "/api/v1";

int http_status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidJson:
    case ErrorCode::kValidation:
      return 400;
    case ErrorCode::kUnauthorized:
      return 401;
    case ErrorCode::kForbidden:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kPayloadTooLarge:
      return 413;
    case ErrorCode::kRateLimited:
      return 429;
    case ErrorCode::kNoLeader:
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

HttpResponse json_response(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

HttpResponse ok(const json& data, int status = 200) {
  return json_response(status, json{{"success", true}, {"data", data}});
}

HttpResponse fail(const Error& e) {
  json err{{"code", error_code_name(e.code)}, {"message", e.message}};
  if (!e.field.empty()) err["field"] = e.field;
  HttpResponse r = json_response(http_status_of(e.code), json{{"success", false}, {"error", err}});
  if (e.code == ErrorCode::kNoLeader || e.code == ErrorCode::kUnavailable) {
    r.headers.emplace_back("Retry-After", "1");
  }
  return r;
}

HttpResponse fail_code(int status, std::string_view code, std::string message) {
  return json_response(status,
                       json{{"success", false}, {"error", {{"code", code}, {"message", message}}}});
}

// Deepest nesting of arrays/objects accepted in a request body. nlohmann's
// serialisers recurse, so unbounded depth would be a stack overflow; the
// model ties this to what a log entry can carry (model/limits.h).
constexpr int kMaxJsonDepth = model::kMaxRequestJsonDepth;

// Nesting depth of a JSON text, ignoring brackets inside strings.
int json_depth(std::string_view text) {
  int depth = 0;
  int max_depth = 0;
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
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

// libraft's TCP transport takes IPv4 dotted quads only.
Status check_raft_address(const std::string& address) {
  if (address.size() > 64)
    return Error::validation("raft_address", "must be at most 64 characters");
  auto hp = split_host_port(address, "raft_address");
  if (!hp.ok()) return hp.error();
  in_addr ignored{};
  if (inet_pton(AF_INET, hp->first.c_str(), &ignored) != 1) {
    return Error::validation("raft_address", "must be an IPv4 address and port (a.b.c.d:port)");
  }
  return ok_status();
}

Result<json> parse_json_object(const std::string& body) {
  if (body.empty()) return Error{ErrorCode::kInvalidJson, "request body is empty", {}};
  if (json_depth(body) > kMaxJsonDepth) {
    return Error{ErrorCode::kInvalidJson,
                 str_cat("request body nests deeper than ", kMaxJsonDepth, " levels"),
                 {}};
  }
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Error{ErrorCode::kInvalidJson, "request body is not valid JSON", {}};
  }
  if (!j.is_object()) {
    return Error{ErrorCode::kInvalidJson, "request body must be a JSON object", {}};
  }
  return j;
}

// If-Match: a bare or quoted version number. nullopt when absent.
Result<std::optional<int64_t>> if_match_version(const HttpRequest& req) {
  const std::string* h = req.header("if-match");
  if (h == nullptr) return std::optional<int64_t>();
  std::string_view v = *h;
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  int64_t version = 0;
  if (!parse_int(v, &version) || version < 1) {
    return Error::validation("If-Match", "must be a job version number");
  }
  return std::optional<int64_t>(version);
}

Result<int64_t> parse_positive_int(std::string_view text, std::string_view field) {
  int64_t v = 0;
  if (!parse_int(text, &v) || v < 1) {
    return Error::validation(std::string(field), "must be a positive integer");
  }
  return v;
}

// The route template of a path, for metric labels: ids become {id}, {v},
// {eid}; anything that is not a known route is "other", so label values
// stay a small fixed set whatever clients send.
std::string route_label(std::string_view path) {
  if (path == "/health" || path == "/ready" || path == "/metrics") return std::string(path);
  if (path.substr(0, kApiPrefix.size()) != kApiPrefix) return "other";
  auto seg = split_skip_empty(path.substr(kApiPrefix.size()), '/');
  auto is = [&](size_t i, std::initializer_list<std::string_view> names) {
    if (i >= seg.size()) return false;
    for (auto n : names) {
      if (seg[i] == n) return true;
    }
    return false;
  };
  const std::string p(kApiPrefix);
  if (seg.size() == 2 &&
      ((is(0, {"schedules"}) && is(1, {"validate"})) || (is(0, {"webhooks"}) && is(1, {"test"})) ||
       (is(0, {"cluster"}) &&
        is(1, {"status", "nodes", "join", "transfer-leadership", "snapshot", "backup"})))) {
    return str_cat(p, "/", seg[0], "/", seg[1]);
  }
  if (seg.size() == 3 && is(0, {"cluster"}) && is(1, {"nodes"})) return p + "/cluster/nodes/{id}";
  if (seg.size() == 1 && is(0, {"jobs", "executions"})) return str_cat(p, "/", seg[0]);
  if (seg.empty() || !is(0, {"jobs"})) return "other";
  if (seg.size() == 2) return p + "/jobs/{id}";
  if (seg.size() == 3 &&
      is(2, {"enable", "disable", "pause", "resume", "versions", "trigger", "executions"})) {
    return str_cat(p, "/jobs/{id}/", seg[2]);
  }
  if (seg.size() == 4 && is(2, {"versions", "rollback"}))
    return str_cat(p, "/jobs/{id}/", seg[2], "/{v}");
  if (seg.size() == 4 && is(2, {"executions"})) return p + "/jobs/{id}/executions/{eid}";
  if (seg.size() == 5 && is(2, {"executions"}) && is(4, {"replay", "cancel"})) {
    return str_cat(p, "/jobs/{id}/executions/{eid}/", seg[4]);
  }
  return "other";
}

// The request method as a metric label (a fixed set).
std::string method_label(std::string_view m) {
  for (std::string_view known : {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}) {
    if (m == known) return std::string(known);
  }
  return "OTHER";
}

// Refuses query parameters a route does not know (docs/api.md).
Status check_query(const HttpRequest& req, std::initializer_list<std::string_view> known) {
  for (const auto& [k, v] : req.query) {
    bool ok = false;
    for (auto n : known) ok = ok || k == n;
    if (!ok) {
      std::string list;
      for (auto n : known) list = list.empty() ? std::string(n) : str_cat(list, ", ", n);
      return Error::validation(k,
                               str_cat("unknown query parameter \"", k, "\" (known: ", list, ")"));
    }
  }
  return ok_status();
}

}  // namespace

struct Api::Impl : std::enable_shared_from_this<Api::Impl> {
  explicit Impl(metrics::Registry& r)
      : http_requests(r.counter("chronos_http_requests_total", "HTTP requests answered.",
                                {"method", "route", "status"})),
        http_duration(r.histogram("chronos_http_request_duration_seconds",
                                  "Time from request to response.",
                                  metrics::latency_buckets_seconds())),
        jobs_total(r.gauge("chronos_jobs_total", "Jobs stored.")),
        raft_is_leader(r.gauge("chronos_raft_is_leader", "1 on the Raft leader.")),
        raft_term(r.gauge("chronos_raft_term", "Current Raft term.")),
        raft_commit_index(r.gauge("chronos_raft_commit_index", "Raft commit index.")),
        raft_applied_index(r.gauge("chronos_raft_applied_index", "Raft applied index.")),
        raft_peers(r.gauge("chronos_raft_peers", "Members of the Raft configuration.")),
        breaker_state(r.gauge("chronos_circuit_breaker_state",
                              "Circuit breaker per target: 0 closed, 1 half-open, 2 open.",
                              {"target"})) {}

  ApiOptions options;
  store::Store* store;
  raft::RaftNode* raft;
  const Clock* clock;
  metrics::Registry* registry = nullptr;
  dispatch::HttpDispatcher* dispatcher = nullptr;
  sched::Scheduler* scheduler = nullptr;
  Forwarder* forwarder = nullptr;
  metrics::Family<metrics::Counter>& http_requests;
  metrics::Family<metrics::Histogram>& http_duration;
  metrics::Family<metrics::Gauge>& jobs_total;
  metrics::Family<metrics::Gauge>& raft_is_leader;
  metrics::Family<metrics::Gauge>& raft_term;
  metrics::Family<metrics::Gauge>& raft_commit_index;
  metrics::Family<metrics::Gauge>& raft_applied_index;
  metrics::Family<metrics::Gauge>& raft_peers;
  metrics::Family<metrics::Gauge>& breaker_state;
  // Where completions of Raft proposals continue (the HTTP I/O threads), so
  // the Raft threads only hand off. Runs inline until set_executor().
  Api::Executor post = [](std::function<void()> fn) { fn(); };

  // Updates of one job run one at a time, in arrival order: each starts from
  // the state its predecessor left, so concurrent writers without If-Match
  // never see a version race among themselves. Bounded per job.
  static constexpr size_t kMaxQueuedUpdatesPerJob = 256;
  std::mutex updates_mu;
  // job id → updates waiting behind the running one; an entry exists while
  // one is running. guarded by updates_mu
  std::unordered_map<std::string, std::deque<std::function<void()>>> updates;

  // ---- helpers ----

  std::optional<absl::Time> next_run(const model::Job& job) const {
    if (!job.enabled) return std::nullopt;
    auto sched = cron::Schedule::parse(job.schedule, job.timezone, job.created_at);
    if (!sched.ok()) return std::nullopt;
    return sched->next_after(clock->now());
  }

  json job_json(const model::Job& job) const {
    json j = model::job_to_api_json(job);
    auto next = next_run(job);
    j["next_run"] = next ? json(model::format_time(*next)) : json(nullptr);
    return j;
  }

  // A job by id, or by name within ?namespace= (default "default").
  Result<model::Job> resolve_job(const HttpRequest& req, const std::string& id_or_name) const {
    if (is_uuid(id_or_name)) {
      auto job = store->get_job(id_or_name);
      if (job.ok() || job.error().code != ErrorCode::kNotFound) return job;
    }
    const std::string* ns = req.query_param("namespace");
    auto job = store->find_job(ns ? *ns : "default", id_or_name);
    if (!job.ok() && job.error().code == ErrorCode::kNotFound) {
      return Error::not_found(str_cat("job \"", id_or_name, "\" not found"));
    }
    return job;
  }

  // Proposes one command; `then` gets the command's own result (or the
  // proposal's error) on an I/O thread, never on the Raft loop.
  void propose_one(model::Command cmd, std::function<void(Result<store::CommandEffect>)> then) {
    auto self = shared_from_this();
    raft->propose(model::CommandBatch{{std::move(cmd)}},
                  [self, then = std::move(then)](Result<store::ApplyOutcome> out) mutable {
                    self->post([out = std::move(out), then = std::move(then)]() mutable {
                      if (!out.ok()) return then(std::move(out).error());
                      CHRONOS_CHECK(out->results.size() == 1) << "one command, one result";
                      then(std::move(out->results[0]));
                    });
                  });
  }

  // Runs `op` for job `job_id` once every earlier update of that job has
  // finished; `op` must call finish_update(job_id) exactly once when done.
  void queue_update(const std::string& job_id, std::function<void()> op, Responder& respond) {
    {
      std::lock_guard lock(updates_mu);
      auto it = updates.find(job_id);
      if (it != updates.end()) {
        if (it->second.size() >= kMaxQueuedUpdatesPerJob) {
          respond(fail(Error{ErrorCode::kUnavailable,
                             "too many concurrent updates of this job; retry later",
                             {}}));
          return;
        }
        it->second.push_back(std::move(op));
        return;
      }
      updates.emplace(job_id, std::deque<std::function<void()>>());
    }
    op();
  }

  void finish_update(const std::string& job_id) {
    std::function<void()> next;
    {
      std::lock_guard lock(updates_mu);
      auto it = updates.find(job_id);
      CHRONOS_CHECK(it != updates.end()) << "finish_update without a running update";
      if (it->second.empty()) {
        updates.erase(it);
        return;
      }
      next = std::move(it->second.front());
      it->second.pop_front();
    }
    post(std::move(next));
  }

  // Makes the next definition of a job from its current one; nullopt means
  // "nothing to change" (answered with the current job, no new version).
  using Rebuild = std::function<Result<std::optional<model::Job>>(const model::Job& current)>;

  // Read-modify-write of one job, queued behind earlier updates of the same
  // job (queue_update). With If-Match the client pinned a version and any
  // change since is its 409. Without it the change applies to whatever is
  // current; a version race with another writer (not through this queue)
  // found at apply time is retried on the fresh state, a bounded number of
  // times.
  void update_job(const HttpRequest& req, const std::string& id_or_name, Rebuild rebuild,
                  Responder respond) {
    auto current = resolve_job(req, id_or_name);
    if (!current.ok()) return respond(fail(current.error()));
    auto pinned = if_match_version(req);
    if (!pinned.ok()) return respond(fail(pinned.error()));
    std::string id = current->id;
    auto self = shared_from_this();
    // The queued op owns the responder; `respond` stays usable here only for
    // the refusal inside queue_update.
    auto shared_respond = std::make_shared<Responder>(std::move(respond));
    Responder refuse = [shared_respond](HttpResponse r) { (*shared_respond)(std::move(r)); };
    queue_update(
        id,
        [self, id, pinned = *pinned, rebuild = std::move(rebuild), shared_respond]() mutable {
          Responder done = [self, id, shared_respond](HttpResponse r) {
            (*shared_respond)(std::move(r));
            self->finish_update(id);
          };
          auto fresh = self->store->get_job(id);
          if (!fresh.ok()) return done(fail(fresh.error()));
          if (pinned && *pinned != fresh->version) {
            return done(fail(version_mismatch(fresh->version, *pinned)));
          }
          self->attempt_update(*fresh, pinned.has_value(), std::move(rebuild), std::move(done),
                               kMaxUpdateAttempts);
        },
        refuse);
  }

  static constexpr int kMaxUpdateAttempts = 8;

  void attempt_update(const model::Job& current, bool pinned, Rebuild rebuild, Responder respond,
                      int attempts_left) {
    auto next = rebuild(current);
    if (!next.ok()) return respond(fail(next.error()));
    if (!next->has_value()) return respond(ok(job_json(current)));
    model::Job job = std::move(**next);
    if (job.schedule != current.schedule || job.timezone != current.timezone) {
      if (auto st = check_schedule_has_future(job); !st.ok()) return respond(fail(st.error()));
    }
    job.id = current.id;
    job.created_at = current.created_at;
    job.updated_at = clock->now();
    job.version = current.version + 1;
    auto self = shared_from_this();
    propose_one(
        model::PutJob{std::move(job), current.version},
        [self, id = current.id, pinned, rebuild = std::move(rebuild), respond = std::move(respond),
         attempts_left](Result<store::CommandEffect> r) mutable {
          if (r.ok()) return respond(ok(self->job_json(std::get<model::Job>(*r))));
          if (r.error().code == ErrorCode::kConflict && !pinned && attempts_left > 1) {
            auto fresh = self->store->get_job(id);
            if (!fresh.ok()) return respond(fail(fresh.error()));
            return self->attempt_update(*fresh, pinned, std::move(rebuild), std::move(respond),
                                        attempts_left - 1);
          }
          respond(fail(r.error()));
        });
  }

  static Error version_mismatch(int64_t current, int64_t pinned) {
    return Error{
        ErrorCode::kConflict,
        str_cat("version mismatch: job is at version ", current, ", If-Match has ", pinned),
        "version"};
  }

  // A job whose schedule will never fire again (an @at in the past) is
  // refused when its schedule is set, as SPEC §2 refuses impossible ones.
  Status check_schedule_has_future(const model::Job& job) const {
    auto sched = cron::Schedule::parse(job.schedule, job.timezone, job.created_at);
    if (!sched.ok()) return sched.error();
    if (!sched->next_after(clock->now())) {
      return Error::validation("schedule", sched->is_one_off()
                                               ? "@at time is not in the future"
                                               : "schedule has no run in the future");
    }
    return ok_status();
  }

  // The If-Match version, checked against the current one before proposing
  // (apply re-checks it, so a concurrent writer still gets 409).
  Result<std::optional<int64_t>> check_if_match(const HttpRequest& req,
                                                const model::Job& current) const {
    CHRONOS_ASSIGN_OR_RETURN(auto pinned, if_match_version(req));
    if (pinned && *pinned != current.version) return version_mismatch(current.version, *pinned);
    return pinned;
  }

  // ---- routes ----

  void create_job(const HttpRequest& req, Responder respond) {
    auto body = parse_json_object(req.body);
    if (!body.ok()) return respond(fail(body.error()));
    auto job = model::job_from_request(*body, options.job_defaults);
    if (!job.ok()) return respond(fail(job.error()));
    // job_from_request keeps a client-chosen id only when it is a UUID.
    if (job->id.empty()) job->id = new_uuid_v4();
    absl::Time now = clock->now();
    job->created_at = now;
    job->updated_at = now;
    job->version = 1;
    if (auto st = check_schedule_has_future(*job); !st.ok()) return respond(fail(st.error()));
    auto self = shared_from_this();
    propose_one(model::PutJob{std::move(job).value(), 0},
                [self, respond = std::move(respond)](Result<store::CommandEffect> r) {
                  if (!r.ok()) return respond(fail(r.error()));
                  respond(ok(self->job_json(std::get<model::Job>(*r)), 201));
                });
  }

  void list_jobs(const HttpRequest& req, Responder respond) {
    store::ListQuery q;
    for (const auto& [k, v] : req.query) {
      if (k == "namespace") {
        q.namespace_ = v;
      } else if (k == "enabled") {
        if (v == "true") {
          q.enabled = true;
        } else if (v == "false") {
          q.enabled = false;
        } else {
          return respond(fail(Error::validation("enabled", "must be true or false")));
        }
      } else if (k == "q") {
        q.q = v;
      } else if (k == "cursor") {
        q.cursor = v;
      } else if (k == "limit") {
        int64_t limit = 0;
        if (!parse_int(v, &limit) || limit < 1 || limit > 1000) {
          return respond(fail(Error::validation("limit", "must be an integer between 1 and 1000")));
        }
        q.limit = static_cast<size_t>(limit);
      } else if (k.rfind("tag.", 0) == 0 && k.size() > 4) {
        q.tags[k.substr(4)] = v;
      } else if (k != "consistent") {
        return respond(fail(Error::validation(
            k,
            str_cat("unknown query parameter \"", k,
                    "\" (known: namespace, tag.<key>, enabled, q, limit, cursor, consistent)"))));
      }
    }
    auto page = store->list_jobs(q);
    if (!page.ok()) return respond(fail(page.error()));
    json jobs = json::array();
    for (const auto& job : page->jobs) jobs.push_back(job_json(job));
    respond(ok(json{{"jobs", std::move(jobs)}, {"next_cursor", page->next_cursor}}));
  }

  void get_job(const HttpRequest& req, const std::string& id, Responder respond) {
    auto job = resolve_job(req, id);
    if (!job.ok()) return respond(fail(job.error()));
    respond(ok(job_json(*job)));
  }

  void replace_job(const HttpRequest& req, const std::string& id, Responder respond) {
    auto body = parse_json_object(req.body);
    if (!body.ok()) return respond(fail(body.error()));
    auto job = model::job_from_request(*body, options.job_defaults);
    if (!job.ok()) return respond(fail(job.error()));
    update_job(
        req, id,
        [job = std::move(job).value()](
            const model::Job& current) -> Result<std::optional<model::Job>> {
          if (!job.id.empty() && job.id != current.id) {
            return Error::validation("id", "cannot be changed");
          }
          return std::optional<model::Job>(job);
        },
        std::move(respond));
  }

  void patch_job(const HttpRequest& req, const std::string& id, Responder respond) {
    auto body = parse_json_object(req.body);
    if (!body.ok()) return respond(fail(body.error()));
    update_job(
        req, id,
        [patch = std::move(body).value(), defaults = options.job_defaults](
            const model::Job& current) -> Result<std::optional<model::Job>> {
          CHRONOS_ASSIGN_OR_RETURN(auto job, model::apply_merge_patch(current, patch, defaults));
          return std::optional<model::Job>(std::move(job));
        },
        std::move(respond));
  }

  void delete_job(const HttpRequest& req, const std::string& id, Responder respond) {
    auto current = resolve_job(req, id);
    if (!current.ok()) return respond(fail(current.error()));
    auto pinned = check_if_match(req, *current);
    if (!pinned.ok()) return respond(fail(pinned.error()));
    int64_t expected_version = pinned->value_or(0);
    propose_one(model::DeleteJob{current->id, expected_version},
                [respond = std::move(respond)](Result<store::CommandEffect> r) {
                  if (!r.ok()) return respond(fail(r.error()));
                  respond(ok(json{{"id", std::get<model::Job>(*r).id}, {"deleted", true}}));
                });
  }

  void set_enabled(const HttpRequest& req, const std::string& id, bool enabled, Responder respond) {
    update_job(
        req, id,
        [enabled](const model::Job& current) -> Result<std::optional<model::Job>> {
          if (current.enabled == enabled) return std::optional<model::Job>();
          model::Job job = current;
          job.enabled = enabled;
          return std::optional<model::Job>(std::move(job));
        },
        std::move(respond));
  }

  // Newest first, paged: `limit` (1..1000, default 100) and `cursor` (the
  // `next_cursor` of the previous page: versions older than it follow).
  void list_versions(const HttpRequest& req, const std::string& id, Responder respond) {
    int64_t limit = 100;
    int64_t before = 0;
    for (const auto& [k, v] : req.query) {
      if (k == "limit") {
        if (!parse_int(v, &limit) || limit < 1 || limit > 1000) {
          return respond(fail(Error::validation("limit", "must be an integer between 1 and 1000")));
        }
      } else if (k == "cursor") {
        if (!v.empty() && (!parse_int(v, &before) || before < 1)) {
          return respond(fail(Error::validation("cursor", "is not a valid cursor")));
        }
      } else if (k != "namespace" && k != "consistent") {
        return respond(fail(Error::validation(
            k, str_cat("unknown query parameter \"", k, "\" (known: limit, cursor, namespace)"))));
      }
    }
    auto current = resolve_job(req, id);
    if (!current.ok()) return respond(fail(current.error()));
    auto versions = store->list_versions(current->id, before, static_cast<size_t>(limit));
    if (!versions.ok()) return respond(fail(versions.error()));
    // A full page may have a successor (possibly empty); a short one is last.
    std::string next_cursor;
    if (versions->size() == static_cast<size_t>(limit) && versions->back().version > 1) {
      next_cursor = std::to_string(versions->back().version);
    }
    json out = json::array();
    for (const auto& v : *versions) {
      out.push_back(json{{"version", v.version}, {"updated_at", model::format_time(v.updated_at)}});
    }
    respond(ok(json{{"versions", std::move(out)}, {"next_cursor", next_cursor}}));
  }

  void get_version(const HttpRequest& req, const std::string& id, const std::string& v,
                   Responder respond) {
    auto version = parse_positive_int(v, "version");
    if (!version.ok()) return respond(fail(version.error()));
    auto current = resolve_job(req, id);
    if (!current.ok()) return respond(fail(current.error()));
    auto job = store->get_job_version(current->id, *version);
    if (!job.ok()) return respond(fail(job.error()));
    json j = model::job_to_api_json(*job);
    respond(ok(j));
  }

  void rollback(const HttpRequest& req, const std::string& id, const std::string& v,
                Responder respond) {
    auto version = parse_positive_int(v, "version");
    if (!version.ok()) return respond(fail(version.error()));
    auto current = resolve_job(req, id);
    if (!current.ok()) return respond(fail(current.error()));
    auto old = store->get_job_version(current->id, *version);
    if (!old.ok()) return respond(fail(old.error()));
    // The old definition must still be valid today (e.g. a time zone that
    // was removed from tzdata); never store what a create would refuse.
    if (auto st = model::validate_job(*old); !st.ok()) return respond(fail(st.error()));
    update_job(
        req, current->id,
        [old = std::move(old).value()](const model::Job&) -> Result<std::optional<model::Job>> {
          return std::optional<model::Job>(old);
        },
        std::move(respond));
  }

  void validate_schedule(const HttpRequest& req, Responder respond) {
    auto body = parse_json_object(req.body);
    if (!body.ok()) return respond(fail(body.error()));
    for (const auto& [k, v] : body->items()) {
      if (k != "schedule" && k != "timezone" && k != "count" && k != "from") {
        return respond(fail(Error::validation(k, str_cat("unknown field \"", k, "\""))));
      }
    }
    if (!body->contains("schedule")) {
      return respond(fail(Error::validation("schedule", "is required")));
    }
    if (!(*body)["schedule"].is_string()) {
      return respond(fail(Error::validation("schedule", "must be a string")));
    }
    std::string tz = "UTC";
    if (body->contains("timezone")) {
      if (!(*body)["timezone"].is_string()) {
        return respond(fail(Error::validation("timezone", "must be a string")));
      }
      tz = (*body)["timezone"].get<std::string>();
    }
    int64_t count = 5;
    if (body->contains("count")) {
      const json& c = (*body)["count"];
      if (!c.is_number_integer() || c.get<int64_t>() < 1 || c.get<int64_t>() > 100) {
        return respond(fail(Error::validation("count", "must be an integer between 1 and 100")));
      }
      count = c.get<int64_t>();
    }
    absl::Time from = clock->now();
    if (body->contains("from")) {
      if (!(*body)["from"].is_string()) {
        return respond(fail(Error::validation("from", "must be an RFC 3339 time string")));
      }
      auto t = model::parse_time((*body)["from"].get<std::string>());
      if (!t.ok()) return respond(fail(Error::validation("from", t.error().message)));
      from = *t;
    }
    // @every is anchored at `from` here: a new job's phase starts at its
    // creation, which is what `from` = now previews.
    auto sched = cron::Schedule::parse((*body)["schedule"].get<std::string>(), tz, from);
    if (!sched.ok()) return respond(fail(sched.error()));
    json runs = json::array();
    absl::Time t = from;
    for (int64_t i = 0; i < count; ++i) {
      auto next = sched->next_after(t);
      if (!next || !model::in_rfc3339_range(*next)) break;
      runs.push_back(model::format_time(*next));
      t = *next;
    }
    respond(ok(json{{"valid", true}, {"next_runs", std::move(runs)}}));
  }

  // Gauges are sampled at scrape time; counters and histograms are live.
  HttpResponse render_metrics() {
    raft::RaftStatus s = raft->status();
    jobs_total.with().set(static_cast<double>(store->job_count()));
    raft_is_leader.with().set(s.role == raft::Role::kLeader ? 1 : 0);
    raft_term.with().set(static_cast<double>(s.term));
    raft_commit_index.with().set(static_cast<double>(s.commit_index));
    raft_applied_index.with().set(static_cast<double>(s.applied_index));
    raft_peers.with().set(static_cast<double>(s.members.size()));
    if (dispatcher != nullptr) {
      for (const auto& b : dispatcher->breaker().snapshot()) {
        breaker_state.with({b.key}).set(b.state == dispatch::BreakerState::kOpen       ? 2
                                        : b.state == dispatch::BreakerState::kHalfOpen ? 1
                                                                                       : 0);
      }
    }
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = registry->render();
    return r;
  }

  json circuit_breakers() const {
    json out = json::array();
    if (dispatcher == nullptr) return out;
    for (const auto& b : dispatcher->breaker().snapshot()) {
      out.push_back(json{{"target", b.key},
                         {"state", dispatch::to_string(b.state)},
                         {"consecutive_failures", b.consecutive_failures}});
    }
    return out;
  }

  // ---- executions ----

  // Reads a bool query parameter ("true"/"false"; absent → false).
  static Result<bool> bool_param(const HttpRequest& req, const std::string& name) {
    const std::string* v = req.query_param(name);
    if (v == nullptr || *v == "false") return false;
    if (*v == "true") return true;
    return Error::validation(name, "must be true or false");
  }

  // How long ?wait=true may wait: ?timeout= (duration, ≤ 10m), default 60s.
  static Result<absl::Duration> wait_timeout(const HttpRequest& req) {
    const std::string* v = req.query_param("timeout");
    if (v == nullptr) return absl::Seconds(60);
    auto d = parse_duration(*v);
    if (!d.ok() || *d <= absl::ZeroDuration() || *d > absl::Minutes(10)) {
      return Error::validation("timeout", "must be a duration between 1ms and 10m");
    }
    return *d;
  }

  // Answers a started execution (running, or pending behind an earlier run
  // under buffer_one): 202 with it, or (wait=true) 200 once its result is
  // committed (202 with its current state when the wait ends first). A run
  // the concurrency policy refused arrives as a 409 error.
  void answer_started(Result<model::Execution> started, bool wait, absl::Duration timeout,
                      Responder respond) {
    if (!started.ok()) return respond(fail(started.error()));
    if (!wait) return respond(ok(model::execution_to_api_json(*started), 202));
    auto self = shared_from_this();
    std::string job_id = started->job_id;
    std::string exec_id = started->id;
    scheduler->wait_for_result(
        job_id, exec_id, timeout,
        [self, job_id, exec_id, respond = std::move(respond)](Result<model::Execution> done) {
          self->post([self, job_id, exec_id, done = std::move(done), respond]() {
            if (done.ok()) return respond(ok(model::execution_to_api_json(*done)));
            auto now = self->store->get_execution(job_id, exec_id);
            if (!now.ok()) return respond(fail(done.error()));
            respond(ok(model::execution_to_api_json(*now), 202));
          });
        });
  }

  void start_run(const HttpRequest& req, sched::Scheduler::TriggerRequest tr, Responder respond) {
    if (auto st = check_query(req, {"force", "wait", "timeout", "namespace", "consistent"});
        !st.ok()) {
      return respond(fail(st.error()));
    }
    auto force = bool_param(req, "force");
    if (!force.ok()) return respond(fail(force.error()));
    auto wait = bool_param(req, "wait");
    if (!wait.ok()) return respond(fail(wait.error()));
    auto timeout = wait_timeout(req);
    if (!timeout.ok()) return respond(fail(timeout.error()));
    tr.force = *force;
    auto self = shared_from_this();
    scheduler->trigger(
        std::move(tr), [self, wait = *wait, timeout = *timeout,
                        respond = std::move(respond)](Result<model::Execution> started) mutable {
          self->post([self, started = std::move(started), wait, timeout,
                      respond = std::move(respond)]() mutable {
            self->answer_started(std::move(started), wait, timeout, std::move(respond));
          });
        });
  }

  void trigger_job(const HttpRequest& req, const std::string& id, Responder respond) {
    auto job = resolve_job(req, id);
    if (!job.ok()) return respond(fail(job.error()));
    sched::Scheduler::TriggerRequest tr;
    tr.job_id = job->id;
    tr.trigger = model::Trigger::kManual;
    start_run(req, std::move(tr), std::move(respond));
  }

  void replay_execution(const HttpRequest& req, const std::string& id, const std::string& eid,
                        Responder respond) {
    auto job = resolve_job(req, id);
    if (!job.ok()) return respond(fail(job.error()));
    auto exec = store->get_execution(job->id, eid);
    if (!exec.ok()) return respond(fail(exec.error()));
    sched::Scheduler::TriggerRequest tr;
    tr.job_id = job->id;
    tr.trigger = model::Trigger::kReplay;
    tr.replay_of = exec->id;
    start_run(req, std::move(tr), std::move(respond));
  }

  void cancel_execution(const HttpRequest& req, const std::string& id, const std::string& eid,
                        Responder respond) {
    if (auto st = check_query(req, {"namespace"}); !st.ok()) return respond(fail(st.error()));
    auto job = resolve_job(req, id);
    if (!job.ok()) return respond(fail(job.error()));
    auto self = shared_from_this();
    scheduler->cancel(job->id, eid,
                      [self, respond = std::move(respond)](Result<model::Execution> r) {
                        self->post([r = std::move(r), respond]() {
                          if (!r.ok()) return respond(fail(r.error()));
                          respond(ok(model::execution_to_api_json(*r)));
                        });
                      });
  }

  void get_execution(const HttpRequest& req, const std::string& id, const std::string& eid,
                     Responder respond) {
    if (auto st = check_query(req, {"namespace", "consistent"}); !st.ok()) {
      return respond(fail(st.error()));
    }
    auto job = resolve_job(req, id);
    if (!job.ok()) return respond(fail(job.error()));
    auto exec = store->get_execution(job->id, eid);
    if (!exec.ok()) return respond(fail(exec.error()));
    respond(ok(model::execution_to_api_json(*exec)));
  }

  void list_executions(const HttpRequest& req, const std::string& id, Responder respond) {
    store::ExecutionQuery q;
    for (const auto& [k, v] : req.query) {
      if (k == "status") {
        auto st = model::parse_execution_status(v);
        if (!st) {
          return respond(fail(Error::validation(
              "status", "must be one of pending, running, success, failed, skipped, cancelled")));
        }
        q.status = *st;
      } else if (k == "limit") {
        int64_t limit = 0;
        if (!parse_int(v, &limit) || limit < 1 || limit > 1000) {
          return respond(fail(Error::validation("limit", "must be an integer between 1 and 1000")));
        }
        q.limit = static_cast<size_t>(limit);
      } else if (k == "cursor") {
        q.cursor = v;
      } else if (k != "namespace" && k != "consistent") {
        return respond(fail(Error::validation(
            k, str_cat("unknown query parameter \"", k,
                       "\" (known: status, limit, cursor, namespace, consistent)"))));
      }
    }
    auto job = resolve_job(req, id);
    if (!job.ok()) return respond(fail(job.error()));
    q.job_id = job->id;
    auto page = store->list_executions(q);
    if (!page.ok()) return respond(fail(page.error()));
    json out = json::array();
    for (const auto& e : page->executions) out.push_back(model::execution_to_api_json(e));
    respond(ok(json{{"executions", std::move(out)}, {"next_cursor", page->next_cursor}}));
  }

  // GET /executions?status=running: executions in flight cluster-wide,
  // oldest first, paged by `limit` and `cursor` (the last id returned).
  void list_running(const HttpRequest& req, Responder respond) {
    size_t limit = 100;
    std::string after;
    for (const auto& [k, v] : req.query) {
      if (k == "status") {
        if (v != "running") {
          return respond(fail(Error::validation("status",
                                                "only status=running is listed across jobs; use "
                                                "/jobs/{id}/executions?status=... for one job")));
        }
      } else if (k == "limit") {
        int64_t n = 0;
        if (!parse_int(v, &n) || n < 1 || n > 1000) {
          return respond(fail(Error::validation("limit", "must be an integer between 1 and 1000")));
        }
        limit = static_cast<size_t>(n);
      } else if (k == "cursor") {
        if (!v.empty() && !is_uuid(v)) {
          return respond(fail(Error::validation("cursor", "is not a valid cursor")));
        }
        after = v;
      } else if (k != "consistent") {
        return respond(fail(Error::validation(
            k, str_cat("unknown query parameter \"", k, "\" (known: status, limit, cursor)"))));
      }
    }
    auto page = store->list_in_flight(after, limit);
    if (!page.ok()) return respond(fail(page.error()));
    json out = json::array();
    for (const auto& e : *page) out.push_back(model::execution_to_api_json(e));
    std::string next = page->size() == limit ? page->back().id : "";
    respond(ok(json{{"executions", std::move(out)}, {"next_cursor", next}}));
  }

  // POST /webhooks/test {"webhook": {...}, "timeout": "10s"}: one attempt,
  // nothing recorded.
  void test_webhook(const HttpRequest& req, Responder respond) {
    auto body = parse_json_object(req.body);
    if (!body.ok()) return respond(fail(body.error()));
    absl::Duration timeout = absl::Seconds(10);
    for (const auto& [k, v] : body->items()) {
      if (k == "timeout") {
        auto d = v.is_string() ? parse_duration(v.get<std::string>())
                               : Result<absl::Duration>(Error::validation("timeout", ""));
        if (!d.ok() || *d <= absl::ZeroDuration() || *d > absl::Minutes(1)) {
          return respond(
              fail(Error::validation("timeout", "must be a duration between 1ms and 1m")));
        }
        timeout = *d;
      } else if (k != "webhook") {
        return respond(fail(Error::validation(k, str_cat("unknown field \"", k, "\""))));
      }
    }
    if (!body->contains("webhook")) {
      return respond(fail(Error::validation("webhook", "is required")));
    }
    auto webhook = model::webhook_from_request((*body)["webhook"]);
    if (!webhook.ok()) return respond(fail(webhook.error().nested_in("webhook")));
    dispatch::HttpRequestSpec spec;
    spec.webhook = std::move(webhook).value();
    spec.job_id = "webhook-test";
    spec.job_name = "webhook-test";
    spec.execution_id = new_uuid_v7(clock->now());
    spec.scheduled_time = clock->now();
    spec.attempt = 1;
    spec.timeout = timeout;
    auto self = shared_from_this();
    dispatcher->submit(std::move(spec),
                       [self, respond = std::move(respond)](dispatch::AttemptOutcome o) {
                         self->post([o = std::move(o), respond]() {
                           json out{{"success", o.success()},
                                    {"outcome", dispatch::to_string(o.kind)},
                                    {"status_code", o.status_code},
                                    {"response", model::sanitize_utf8(o.response)},
                                    {"error", o.error},
                                    {"duration", format_duration(o.elapsed)}};
                           respond(ok(out));
                         });
                       });
  }

  // ---- cluster ----

  // The Raft configuration joined with the node registry (docs/cluster.md).
  json cluster_nodes(const raft::RaftStatus& s) const {
    std::vector<store::MemberRecord> records;
    if (auto r = store->list_members(); r.ok()) records = std::move(r).value();
    auto record_of = [&](uint64_t id) -> const store::MemberRecord* {
      for (const auto& rec : records) {
        if (rec.raft_id == id) return &rec;
      }
      return nullptr;
    };
    json nodes = json::array();
    for (const auto& m : s.members) {
      const store::MemberRecord* rec = record_of(m.id);
      bool self_node = m.id == s.id;
      std::string state = self_node             ? std::string(raft::to_string(s.role))
                          : m.id == s.leader_id ? "leader"
                          : s.role == raft::Role::kLeader && m.reachable.value_or(false)
                              ? "follower"
                              : "unknown";
      nodes.push_back(
          {{"id", self_node ? options.node_id
                  : rec     ? rec->name
                            : std::to_string(m.id)},
           {"raft_id", std::to_string(m.id)},
           {"address", m.address},
           {"raft_address", m.address},
           {"http_address", self_node ? json(options.http_address)
                            : rec     ? json(rec->http_address)
                                      : json(nullptr)},
           {"role", m.role},
           {"is_leader", m.id == s.leader_id},
           {"state", state},
           {"reachable", m.reachable ? json(*m.reachable) : json(nullptr)},
           {"last_contact_ms", m.last_contact_ms ? json(*m.last_contact_ms) : json(nullptr)},
           {"match_index", m.match_index ? json(*m.match_index) : json(nullptr)}});
    }
    return nodes;
  }

  // A member's name as the registry knows it, else its raft id.
  std::string member_name(uint64_t raft_id, const raft::RaftStatus& s) const {
    if (raft_id == s.id) return options.node_id;
    if (auto r = store->list_members(); r.ok()) {
      for (const auto& rec : *r) {
        if (rec.raft_id == raft_id) return rec.name;
      }
    }
    return std::to_string(raft_id);
  }

  // A member by name (registry or this node's) or by decimal raft id.
  Result<uint64_t> resolve_member(const std::string& id, const raft::RaftStatus& s) const {
    if (id == options.node_id) return s.id;
    if (auto r = store->list_members(); r.ok()) {
      for (const auto& rec : *r) {
        if (rec.name == id) return rec.raft_id;
      }
    }
    for (const auto& m : s.members) {
      if (std::to_string(m.id) == id || m.id == raft::raft_id_for(id)) return m.id;
    }
    return Error{ErrorCode::kNotFound, str_cat("no cluster member \"", id, "\""), "id"};
  }

  // GET /ready: a leader once it has applied everything committed (its
  // leadership barrier); a follower once it knows a leader and has applied
  // the leader's commit index.
  Status ready(const raft::RaftStatus& s) const {
    if (s.leader_id == 0) return Error{ErrorCode::kNoLeader, "no leader", {}};
    if (!s.caught_up) return Error{ErrorCode::kUnavailable, "not caught up with the log", {}};
    if (s.role == raft::Role::kLeader) return ok_status();
    std::optional<uint64_t> leader_commit =
        options.leader_commit_index ? options.leader_commit_index() : std::nullopt;
    if (!leader_commit) {
      return Error{ErrorCode::kUnavailable, "the leader's commit index is not known yet", {}};
    }
    if (s.applied_index < *leader_commit) {
      return Error{ErrorCode::kUnavailable,
                   str_cat("behind the leader: applied ", s.applied_index, " of ", *leader_commit),
                   {}};
    }
    return ok_status();
  }

  json cluster_status() const {
    raft::RaftStatus s = raft->status();
    json leader = nullptr;
    if (s.leader_id != 0) {
      leader = {{"id", member_name(s.leader_id, s)},
                {"raft_id", std::to_string(s.leader_id)},
                {"address", s.leader_address}};
    }
    return json{{"node_id", options.node_id},
                {"raft_id", std::to_string(s.id)},
                {"address", s.address},
                {"http_address", options.http_address},
                {"state", raft::to_string(s.role)},
                {"leader", leader},
                {"term", s.term},
                {"commit_index", s.commit_index},
                {"applied_index", s.applied_index},
                {"last_index", s.last_index},
                {"ready", ready(s).ok()},
                {"version", options.version},
                {"nodes", cluster_nodes(s)},
                {"circuit_breakers", circuit_breakers()}};
  }

  // Continues `fn(status)` on an I/O thread after a Raft callback.
  raft::RaftNode::DoneCallback on_io(std::function<void(Status)> fn) {
    auto self = shared_from_this();
    return [self, fn = std::move(fn)](Status st) mutable {
      self->post([fn = std::move(fn), st = std::move(st)]() mutable { fn(std::move(st)); });
    };
  }

  // POST /cluster/join {"id", "raft_address", "http_address"?, "role"?}:
  // adds the node to the Raft configuration (or re-assigns its role) and
  // records it in the node registry. Without "role" a new member becomes a
  // voter and an existing one keeps its role (how nodes re-register).
  void join(const HttpRequest& req, Responder respond) {
    auto body = parse_json_object(req.body);
    if (!body.ok()) return respond(fail(body.error()));
    for (auto it = body->begin(); it != body->end(); ++it) {
      if (it.key() != "id" && it.key() != "raft_address" && it.key() != "http_address" &&
          it.key() != "role" && it.key() != "register_only" && it.key() != "raft_id") {
        return respond(fail(Error::validation(
            it.key(),
            "unknown field (known: id, raft_id, raft_address, http_address, role, "
            "register_only)")));
      }
    }
    bool register_only = false;
    if (auto it = body->find("register_only"); it != body->end()) {
      if (!it->is_boolean())
        return respond(fail(Error::validation("register_only", "must be a boolean")));
      register_only = it->get<bool>();
    }
    auto string_field = [&](const char* name, bool required) -> Result<std::string> {
      auto it = body->find(name);
      if (it == body->end() || it->is_null()) {
        if (required) return Error::validation(name, "is required");
        return std::string();
      }
      if (!it->is_string() || it->get<std::string>().empty()) {
        return Error::validation(name, "must be a non-empty string");
      }
      return it->get<std::string>();
    };
    auto name = string_field("id", true);
    if (!name.ok()) return respond(fail(name.error()));
    if (name->size() > 128 || name->find('/') != std::string::npos) {
      return respond(fail(Error::validation("id", "must be at most 128 characters without '/'")));
    }
    auto raft_address = string_field("raft_address", true);
    if (!raft_address.ok()) return respond(fail(raft_address.error()));
    if (auto st = check_raft_address(*raft_address); !st.ok()) return respond(fail(st.error()));
    auto http_address = string_field("http_address", false);
    if (!http_address.ok()) return respond(fail(http_address.error()));
    if (!http_address->empty()) {
      if (http_address->size() > 255) {
        return respond(fail(Error::validation("http_address", "must be at most 255 characters")));
      }
      if (auto hp = split_host_port(*http_address, "http_address"); !hp.ok()) {
        return respond(fail(hp.error()));
      }
    }
    // The node's own raft id: nodes whose peer entry is the plain host:port
    // form have an id hashed from that address, not from their name.
    uint64_t raft_id = raft::raft_id_for(*name);
    if (auto it = body->find("raft_id"); it != body->end() && !it->is_null()) {
      if (!it->is_string() || !parse_int(it->get<std::string>(), &raft_id) || raft_id == 0) {
        return respond(
            fail(Error::validation("raft_id", "must be a positive integer as a string")));
      }
    }
    auto role_s = string_field("role", false);
    if (!role_s.ok()) return respond(fail(role_s.error()));

    raft::RaftStatus s = raft->status();
    raft::MemberRole role = raft::MemberRole::kVoter;
    if (!role_s->empty()) {
      auto parsed = raft::parse_member_role(*role_s);
      if (!parsed)
        return respond(fail(Error::validation("role", "must be voter, standby or spare")));
      role = *parsed;
    } else {
      for (const auto& m : s.members) {
        if (m.id == raft_id) role = raft::parse_member_role(m.role).value_or(role);
      }
    }
    if (http_address->empty()) {
      // Keep what the registry has (a re-join without it).
      if (auto r = store->list_members(); r.ok()) {
        for (const auto& rec : *r) {
          if (rec.raft_id == raft_id) *http_address = rec.http_address;
        }
      }
    }
    auto self = shared_from_this();
    model::PutMember record{raft_id, *name, *raft_address, *http_address};
    // register_only: a running node refreshing its registry record; the
    // loop thread checks membership, so a removed node that still runs is
    // never added back.
    raft->add_member(raft_id, *raft_address, role, register_only,
                     on_io([self, record, role, respond = std::move(respond)](Status st) mutable {
                       if (!st.ok()) return respond(fail(st.error()));
                       self->propose_one(record, [record, role, respond = std::move(respond)](
                                                     Result<store::CommandEffect> r) {
                         if (!r.ok()) return respond(fail(r.error()));
                         respond(ok(json{{"id", record.name},
                                         {"raft_id", std::to_string(record.raft_id)},
                                         {"raft_address", record.raft_address},
                                         {"http_address", record.http_address},
                                         {"role", raft::to_string(role)}}));
                       });
                     }));
  }

  void remove_node(const std::string& id, Responder respond) {
    raft::RaftStatus s = raft->status();
    auto raft_id = resolve_member(id, s);
    if (!raft_id.ok()) return respond(fail(raft_id.error()));
    std::string name = member_name(*raft_id, s);
    auto self = shared_from_this();
    raft->remove_member(*raft_id, on_io([self, raft_id = *raft_id, name,
                                         respond = std::move(respond)](Status st) mutable {
      if (!st.ok()) return respond(fail(st.error()));
      self->propose_one(model::PutMember{raft_id, "", "", ""}, [name, raft_id,
                                                                respond = std::move(respond)](
                                                                   Result<store::CommandEffect> r) {
        if (!r.ok()) return respond(fail(r.error()));
        respond(ok(json{{"id", name}, {"raft_id", std::to_string(raft_id)}, {"removed", true}}));
      });
    }));
  }

  void transfer_leadership(const HttpRequest& req, Responder respond) {
    raft::RaftStatus s = raft->status();
    uint64_t target = 0;
    if (!req.body.empty()) {
      auto body = parse_json_object(req.body);
      if (!body.ok()) return respond(fail(body.error()));
      for (auto it = body->begin(); it != body->end(); ++it) {
        if (it.key() != "id")
          return respond(fail(Error::validation(it.key(), "unknown field (known: id)")));
      }
      if (auto it = body->find("id"); it != body->end() && !it->is_null()) {
        if (!it->is_string()) return respond(fail(Error::validation("id", "must be a string")));
        auto id = resolve_member(it->get<std::string>(), s);
        if (!id.ok()) return respond(fail(id.error()));
        target = *id;
      }
    }
    auto self = shared_from_this();
    raft->transfer_leadership(target,
                              on_io([self, respond = std::move(respond)](Status st) mutable {
                                if (!st.ok()) return respond(fail(st.error()));
                                raft::RaftStatus now = self->raft->status();
                                json leader = nullptr;
                                if (now.leader_id != 0) {
                                  leader = {{"id", self->member_name(now.leader_id, now)},
                                            {"raft_id", std::to_string(now.leader_id)}};
                                }
                                respond(ok(json{{"transferred", true}, {"leader", leader}}));
                              }));
  }

  void snapshot(Responder respond) {
    auto self = shared_from_this();
    raft->take_snapshot([self, respond = std::move(respond)](Result<uint64_t> r) mutable {
      self->post([r = std::move(r), respond = std::move(respond)]() mutable {
        if (!r.ok()) return respond(fail(r.error()));
        respond(ok(json{{"index", *r}}));
      });
    });
  }

  // ---- forwarding (docs/cluster.md "Reads, writes and forwarding") ----

  static bool is_write(const HttpRequest& req, const std::vector<std::string>& seg) {
    if (req.method == "GET" || req.method == "HEAD") return false;
    // Pure computations answer anywhere.
    if (seg.size() == 2 && seg[0] == "schedules" && seg[1] == "validate") return false;
    return true;
  }

  // Sends the request to the leader when this node is not it. Returns false
  // when the request is to be handled here.
  bool forward_if_follower(const HttpRequest& req, Responder& respond) {
    raft::RaftStatus s = raft->status();
    if (s.role == raft::Role::kLeader) return false;
    if (req.header("x-chronos-forwarded") != nullptr) {
      // Never forward twice: leadership moved while the request travelled.
      respond(fail(
          Error{ErrorCode::kNoLeader, "this node is no longer the leader; retry the request", {}}));
      return true;
    }
    if (s.leader_id == 0 || forwarder == nullptr) {
      respond(
          fail(Error{ErrorCode::kNoLeader, "no leader is known (an election is under way)", {}}));
      return true;
    }
    std::string leader_http;
    if (auto r = store->list_members(); r.ok()) {
      for (const auto& rec : *r) {
        if (rec.raft_id == s.leader_id) leader_http = rec.http_address;
      }
    }
    if (leader_http.empty()) {
      respond(fail(Error{
          ErrorCode::kNoLeader,
          str_cat("the leader (raft id ", s.leader_id, ") has not registered its API address yet"),
          {}}));
      return true;
    }
    std::string me = options.node_id;
    // Marks the hop so the receiver never forwards it again.
    HttpRequest hop = req;
    hop.headers["x-chronos-forwarded"] = me;
    // A trigger that waits for its result may take its whole ?timeout= on
    // the leader; anything else gets the forwarder's short default. (An
    // invalid timeout is the leader's to refuse.)
    absl::Duration timeout = absl::ZeroDuration();
    if (const std::string* w = req.query_param("wait"); w != nullptr && *w == "true") {
      auto wait = wait_timeout(req);
      timeout = (wait.ok() ? *wait : absl::Seconds(60)) + absl::Seconds(10);
    }
    forwarder->forward(
        hop, leader_http,
        [me, respond = std::move(respond)](Result<HttpResponse> r) mutable {
          if (!r.ok()) return respond(fail(r.error()));
          r->headers.emplace_back("X-Chronos-Forwarded-By", me);
          respond(std::move(r).value());
        },
        timeout);
    return true;
  }

  // GET /cluster/backup: the store's consistent image (the same bytes a Raft
  // snapshot carries), read off the I/O thread's hot path only in that it
  // is one RocksDB snapshot scan.
  void backup(Responder respond) const {
    auto image = store->serialize_snapshot();
    if (!image.ok()) return respond(fail(image.error()));
    auto index = store::Store::snapshot_applied_index(*image);
    HttpResponse r;
    r.content_type = "application/octet-stream";
    r.headers.emplace_back("X-Chronos-Applied-Index", std::to_string(index.ok() ? *index : 0));
    r.headers.emplace_back("Content-Disposition", "attachment; filename=\"chronos-backup.bin\"");
    r.body = std::move(image).value();
    respond(std::move(r));
  }

  // ---- dispatch ----

  void route(HttpRequest req, Responder respond) {
    const std::string& m = req.method;
    std::string_view path = req.path;
    if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);

    if (path == "/health") {
      if (m != "GET" && m != "HEAD") return respond(method_not_allowed());
      return respond(ok(json{{"status", "ok"}}));
    }
    if (path == "/metrics") {
      if (m != "GET") return respond(method_not_allowed());
      return respond(render_metrics());
    }
    if (path == "/ready") {
      if (m != "GET" && m != "HEAD") return respond(method_not_allowed());
      if (auto st = ready(raft->status()); !st.ok()) return respond(fail(st.error()));
      return respond(ok(json{{"status", "ready"}}));
    }
    if (path.substr(0, kApiPrefix.size()) != kApiPrefix ||
        (path.size() > kApiPrefix.size() && path[kApiPrefix.size()] != '/')) {
      return respond(not_found());
    }
    path.remove_prefix(kApiPrefix.size());
    std::vector<std::string> seg;
    for (auto part : split_skip_empty(path, '/')) seg.emplace_back(part);

    // ?consistent=true: a linearizable read. A barrier through the log
    // proves this node is still the leader and has applied everything
    // committed before the request arrived; the read then runs locally. A
    // follower forwards it (and every write) to the leader. This node's own
    // cluster view (status, nodes) is always answered here.
    const std::string* c = req.query_param("consistent");
    if (c != nullptr && *c != "true" && *c != "false") {
      return respond(fail(Error::validation("consistent", "must be true or false")));
    }
    const bool consistent_read = m == "GET" && c != nullptr && *c == "true";
    const bool local_only =
        seg.size() == 2 && seg[0] == "cluster" &&
        (seg[1] == "status" || seg[1] == "nodes" || (seg[1] == "backup" && !consistent_read));
    if (!local_only && (consistent_read || is_write(req, seg)) &&
        forward_if_follower(req, respond)) {
      return;
    }
    if (consistent_read && !local_only) {
      auto self = shared_from_this();
      auto shared_req = std::make_shared<HttpRequest>(std::move(req));
      raft->barrier([self, shared_req, seg = std::move(seg),
                     respond = std::move(respond)](Status st) mutable {
        self->post([self, shared_req, seg = std::move(seg), respond = std::move(respond),
                    st = std::move(st)]() mutable {
          if (!st.ok()) return respond(fail(st.error()));
          self->dispatch(*shared_req, seg, std::move(respond));
        });
      });
      return;
    }
    // A follower installing the leader's snapshot holds part of it until
    // the restore ends: its own view of the cluster is answered, nothing
    // read from the store is.
    const bool cluster_view = local_only && seg[1] != "backup";
    if (!cluster_view && store->restoring()) {
      return respond(fail(Error{ErrorCode::kUnavailable,
                                "this node is restoring a snapshot sent by the leader; retry in a "
                                "moment, or read with ?consistent=true (served by the leader)",
                                {}}));
    }
    dispatch(req, seg, std::move(respond));
  }

  void dispatch(const HttpRequest& req, const std::vector<std::string>& seg, Responder respond) {
    const std::string& m = req.method;

    if (seg.size() == 1 && seg[0] == "jobs") {
      if (m == "POST") return create_job(req, std::move(respond));
      if (m == "GET") return list_jobs(req, std::move(respond));
      return respond(method_not_allowed());
    }
    if (seg.size() == 2 && seg[0] == "jobs") {
      if (m == "GET") return get_job(req, seg[1], std::move(respond));
      if (m == "PUT") return replace_job(req, seg[1], std::move(respond));
      if (m == "PATCH") return patch_job(req, seg[1], std::move(respond));
      if (m == "DELETE") return delete_job(req, seg[1], std::move(respond));
      return respond(method_not_allowed());
    }
    if (seg.size() == 3 && seg[0] == "jobs") {
      const std::string& action = seg[2];
      if (action == "enable" || action == "resume" || action == "disable" || action == "pause") {
        if (m != "POST") return respond(method_not_allowed());
        return set_enabled(req, seg[1], action == "enable" || action == "resume",
                           std::move(respond));
      }
      if (action == "versions") {
        if (m != "GET") return respond(method_not_allowed());
        return list_versions(req, seg[1], std::move(respond));
      }
      if (action == "trigger") {
        if (m != "POST") return respond(method_not_allowed());
        return trigger_job(req, seg[1], std::move(respond));
      }
      if (action == "executions") {
        if (m != "GET") return respond(method_not_allowed());
        return list_executions(req, seg[1], std::move(respond));
      }
    }
    if (seg.size() == 4 && seg[0] == "jobs" && seg[2] == "executions") {
      if (m != "GET") return respond(method_not_allowed());
      return get_execution(req, seg[1], seg[3], std::move(respond));
    }
    if (seg.size() == 5 && seg[0] == "jobs" && seg[2] == "executions") {
      if (seg[4] == "replay") {
        if (m != "POST") return respond(method_not_allowed());
        return replay_execution(req, seg[1], seg[3], std::move(respond));
      }
      if (seg[4] == "cancel") {
        if (m != "POST") return respond(method_not_allowed());
        return cancel_execution(req, seg[1], seg[3], std::move(respond));
      }
    }
    if (seg.size() == 1 && seg[0] == "executions") {
      if (m != "GET") return respond(method_not_allowed());
      return list_running(req, std::move(respond));
    }
    if (seg.size() == 2 && seg[0] == "webhooks" && seg[1] == "test") {
      if (m != "POST") return respond(method_not_allowed());
      return test_webhook(req, std::move(respond));
    }
    if (seg.size() == 4 && seg[0] == "jobs") {
      if (seg[2] == "versions") {
        if (m != "GET") return respond(method_not_allowed());
        return get_version(req, seg[1], seg[3], std::move(respond));
      }
      if (seg[2] == "rollback") {
        if (m != "POST") return respond(method_not_allowed());
        return rollback(req, seg[1], seg[3], std::move(respond));
      }
    }
    if (seg.size() == 2 && seg[0] == "schedules" && seg[1] == "validate") {
      if (m != "POST") return respond(method_not_allowed());
      return validate_schedule(req, std::move(respond));
    }
    if (seg.size() == 2 && seg[0] == "cluster" && seg[1] == "status") {
      if (m != "GET") return respond(method_not_allowed());
      return respond(ok(cluster_status()));
    }
    if (seg.size() == 2 && seg[0] == "cluster" && seg[1] == "nodes") {
      if (m != "GET") return respond(method_not_allowed());
      return respond(ok(cluster_nodes(raft->status())));
    }
    if (seg.size() == 3 && seg[0] == "cluster" && seg[1] == "nodes") {
      if (m != "DELETE") return respond(method_not_allowed());
      return remove_node(seg[2], std::move(respond));
    }
    if (seg.size() == 2 && seg[0] == "cluster" && seg[1] == "join") {
      if (m != "POST") return respond(method_not_allowed());
      return join(req, std::move(respond));
    }
    if (seg.size() == 2 && seg[0] == "cluster" && seg[1] == "transfer-leadership") {
      if (m != "POST") return respond(method_not_allowed());
      return transfer_leadership(req, std::move(respond));
    }
    if (seg.size() == 2 && seg[0] == "cluster" && seg[1] == "snapshot") {
      if (m != "POST") return respond(method_not_allowed());
      return snapshot(std::move(respond));
    }
    if (seg.size() == 2 && seg[0] == "cluster" && seg[1] == "backup") {
      if (m != "GET") return respond(method_not_allowed());
      return backup(std::move(respond));
    }
    return respond(not_found());
  }

  static HttpResponse not_found() { return fail_code(404, "NOT_FOUND", "no such route"); }
  static HttpResponse method_not_allowed() {
    return fail_code(405, "METHOD_NOT_ALLOWED", "method not allowed on this route");
  }
};

Api::Api(ApiOptions options, store::Store* store, raft::RaftNode* raft, const Clock* clock,
         metrics::Registry* metrics, dispatch::HttpDispatcher* dispatcher,
         sched::Scheduler* scheduler, Forwarder* forwarder)
    : impl_(std::make_shared<Impl>(*metrics)) {
  impl_->scheduler = scheduler;
  impl_->forwarder = forwarder;
  impl_->options = std::move(options);
  impl_->store = store;
  impl_->raft = raft;
  impl_->clock = clock;
  impl_->registry = metrics;
  impl_->dispatcher = dispatcher;
}

void Api::set_executor(Executor executor) { impl_->post = std::move(executor); }

void Api::handle(HttpRequest request, Responder respond) {
  // Every response is counted by method, route template and status.
  std::string method = method_label(request.method);
  std::string route = route_label(request.path);
  absl::Duration start = impl_->clock->monotonic();
  auto impl = impl_;
  impl_->route(std::move(request), [impl, method = std::move(method), route = std::move(route),
                                    start, respond = std::move(respond)](HttpResponse r) {
    impl->http_requests.with({method, route, std::to_string(r.status)}).inc();
    impl->http_duration.with().observe(absl::ToDoubleSeconds(impl->clock->monotonic() - start));
    respond(std::move(r));
  });
}

}  // namespace chronos::api
