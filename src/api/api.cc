#include "api/api.h"

#include <optional>
#include <regex>
#include <string_view>
#include <vector>

#include "base/strings.h"
#include "base/ids.h"
#include "cron/schedule.h"
#include "model/job_codec.h"
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
// serialisers recurse, so unbounded depth would be a stack overflow; no valid
// job comes close.
constexpr int kMaxJsonDepth = 64;

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

Result<json> parse_json_object(const std::string& body) {
  if (body.empty()) return Error{ErrorCode::kInvalidJson, "request body is empty", {}};
  if (json_depth(body) > kMaxJsonDepth) {
    return Error{ErrorCode::kInvalidJson,
                 str_cat("request body nests deeper than ", kMaxJsonDepth, " levels"), {}};
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

}  // namespace

struct Api::Impl : std::enable_shared_from_this<Api::Impl> {
  ApiOptions options;
  store::Store* store;
  raft::RaftNode* raft;
  const Clock* clock;

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

  // Proposes one command and answers with what `on_effect` makes of its
  // effect. The completion runs on the Raft loop thread: it only formats.
  void propose_one(model::Command cmd, Responder respond,
                   std::function<HttpResponse(const store::CommandEffect&)> on_effect) {
    raft->propose(model::CommandBatch{{std::move(cmd)}},
                  [respond = std::move(respond), on_effect = std::move(on_effect)](
                      Result<store::ApplyOutcome> out) {
                    if (!out.ok()) {
                      respond(fail(out.error()));
                      return;
                    }
                    CHRONOS_CHECK(out->results.size() == 1) << "one command, one result";
                    const auto& r = out->results[0];
                    if (!r.ok()) {
                      respond(fail(r.error()));
                      return;
                    }
                    respond(on_effect(*r));
                  });
  }

  // Makes the next definition of a job from its current one; nullopt means
  // "nothing to change" (answered with the current job, no new version).
  using Rebuild = std::function<Result<std::optional<model::Job>>(const model::Job& current)>;

  // Read-modify-write of one job. With If-Match the client pinned a version
  // and a concurrent change is its 409. Without it the client asked for its
  // change to be applied to whatever is current, so a version race found at
  // apply time is retried on the fresh state (bounded).
  void update_job(const HttpRequest& req, const std::string& id_or_name, Rebuild rebuild,
                  Responder respond) {
    auto current = resolve_job(req, id_or_name);
    if (!current.ok()) return respond(fail(current.error()));
    auto pinned = check_if_match(req, *current);
    if (!pinned.ok()) return respond(fail(pinned.error()));
    attempt_update(*current, pinned->has_value(), std::move(rebuild), std::move(respond),
                   kMaxUpdateAttempts);
  }

  // The If-Match version, checked against the current one before proposing
  // (apply re-checks it, so a concurrent writer still gets 409).
  Result<std::optional<int64_t>> check_if_match(const HttpRequest& req,
                                                const model::Job& current) const {
    CHRONOS_ASSIGN_OR_RETURN(auto pinned, if_match_version(req));
    if (pinned && *pinned != current.version) {
      return Error{ErrorCode::kConflict,
                   str_cat("version mismatch: job is at version ", current.version,
                           ", If-Match has ", *pinned),
                   "version"};
    }
    return pinned;
  }

  static constexpr int kMaxUpdateAttempts = 8;

  void attempt_update(const model::Job& current, bool pinned, Rebuild rebuild, Responder respond,
                      int attempts_left) {
    auto next = rebuild(current);
    if (!next.ok()) return respond(fail(next.error()));
    if (!next->has_value()) return respond(ok(job_json(current)));
    model::Job job = std::move(**next);
    job.id = current.id;
    job.created_at = current.created_at;
    job.updated_at = clock->now();
    job.version = current.version + 1;
    auto self = shared_from_this();
    raft->propose(
        model::CommandBatch{{model::PutJob{std::move(job), current.version}}},
        [self, id = current.id, pinned, rebuild = std::move(rebuild),
         respond = std::move(respond), attempts_left](Result<store::ApplyOutcome> out) mutable {
          if (!out.ok()) return respond(fail(out.error()));
          CHRONOS_CHECK(out->results.size() == 1) << "one command, one result";
          const auto& r = out->results[0];
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

  // ---- routes ----

  void create_job(const HttpRequest& req, Responder respond) {
    auto body = parse_json_object(req.body);
    if (!body.ok()) return respond(fail(body.error()));
    auto job = model::job_from_request(*body, options.job_defaults);
    if (!job.ok()) return respond(fail(job.error()));
    if (body->contains("id")) {
      job->id = (*body)["id"].get<std::string>();
    } else {
      job->id = new_uuid_v4();
    }
    absl::Time now = clock->now();
    job->created_at = now;
    job->updated_at = now;
    job->version = 1;
    auto self = shared_from_this();
    propose_one(model::PutJob{std::move(job).value(), 0}, std::move(respond),
                [self](const store::CommandEffect& e) {
                  return ok(self->job_json(std::get<model::Job>(e)), 201);
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
    propose_one(model::DeleteJob{current->id, expected_version}, std::move(respond),
                [](const store::CommandEffect& e) {
                  return ok(json{{"id", std::get<model::Job>(e).id}, {"deleted", true}});
                });
  }

  void set_enabled(const HttpRequest& req, const std::string& id, bool enabled,
                   Responder respond) {
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

  void list_versions(const HttpRequest& req, const std::string& id, Responder respond) {
    auto current = resolve_job(req, id);
    if (!current.ok()) return respond(fail(current.error()));
    auto versions = store->list_versions(current->id);
    if (!versions.ok()) return respond(fail(versions.error()));
    json out = json::array();
    for (const auto& v : *versions) {
      out.push_back({{"version", v.version}, {"updated_at", model::format_time(v.updated_at)}});
    }
    respond(ok(json{{"versions", std::move(out)}}));
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
      if (!next) break;
      runs.push_back(model::format_time(*next));
      t = *next;
    }
    respond(ok(json{{"valid", true}, {"next_runs", std::move(runs)}}));
  }

  json cluster_status() const {
    raft::RaftStatus s = raft->status();
    json nodes = json::array();
    for (const auto& m : s.members) {
      bool self_node = m.id == s.id;
      nodes.push_back({{"id", self_node ? options.node_id : std::to_string(m.id)},
                       {"raft_id", std::to_string(m.id)},
                       {"address", m.address},
                       {"role", m.role},
                       {"is_leader", m.id == s.leader_id},
                       {"state", self_node ? std::string(raft::to_string(s.role))
                                           : (m.id == s.leader_id ? "leader" : "unknown")}});
    }
    json leader = nullptr;
    if (s.leader_id != 0) {
      leader = {{"id", s.leader_id == s.id ? options.node_id : std::to_string(s.leader_id)},
                {"address", s.leader_address}};
    }
    return json{{"node_id", options.node_id},
                {"raft_id", std::to_string(s.id)},
                {"address", s.address},
                {"state", raft::to_string(s.role)},
                {"leader", leader},
                {"term", s.term},
                {"commit_index", s.commit_index},
                {"applied_index", s.applied_index},
                {"last_index", s.last_index},
                {"ready", s.caught_up},
                {"version", options.version},
                {"nodes", std::move(nodes)}};
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
    if (path == "/ready") {
      if (m != "GET" && m != "HEAD") return respond(method_not_allowed());
      raft::RaftStatus s = raft->status();
      if (!s.caught_up) {
        return respond(fail(Error{s.leader_id == 0 ? ErrorCode::kNoLeader : ErrorCode::kUnavailable,
                                  s.leader_id == 0 ? "no leader" : "not caught up with the log",
                                  {}}));
      }
      return respond(ok(json{{"status", "ready"}}));
    }
    if (path.substr(0, kApiPrefix.size()) != kApiPrefix) return respond(not_found());
    path.remove_prefix(kApiPrefix.size());
    std::vector<std::string> seg;
    for (auto part : split_skip_empty(path, '/')) seg.emplace_back(part);

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
    return respond(not_found());
  }

  static HttpResponse not_found() { return fail_code(404, "NOT_FOUND", "no such route"); }
  static HttpResponse method_not_allowed() {
    return fail_code(405, "METHOD_NOT_ALLOWED", "method not allowed on this route");
  }
};

Api::Api(ApiOptions options, store::Store* store, raft::RaftNode* raft, const Clock* clock)
    : impl_(std::make_shared<Impl>()) {
  impl_->options = std::move(options);
  impl_->store = store;
  impl_->raft = raft;
  impl_->clock = clock;
}

void Api::handle(HttpRequest request, Responder respond) {
  impl_->route(std::move(request), std::move(respond));
}

}  // namespace chronos::api
