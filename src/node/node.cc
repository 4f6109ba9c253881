#include "node/node.h"

#include <atomic>
#include <condition_variable>
#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "api/api.h"
#include "api/forwarder.h"
#include "api/http_server.h"
#include "base/clock.h"
#include "base/elapsed.h"
#include "base/metrics.h"
#include "base/strings.h"
#include "dispatch/http_dispatcher.h"
#include "nlohmann/json.hpp"
#include "raft/raft_node.h"
#include "sched/scheduler.h"
#include "spdlog/spdlog.h"
#include "store/store.h"

#ifndef CHRONOS_VERSION
#define CHRONOS_VERSION "0.0.0"
#endif

namespace chronos::node {
namespace {

// "id@host:port" or "host:port" (id = the address, hashed).
Result<std::vector<raft::Peer>> parse_peers(const std::vector<std::string>& peers) {
  std::vector<raft::Peer> out;
  for (const auto& p : peers) {
    auto at = p.find('@');
    std::string id = at == std::string::npos ? p : p.substr(0, at);
    std::string address = at == std::string::npos ? p : p.substr(at + 1);
    CHRONOS_RETURN_IF_ERROR(api::split_host_port(address, "cluster.raft.peers"));
    out.push_back({raft::raft_id_for(id), address});
  }
  return out;
}

// host:port of a join URL ("http://host:port/" or "host:port"; validated by
// the config).
std::string join_address(std::string_view url) {
  if (url.substr(0, 7) == "http://") url.remove_prefix(7);
  if (!url.empty() && url.back() == '/') url.remove_suffix(1);
  return std::string(url);
}

// The leader's commit index as a follower last saw it (for /ready). Shared
// between the registrar (writer) and the API (reader); lock-free.
class LeaderCommit {
 public:
  void set(uint64_t leader_id, uint64_t commit) {
    commit_.store(commit);
    leader_.store(leader_id);
    seen_ms_.store(now_ms());
  }
  // nullopt unless seen from `leader_id` within kFresh.
  std::optional<uint64_t> get(uint64_t leader_id) const {
    if (leader_id == 0 || leader_.load() != leader_id) return std::nullopt;
    if (now_ms() - seen_ms_.load() > kFreshMs) return std::nullopt;
    return commit_.load();
  }

 private:
  static constexpr int64_t kFreshMs = 2000;
  static int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  std::atomic<uint64_t> commit_{0};
  std::atomic<uint64_t> leader_{0};
  std::atomic<int64_t> seen_ms_{0};
};

// Keeps this node's record in the node registry (docs/cluster.md), for a
// node started with --join gets it added to the cluster, and on a follower
// polls the leader's commit index (GET /api/v1/cluster/status) into
// LeaderCommit.
//
//   leader:   its record missing or stale → propose PutMember itself
//   follower: its record missing or stale → POST /cluster/join with
//             register_only (records it, never adds it back after a
//             removal) to the leader's registered API address
//   joining:  not in the configuration yet → POST /cluster/join (voter) to
//             the --join address, once a second for at most kJoinFor
//
// One thread, waking every kPeriod; at most one request or proposal in
// flight. Thread safety: start/stop from the owner; the rest is internal.
class Registrar {
 public:
  Registrar(store::Store* store, raft::RaftNode* raft, api::Forwarder* forwarder,
            model::PutMember self, std::string join, std::shared_ptr<LeaderCommit> leader_commit)
      : store_(store),
        raft_(raft),
        forwarder_(forwarder),
        self_(std::move(self)),
        join_(std::move(join)),
        leader_commit_(std::move(leader_commit)),
        join_deadline_(std::chrono::steady_clock::now() + kJoinFor),
        thread_([this] { run(); }) {}

  ~Registrar() { stop(); }

  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      cv_.notify_all();
    }
    thread_.join();
    // A callback still in flight holds `state_` (shared) and finds it stopped.
  }

 private:
  static constexpr auto kPeriod = std::chrono::milliseconds(250);
  static constexpr auto kRetry = std::chrono::seconds(1);
  static constexpr auto kJoinFor = std::chrono::seconds(60);

  // Shared with callbacks that may outlive the registrar.
  struct State {
    std::atomic<bool> in_flight{false};       // registration or join
    std::atomic<bool> poll_in_flight{false};  // leader status poll
  };

  void run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      lock.unlock();
      step();
      lock.lock();
      cv_.wait_for(lock, kPeriod, [this] { return stopping_; });
    }
  }

  void step() {
    raft::RaftStatus s = raft_->status();
    if (s.role == raft::Role::kFollower && s.leader_id != 0) poll_leader_commit(s.leader_id);
    if (state_->in_flight.load()) return;
    auto now = std::chrono::steady_clock::now();
    if (now < next_attempt_) return;
    bool member = false;
    for (const auto& m : s.members) member = member || m.id == self_.raft_id;

    bool voter = false;
    for (const auto& m : s.members) voter = voter || (m.id == self_.raft_id && m.role == "voter");

    // A node started with --join asks until it is a voter (a promotion
    // can fail when it was slow to catch up; it is then left a spare).
    if (!join_.empty() && !joined_ && !voter) {
      if (now > join_deadline_) {
        if (!gave_up_) {
          spdlog::error(
              "cluster: could not join through {} within {}s; start the node again "
              "or add it with POST /api/v1/cluster/join",
              join_, kJoinFor.count());
          gave_up_ = true;
        }
        return;
      }
      return send_join(join_, "voter");
    }
    if (voter) joined_ = true;
    if (!member) return;

    auto records = store_->list_members();
    if (!records.ok()) return;
    std::string leader_http;
    for (const auto& r : *records) {
      if (r.raft_id == self_.raft_id && r.name == self_.name &&
          r.raft_address == self_.raft_address && r.http_address == self_.http_address) {
        return;  // up to date
      }
      if (r.raft_id == s.leader_id) leader_http = r.http_address;
    }
    if (s.role == raft::Role::kLeader && s.caught_up) {
      state_->in_flight = true;
      next_attempt_ = now + kRetry;
      auto state = state_;
      raft_->propose(model::CommandBatch{{self_}}, [state](Result<store::ApplyOutcome> r) {
        if (!r.ok()) spdlog::debug("cluster: registering this node: {}", r.error().message);
        state->in_flight = false;
      });
      return;
    }
    if (s.role == raft::Role::kFollower && !leader_http.empty()) send_join(leader_http, "");
  }

  std::string http_address_of(uint64_t raft_id) const {
    auto records = store_->list_members();
    if (!records.ok()) return "";
    for (const auto& r : *records) {
      if (r.raft_id == raft_id) return r.http_address;
    }
    return "";
  }

  void poll_leader_commit(uint64_t leader_id) {
    if (state_->poll_in_flight.load()) return;
    std::string address = http_address_of(leader_id);
    if (address.empty()) return;
    api::HttpRequest req;
    req.method = "GET";
    req.target = req.path = "/api/v1/cluster/status";
    state_->poll_in_flight = true;
    auto state = state_;
    auto leader_commit = leader_commit_;
    forwarder_->forward(
        req, address, [state, leader_commit, leader_id](Result<api::HttpResponse> r) {
          state->poll_in_flight = false;
          if (!r.ok() || r->status != 200) return;
          auto j = nlohmann::json::parse(r->body, nullptr, /*allow_exceptions=*/false);
          if (j.is_discarded()) return;
          const auto& data = j["data"];
          // Only the leader's own view counts (it may have stepped down since).
          if (!data.is_object() || data.value("state", "") != "leader") return;
          if (auto it = data.find("commit_index"); it != data.end() && it->is_number_unsigned()) {
            leader_commit->set(leader_id, it->get<uint64_t>());
          }
        });
  }

  void send_join(const std::string& address, std::string_view role) {
    nlohmann::json body{{"id", self_.name},
                        {"raft_id", std::to_string(self_.raft_id)},
                        {"raft_address", self_.raft_address},
                        {"http_address", self_.http_address}};
    if (!role.empty()) {
      body["role"] = role;
    } else {
      body["register_only"] = true;
    }
    api::HttpRequest req;
    req.method = "POST";
    req.target = req.path = "/api/v1/cluster/join";
    req.headers["content-type"] = "application/json";
    req.body = body.dump();
    state_->in_flight = true;
    next_attempt_ = std::chrono::steady_clock::now() + kRetry;
    auto state = state_;
    forwarder_->forward(req, address, [state, address](Result<api::HttpResponse> r) {
      if (!r.ok()) {
        spdlog::info("cluster: join request to {} failed: {}", address, r.error().message);
      } else if (r->status != 200) {
        spdlog::info("cluster: join request to {} answered {}: {}", address, r->status, r->body);
      }
      state->in_flight = false;
    });
  }

  store::Store* store_;
  raft::RaftNode* raft_;
  api::Forwarder* forwarder_;
  const model::PutMember self_;
  const std::string join_;  // host:port, or empty
  const std::shared_ptr<LeaderCommit> leader_commit_;
  const std::chrono::steady_clock::time_point join_deadline_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
  // Registrar thread only.
  std::chrono::steady_clock::time_point next_attempt_{};
  bool joined_ = false;
  bool gave_up_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;     // last: starts once everything above is set
};

class NodeImpl final : public Node {
 public:
  ~NodeImpl() override { stop(); }

  Status init(const NodeConfig& config) {
    config_ = config;
    std::error_code ec;
    std::filesystem::create_directories(config.data_dir, ec);
    if (ec) {
      return Error::validation("cluster.data_dir",
                               str_cat("cannot create ", config.data_dir, ": ", ec.message()));
    }
    CHRONOS_RETURN_IF_ERROR(api::split_host_port(config.raft_address, "cluster.raft.address"));
    // Start-up milestones, for the log (restart time is a measured figure).
    const auto t_open = std::chrono::steady_clock::now();
    CHRONOS_ASSIGN_OR_RETURN(
        store_, store::Store::open((std::filesystem::path(config.data_dir) / "store").string()));
    spdlog::info("store: opened in {} ms ({} job(s), applied index {})", ms_since(t_open),
                 store_->job_count(), store_->applied_index());

    raft::RaftConfig rc;
    rc.id = raft::raft_id_for(config.node_id);
    rc.address = config.raft_address;
    rc.dir = (std::filesystem::path(config.data_dir) / "raft").string();
    CHRONOS_ASSIGN_OR_RETURN(rc.bootstrap_voters, parse_peers(config.raft_peers));
    if (!rc.bootstrap_voters.empty()) {
      // This node is one of the initial voters: the entry with its name, or
      // (for the plain host:port form) its Raft address.
      const raft::Peer* me = nullptr;
      for (const auto& p : rc.bootstrap_voters) {
        if (p.id != rc.id && p.address != rc.address) continue;
        if (me != nullptr) {
          return Error::validation("cluster.raft.peers",
                                   str_cat("matches this node twice (cluster.node_id \"",
                                           config.node_id, "\" and cluster.raft.address ",
                                           config.raft_address, " name different entries)"));
        }
        me = &p;
      }
      if (me == nullptr) {
        return Error::validation(
            "cluster.raft.peers",
            str_cat("must include this node (cluster.node_id \"", config.node_id,
                    "\" or cluster.raft.address ", config.raft_address, ")"));
      }
      if (me->address != rc.address) {
        return Error::validation("cluster.raft.peers",
                                 str_cat("lists this node at ", me->address,
                                         " but cluster.raft.address is ", rc.address));
      }
      rc.id = me->id;
    }
    // A node joins only while it has no Raft state; afterwards its log holds
    // the configuration.
    const std::filesystem::path restored_marker =
        std::filesystem::path(config.data_dir) / "store" / std::string(store::kRestoredMarker);
    const bool restored = std::filesystem::exists(restored_marker, ec);
    if (!config.join.empty()) {
      rc.join = !std::filesystem::exists(rc.dir, ec) || std::filesystem::is_empty(rc.dir, ec);
      if (rc.join && (restored || store_->job_count() > 0)) {
        // Its data would sit under the other cluster's log and diverge.
        return Error::validation("cluster.join",
                                 "this data directory already holds jobs (a restored backup "
                                 "starts its own cluster): start it without --join, or join "
                                 "with an empty data directory");
      }
    }
    if (restored) {
      rc.compact_log_on_first_leadership = true;
      rc.on_log_compacted = [restored_marker] {
        std::error_code rm_ec;
        std::filesystem::remove(restored_marker, rm_ec);
      };
    }
    rc.heartbeat_timeout = config.heartbeat_timeout;
    rc.election_timeout = config.election_timeout;
    rc.snapshot_threshold = config.snapshot_threshold;
    rc.snapshot_trailing = std::min(config.snapshot_trailing, config.snapshot_threshold);
    // Applied entries reach the scheduler, which starts after Raft (it
    // proposes through it): through a holder filled in once it exists.
    auto sched_holder = std::make_shared<std::atomic<sched::Scheduler*>>(nullptr);
    rc.on_applied = [sched_holder](const model::CommandBatch& batch,
                                   const store::ApplyOutcome& outcome) {
      if (sched::Scheduler* s = sched_holder->load()) s->on_applied(batch, outcome);
    };
    const auto t_raft = std::chrono::steady_clock::now();
    CHRONOS_ASSIGN_OR_RETURN(raft_, raft::RaftNode::start(rc, store_.get()));
    spdlog::info("raft: log and snapshot loaded in {} ms", ms_since(t_raft));

    dispatch::HttpDispatcherOptions dopt;
    dopt.version = CHRONOS_VERSION;
    dopt.max_in_flight = config.max_concurrent_dispatches;
    dopt.breaker.failure_threshold = static_cast<int>(config.breaker_failure_threshold);
    dopt.breaker.open_duration = config.breaker_open_duration;
    dopt.breaker.success_threshold = static_cast<int>(config.breaker_success_threshold);
    CHRONOS_ASSIGN_OR_RETURN(dispatcher_, dispatch::HttpDispatcher::start(dopt));

    sched::Scheduler::Options so;
    so.driver.node_id = config.node_id;
    so.driver.plan.lookahead = config.lookahead;
    so.driver.plan.late_grace =
        config.late_grace.value_or(sched::default_late_grace(config.election_timeout));
    so.driver.history_max_per_job = config.history_max_per_job;
    so.driver.history_max_age = config.history_max_age;
    scheduler_ = sched::Scheduler::start(so, store_.get(), raft_.get(), dispatcher_.get(),
                                         RealClock::instance(), &metrics_);
    sched_holder->store(scheduler_.get());

    forwarder_ = api::Forwarder::start(api::ForwarderOptions{});
    // The registrar's own traffic (registration, join, the leader's commit
    // index for /ready) never queues behind client requests.
    api::ForwarderOptions control;
    control.workers = 2;
    control.max_queued = 16;
    control.request_timeout = absl::Seconds(5);
    control_forwarder_ = api::Forwarder::start(control);

    // The server binds first (the advertised API address needs its port);
    // requests that arrive before the API is wired get 503.
    api::HttpServerOptions ho;
    ho.address = config.http_address;
    ho.threads = config.http_threads;
    auto api_holder = std::make_shared<std::atomic<api::Api*>>(nullptr);
    CHRONOS_ASSIGN_OR_RETURN(
        http_,
        api::HttpServer::start(ho, [api_holder](api::HttpRequest req, api::Responder respond) {
          if (api::Api* api = api_holder->load())
            return api->handle(std::move(req), std::move(respond));
          api::HttpResponse r;
          r.status = 503;
          r.headers.emplace_back("Retry-After", "1");
          r.body =
              R"({"success":false,"error":{"code":"UNAVAILABLE","message":"node is starting"}})";
          respond(std::move(r));
        }));
    auto hp = api::split_host_port(config.http_address, "server.http.address");
    url_ = str_cat("http://", hp->first, ":", http_->port());
    // Other nodes reach this one at its Raft host when the API listens on
    // every interface.
    std::string advertised_host = hp->first;
    if (advertised_host.empty() || advertised_host == "0.0.0.0") {
      advertised_host = api::split_host_port(config.raft_address, "")->first;
    }
    std::string http_address = str_cat(advertised_host, ":", http_->port());

    auto leader_commit = std::make_shared<LeaderCommit>();
    api::ApiOptions ao;
    ao.node_id = config.node_id;
    ao.http_address = http_address;
    raft::RaftNode* raft = raft_.get();
    ao.leader_commit_index = [leader_commit, raft]() {
      return leader_commit->get(raft->status().leader_id);
    };
    ao.version = CHRONOS_VERSION;
    ao.job_defaults.missed_run_policy = config.missed_run_policy;
    api_ =
        std::make_unique<api::Api>(ao, store_.get(), raft_.get(), RealClock::instance(), &metrics_,
                                   dispatcher_.get(), scheduler_.get(), forwarder_.get());
    // Proposal completions continue on the HTTP I/O threads.
    api::HttpServer* server = http_.get();
    api_->set_executor([server](std::function<void()> fn) { server->post(std::move(fn)); });
    api_holder->store(api_.get());

    registrar_ = std::make_unique<Registrar>(
        store_.get(), raft_.get(), control_forwarder_.get(),
        model::PutMember{rc.id, config.node_id, config.raft_address, http_address},
        rc.join ? join_address(config.join) : std::string(), leader_commit);
    return ok_status();
  }

  std::string url() const override { return url_; }

  // On a leader with other voters: transfer leadership and wait (bounded by
  // the election timeout plus a margin) until another node leads.
  void hand_over_leadership() {
    raft::RaftStatus s = raft_->status();
    if (s.role != raft::Role::kLeader) return;
    int voters = 0;
    for (const auto& m : s.members) voters += m.role == "voter" ? 1 : 0;
    if (voters < 2) return;
    auto done = std::make_shared<std::promise<Status>>();
    auto result = done->get_future();
    raft_->transfer_leadership(0, [done](Status st) { done->set_value(std::move(st)); });
    auto wait = absl::ToChronoMilliseconds(config_.election_timeout + absl::Seconds(1));
    if (result.wait_for(wait) != std::future_status::ready) {
      spdlog::warn("cluster: leadership handover did not finish in time; stopping anyway");
      return;
    }
    Status st = result.get();
    if (st.ok()) {
      spdlog::info("cluster: handed leadership over before stopping");
    } else {
      spdlog::warn("cluster: leadership handover failed: {}", st.error().message);
    }
  }

  void stop() override {
    // Order matters: stop taking requests; hand leadership over (a rolling
    // restart then costs no election timeout); stop Raft, which fails what
    // is pending (those answers are posted to the HTTP executor); then let
    // the server drain every answer before it closes.
    if (http_) http_->stop_accepting();
    if (registrar_) registrar_->stop();
    if (raft_) hand_over_leadership();
    // The scheduler and dispatcher are stopped but kept alive until Raft
    // stops: Raft's apply hook and proposal callbacks still reach them.
    if (scheduler_) scheduler_->stop();
    if (dispatcher_) dispatcher_->stop();
    if (raft_) raft_->stop();
    // Forwarded requests still waiting on the leader are answered 503 now
    // rather than holding the drain below.
    if (forwarder_) forwarder_->stop();
    if (control_forwarder_) control_forwarder_->stop();
    if (http_) http_->stop();
    registrar_.reset();
    raft_.reset();
    scheduler_.reset();
    dispatcher_.reset();
    api_.reset();
    http_.reset();
    forwarder_.reset();
    control_forwarder_.reset();
    store_.reset();
  }

 private:
  NodeConfig config_;
  std::unique_ptr<store::Store> store_;
  metrics::Registry metrics_;
  std::unique_ptr<raft::RaftNode> raft_;
  std::unique_ptr<dispatch::HttpDispatcher> dispatcher_;
  std::unique_ptr<sched::Scheduler> scheduler_;
  std::unique_ptr<api::Api> api_;
  std::unique_ptr<api::HttpServer> http_;
  std::unique_ptr<api::Forwarder> forwarder_;
  std::unique_ptr<api::Forwarder> control_forwarder_;
  std::unique_ptr<Registrar> registrar_;
  std::string url_;
};

}  // namespace

Result<std::unique_ptr<Node>> Node::start(const NodeConfig& config) {
  auto node = std::make_unique<NodeImpl>();
  auto st = node->init(config);
  if (!st.ok()) {
    node->stop();
    return std::move(st).error();
  }
  return std::unique_ptr<Node>(std::move(node));
}

}  // namespace chronos::node
