#include "node/node.h"

#include <atomic>
#include <filesystem>

#include "api/api.h"
#include "api/http_server.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "base/strings.h"
#include "dispatch/http_dispatcher.h"
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
    CHRONOS_ASSIGN_OR_RETURN(
        store_, store::Store::open((std::filesystem::path(config.data_dir) / "store").string()));

    raft::RaftConfig rc;
    rc.id = raft::raft_id_for(config.node_id);
    rc.address = config.raft_address;
    rc.dir = (std::filesystem::path(config.data_dir) / "raft").string();
    CHRONOS_ASSIGN_OR_RETURN(rc.bootstrap_voters, parse_peers(config.raft_peers));
    rc.heartbeat_timeout = config.heartbeat_timeout;
    rc.election_timeout = config.election_timeout;
    rc.snapshot_threshold = config.snapshot_threshold;
    rc.snapshot_trailing = std::min(config.snapshot_trailing, config.snapshot_threshold);
    // Applied entries reach the scheduler, which starts after Raft (it
    // proposes through it): through a holder filled in once it exists.
    auto sched_holder = std::make_shared<std::atomic<sched::Scheduler*>>(nullptr);
    rc.on_applied = [sched_holder](const model::CommandBatch& batch) {
      if (sched::Scheduler* s = sched_holder->load()) s->on_applied(batch);
    };
    CHRONOS_ASSIGN_OR_RETURN(raft_, raft::RaftNode::start(rc, store_.get()));

    dispatch::HttpDispatcherOptions dopt;
    dopt.version = CHRONOS_VERSION;
    dopt.max_in_flight = config.max_concurrent_dispatches;
    dopt.breaker.failure_threshold = static_cast<int>(config.breaker_failure_threshold);
    dopt.breaker.open_duration = config.breaker_open_duration;
    dopt.breaker.success_threshold = static_cast<int>(config.breaker_success_threshold);
    CHRONOS_ASSIGN_OR_RETURN(dispatcher_, dispatch::HttpDispatcher::start(dopt));

    sched::SchedulerOptions so;
    so.node_id = config.node_id;
    so.plan.late_grace = config.late_grace;
    so.history_max_per_job = config.history_max_per_job;
    so.history_max_age = config.history_max_age;
    scheduler_ = sched::Scheduler::start(so, store_.get(), raft_.get(), dispatcher_.get(),
                                         RealClock::instance(), &metrics_);
    sched_holder->store(scheduler_.get());

    api::ApiOptions ao;
    ao.node_id = config.node_id;
    ao.version = CHRONOS_VERSION;
    ao.job_defaults.missed_run_policy = config.missed_run_policy;
    api_ = std::make_unique<api::Api>(ao, store_.get(), raft_.get(), RealClock::instance(),
                                      &metrics_, dispatcher_.get(), scheduler_.get());
    // Proposal completions continue on the HTTP I/O threads. The server
    // exists only after it starts (it needs the handler), so the executor
    // reaches it through a holder filled in right after.
    auto server_holder = std::make_shared<std::atomic<api::HttpServer*>>(nullptr);
    api_->set_executor([server_holder](std::function<void()> fn) {
      if (api::HttpServer* server = server_holder->load()) {
        server->post(std::move(fn));
      } else {
        fn();
      }
    });

    api::HttpServerOptions ho;
    ho.address = config.http_address;
    ho.threads = config.http_threads;
    api::Api* api = api_.get();
    CHRONOS_ASSIGN_OR_RETURN(
        http_, api::HttpServer::start(ho, [api](api::HttpRequest req, api::Responder respond) {
          api->handle(std::move(req), std::move(respond));
        }));
    server_holder->store(http_.get());
    auto hp = api::split_host_port(config.http_address, "server.http.address");
    url_ = str_cat("http://", hp->first, ":", http_->port());
    return ok_status();
  }

  std::string url() const override { return url_; }

  void stop() override {
    // Order matters: stop taking requests; stop Raft, which fails what is
    // pending (those answers are posted to the HTTP executor); then let the
    // server drain every answer before it closes.
    if (http_) http_->stop_accepting();
    // The scheduler and dispatcher are stopped but kept alive until Raft
    // stops: Raft's apply hook and proposal callbacks still reach them.
    if (scheduler_) scheduler_->stop();
    if (dispatcher_) dispatcher_->stop();
    if (raft_) raft_->stop();
    if (http_) http_->stop();
    raft_.reset();
    scheduler_.reset();
    dispatcher_.reset();
    api_.reset();
    http_.reset();
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
