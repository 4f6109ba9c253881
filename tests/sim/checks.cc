#include "sim/checks.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "base/strings.h"
#include "cron/schedule.h"
#include "fmt/format.h"
#include "sched/decide.h"
#include "store/snapshot_image.h"

namespace chronos::sim {

namespace {

bool scheduled_trigger(model::Trigger t) {
  return t == model::Trigger::kSchedule || t == model::Trigger::kCatchup;
}

std::string secs(absl::Time t, absl::Time epoch) {
  return fmt::format("{:.3f}s", absl::ToDoubleSeconds(t - epoch));
}

std::string ms(absl::Duration d) { return str_cat(absl::ToInt64Milliseconds(d), "ms"); }

// The store's whole keyspace as key -> value, read through its snapshot
// image. The applied index (m/applied_index) is included: every server
// applied the same entries at the same indexes, and a restored image
// carries the index of the last command entry it holds, as the leader's
// store did.
Result<std::map<std::string, std::string>> keyspace(store::Store& s) {
  CHRONOS_ASSIGN_OR_RETURN(std::string image, s.serialize_snapshot());
  CHRONOS_ASSIGN_OR_RETURN(store::SnapshotImage parsed, store::parse_snapshot_image(image));
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : parsed.pairs) out.emplace(std::string(k), std::string(v));
  return out;
}

Result<std::vector<model::Execution>> all_executions(store::Store& s, const std::string& job_id) {
  std::vector<model::Execution> out;
  store::ExecutionQuery q;
  q.job_id = job_id;
  q.limit = 1000;
  while (true) {
    CHRONOS_ASSIGN_OR_RETURN(store::ExecutionPage page, s.list_executions(q));
    for (auto& e : page.executions) out.push_back(std::move(e));
    if (page.next_cursor.empty()) return out;
    q.cursor = page.next_cursor;
  }
}

}  // namespace

CheckResult check_all(const CheckInput& in) {
  CheckResult res;
  // Times in messages are seconds since the seed's epoch, like the log.
  const absl::Time epoch = in.epoch;
  auto name_of = [&](const std::string& id) {
    auto it = in.names.find(id);
    return it == in.names.end() ? std::string(short_id(id)) : it->second;
  };
  auto fail = [&](const std::string& job_name, std::string msg,
                  std::optional<absl::Time> at = std::nullopt) {
    if (res.failures.empty()) {
      res.first_job = job_name;
      res.first_time = at;
    }
    res.failures.push_back(std::move(msg));
  };
  Cluster& c = *in.cluster;
  const unsigned n = c.size();

  // 1. No acknowledged job is lost.
  for (const auto& job : in.acked_jobs) {
    for (unsigned i = 0; i < n; ++i) {
      auto got = c.store(i).get_job(job.id);
      if (!got.ok()) {
        fail(job.name, str_cat("check 1 (lost job): n", i, " has no job ", job.name, " (", job.id,
                               ") although its creation was acknowledged"));
      } else if (!(*got == job)) {
        fail(job.name, str_cat("check 1 (lost job): n", i, " holds ", job.name,
                               " with a definition other than the acknowledged one"));
      }
    }
  }

  // 4. Every store holds the same state.
  auto reference = keyspace(c.store(0));
  if (!reference.ok()) {
    fail("", str_cat("check 4: cannot read n0's store: ", reference.error().message));
    return res;
  }
  for (unsigned i = 1; i < n; ++i) {
    auto other = keyspace(c.store(i));
    if (!other.ok()) {
      fail("", str_cat("check 4: cannot read n", i, "'s store: ", other.error().message));
      continue;
    }
    if (*other == *reference) continue;
    auto a = reference->begin();
    auto b = other->begin();
    while (a != reference->end() && b != other->end() && *a == *b) {
      ++a;
      ++b;
    }
    std::string where = a == reference->end()  ? str_cat("n", i, " has extra key ", b->first)
                        : b == other->end()    ? str_cat("n", i, " lacks key ", a->first)
                        : a->first != b->first ? str_cat("first differing keys ", a->first,
                                                         " (n0) and ", b->first, " (n", i, ")")
                                               : str_cat("values of ", a->first, " differ");
    fail("", str_cat("check 4 (divergence): the stores of n0 and n", i, " differ (",
                     reference->size(), " vs ", other->size(), " keys; ", where, ")"));
  }

  // The rest reads n0's store: the same as every other one when check 4
  // passed, and the one a client would read otherwise.
  store::Store& st = c.store(0);
  std::vector<model::Job> jobs;
  auto listed = st.for_each_job([&](const model::Job& j, const store::ScheduleState&) {
    jobs.push_back(j);
    return true;
  });
  if (!listed.ok()) {
    fail("", str_cat("cannot list jobs: ", listed.error().message));
    return res;
  }
  std::map<std::string, const model::Job*> job_by_id;
  for (const auto& j : jobs) job_by_id[j.id] = &j;

  std::map<std::string, model::Execution> exec_by_id;
  std::map<std::pair<std::string, absl::Time>, std::vector<const model::Execution*>> by_slot;
  std::map<std::string, std::vector<model::Execution>> execs;
  for (const auto& j : jobs) {
    auto list = all_executions(st, j.id);
    if (!list.ok()) {
      fail(j.name, str_cat("cannot list executions of ", j.name, ": ", list.error().message));
      return res;
    }
    execs[j.id] = std::move(list).value();
    res.executions += execs[j.id].size();
  }
  std::map<std::string, std::set<absl::Time>> ended_at;  // job id -> completed_at of its runs
  for (const auto& [job_id, list] : execs) {
    for (const auto& e : list) {
      exec_by_id[e.id] = e;
      if (e.completed_at != absl::InfinitePast()) ended_at[job_id].insert(e.completed_at);
    }
  }
  for (const auto& [id, e] : exec_by_id) {
    if (scheduled_trigger(e.trigger)) by_slot[{e.job_id, e.scheduled_time}].push_back(&e);
  }
  std::map<std::string, std::vector<const Delivery*>> deliveries;
  std::map<std::pair<std::string, absl::Time>, std::set<std::string>> delivered_slot;
  for (const auto& d : in.receiver->deliveries()) {
    deliveries[d.execution_id].push_back(&d);
    if (scheduled_trigger(d.trigger))
      delivered_slot[{d.job_id, d.scheduled_time}].insert(d.execution_id);
  }

  // 3. No run is started twice except as a re-dispatch under the same id.
  for (const auto& [slot, list] : by_slot) {
    if (list.size() <= 1) continue;
    std::string ids;
    for (const auto* e : list) {
      ids += str_cat(" #", short_id(e->id), " (", model::to_string(e->trigger), ", ",
                     model::to_string(e->status), ")");
    }
    const std::string name = name_of(slot.first);
    fail(name,
         str_cat("check 3 (double start): ", name, "# has ", list.size(),
                 " executions for its run at ", secs(slot.second, epoch), ":", ids),
         slot.second);
  }
  for (const auto& [slot, ids] : delivered_slot) {
    if (ids.size() <= 1) continue;
    std::string list;
    for (const auto& id : ids) list += str_cat(" #", short_id(id));
    const std::string name = name_of(slot.first);
    fail(name,
         str_cat("check 3 (double start): the target got ", name, "#'s run at ",
                 secs(slot.second, epoch), " under ", ids.size(), " execution ids:", list),
         slot.second);
  }
  for (const auto& d : in.receiver->deliveries()) {
    const std::string name = name_of(d.job_id);
    auto e = exec_by_id.find(d.execution_id);
    if (e == exec_by_id.end()) {
      fail(name,
           str_cat("check 3 (uncommitted dispatch): the target got ", name, "#",
                   short_id(d.execution_id), " at ", secs(d.at, epoch),
                   " but no such execution was committed"),
           d.at);
      continue;
    }
    auto j = job_by_id.find(d.job_id);
    if (scheduled_trigger(d.trigger) && j != job_by_id.end() &&
        d.at < d.scheduled_time + sched::jitter_offset(*j->second)) {
      fail(name,
           str_cat("check 2 (early run): ", name, "#", short_id(d.execution_id), " for ",
                   secs(d.scheduled_time, epoch), " was sent at ", secs(d.at, epoch),
                   ", before its fire time"),
           d.scheduled_time);
    }
  }
  for (const auto& [id, e] : exec_by_id) {
    if ((e.status == model::ExecutionStatus::kSuccess ||
         e.status == model::ExecutionStatus::kFailed) &&
        deliveries.count(id) == 0) {
      const std::string name = name_of(e.job_id);
      fail(name, str_cat("check 3 (phantom result): ", name, "#", short_id(id), " is ",
                         model::to_string(e.status), " but the target never got a request"));
    }
  }

  // 5. The attempt numbers a target sees for one execution go up, never
  //    back or sideways, whichever leader sent them.
  for (const auto& [id, list] : deliveries) {
    for (size_t k = 1; k < list.size(); ++k) {
      if (list[k]->attempt > list[k - 1]->attempt) continue;
      const std::string name = name_of(list[k]->job_id);
      fail(name,
           str_cat("check 5 (attempt order): ", name, "#", short_id(id), " for ",
                   secs(list[k]->scheduled_time, epoch), " was sent as attempt ",
                   list[k - 1]->attempt, " by n", list[k - 1]->server, " (term ", list[k - 1]->term,
                   ") at ", secs(list[k - 1]->at, epoch), ", then as attempt ", list[k]->attempt,
                   " by n", list[k]->server, " (term ", list[k]->term, ") at ",
                   secs(list[k]->at, epoch)),
           list[k]->scheduled_time);
      break;
    }
  }

  // 6. A leader that may have been replaced sends nothing: once a request
  //    from term t arrived, none from an older term does (the lease).
  {
    const Delivery* newest = nullptr;
    for (const auto& d : in.receiver->deliveries()) {
      if (newest != nullptr && d.term < newest->term) {
        const std::string name = name_of(d.job_id);
        fail(name,
             str_cat("check 6 (deposed leader sent): n", d.server, " (term ", d.term, ") sent ",
                     name, "#", short_id(d.execution_id), " attempt ", d.attempt, " at ",
                     secs(d.at, epoch), " after n", newest->server, " (term ", newest->term,
                     ") had sent ", name_of(newest->job_id), "#", short_id(newest->execution_id),
                     " at ", secs(newest->at, epoch)),
             d.scheduled_time);
        break;
      }
      if (newest == nullptr || d.term > newest->term) newest = &d;
    }
  }

  // 7. A run made late by a failover is never a reason to skip the next one
  //    (SPEC §3): a job whose target never fails and always answers well
  //    within its period overlaps itself only when the scheduler made a run
  //    late, so under forbid and buffer_one none of its runs is skipped.
  for (const auto& job : jobs) {
    auto profile = job.tags.find("sim");
    if (profile == job.tags.end() || profile->second != "fast") continue;
    if (job.concurrency != model::Concurrency::kForbid &&
        job.concurrency != model::Concurrency::kBufferOne) {
      continue;
    }
    for (const auto& e : execs[job.id]) {
      if (e.status != model::ExecutionStatus::kSkipped) continue;
      fail(
          job.name,
          str_cat("check 7 (skipped after a failover): ", job.name, "# (",
                  model::to_string(job.concurrency), ", a target that never fails) has its run at ",
                  secs(e.scheduled_time, epoch), " skipped: ", e.error),
          e.scheduled_time);
      break;
    }
  }

  // 2. Scheduled times are served, on time while a majority is up; the
  //    missed-run policy accounts for the rest.
  auto majority_throughout = [&](absl::Time from, absl::Time to) {
    for (const auto& iv : in.majority) {
      if (iv.from <= from && iv.to >= to) return true;
    }
    return false;
  };
  auto takeovers = [&](absl::Time from, absl::Time to) {
    int n = 0;
    for (const auto& s : in.leaders) n += s.from > from && s.from <= to;
    return n;
  };
  const Timing& tm = in.timing;
  for (const auto& job : jobs) {
    const std::string name = job.name;
    auto vis = in.visible_at.find(job.id);
    if (vis == in.visible_at.end()) {
      fail(name, str_cat("check 2: ", name, "# is stored but was never seen applied"));
      continue;
    }
    auto schedule = cron::Schedule::parse(job.schedule, job.timezone, job.created_at);
    if (!schedule.ok()) {
      fail(name, str_cat("check 2: ", name, "# has an unparsable schedule"));
      continue;
    }
    const absl::Duration off = sched::jitter_offset(job);
    std::vector<absl::Time> times;
    for (auto t = schedule->next_after(job.created_at); t && *t <= in.horizon;
         t = schedule->next_after(*t)) {
      times.push_back(*t);
    }
    std::optional<size_t> missing_from;
    for (size_t k = 0; k < times.size(); ++k) {
      const absl::Time t = times[k];
      const absl::Time fire = t + off;
      auto slot = by_slot.find({job.id, t});
      const model::Execution* e = slot == by_slot.end() ? nullptr : slot->second.front();
      const Stretch* served_by = nullptr;
      for (const auto& s : in.leaders) {
        const absl::Time x0 = std::max({s.from, fire, vis->second});
        if (x0 + tm.commit_margin <= std::min(s.to, fire + tm.late_grace)) {
          served_by = &s;
          break;
        }
      }
      const bool all = job.missed_run_policy == model::MissedRunPolicy::kExecuteAll;
      if (served_by != nullptr || all) ++res.required;
      if (e == nullptr) {
        if (served_by != nullptr) {
          fail(name,
               str_cat("check 2 (missed run): ", name, "# has no execution for ", secs(t, epoch),
                       " although n", served_by->server, " led with a majority from ",
                       secs(served_by->from, epoch), " to ", secs(served_by->to, epoch)),
               t);
        } else if (all) {
          fail(name,
               str_cat("check 2 (missed run): ", name, "# (execute_all) has no execution for ",
                       secs(t, epoch)),
               t);
        }
        if (served_by == nullptr && vis->second <= fire &&
            majority_throughout(fire, fire + tm.deadline)) {
          if (res.strict_misses++ == 0) {
            res.strict_example = str_cat(name, "# (", model::to_string(job.missed_run_policy),
                                         ") at ", secs(t, epoch));
          }
          if (in.strict) {
            fail(name,
                 str_cat("check 2 (strict): ", name, "# (", model::to_string(job.missed_run_policy),
                         ") has no execution for ", secs(t, epoch),
                         " although a majority was up until ", secs(fire + tm.deadline, epoch),
                         "; no leader was active within late_grace of it"),
                 t);
          }
        }
        if (!missing_from) missing_from = k;
        continue;
      }
      if (job.missed_run_policy == model::MissedRunPolicy::kIgnore &&
          e->trigger == model::Trigger::kCatchup) {
        fail(name,
             str_cat("check 2 (policy): ", name, "# (ignore) has a catch-up run for ",
                     secs(t, epoch)),
             t);
      }
      if (missing_from && job.missed_run_policy == model::MissedRunPolicy::kExecuteOne &&
          e->trigger != model::Trigger::kCatchup) {
        fail(name,
             str_cat("check 2 (policy): ", name, "# (execute_one) missed ",
                     secs(times[*missing_from], epoch), "..", secs(times[k - 1], epoch),
                     " but its next run, ", secs(t, epoch), ", is not a catch-up"),
             times[*missing_from]);
      }
      missing_from.reset();
      // The deadline covers one failover: it applies while a majority
      // stayed up and at most one new leader took over.
      if (served_by == nullptr || !majority_throughout(fire, fire + tm.deadline) ||
          takeovers(fire, fire + tm.deadline) > 1) {
        continue;
      }
      // A run that waited in its job's line became due when the run ahead
      // of it ended (the store starts it at that run's completed_at): the
      // deadline runs from then. Still waiting at the end is fine while a
      // run ahead of it is going; a line with nothing running is stuck.
      absl::Time due = fire;
      if (ended_at[job.id].count(e->started_at) != 0) due = std::max(due, e->started_at);
      if (due > in.horizon) continue;  // its turn came too close to the end to tell
      if (e->status == model::ExecutionStatus::kPending) {
        auto state = st.get_schedule_state(job.id);
        if (state.ok() && !state->running.empty()) continue;
        fail(name,
             str_cat("check 2 (stuck line): ", name, "#", short_id(e->id), " for ", secs(t, epoch),
                     " waits in its job's line with nothing running"),
             t);
        continue;
      }
      std::optional<absl::Time> fired;
      auto d = deliveries.find(e->id);
      if (d != deliveries.end()) {
        for (const auto* x : d->second) fired = fired ? std::min(*fired, x->at) : x->at;
      } else if (e->status == model::ExecutionStatus::kSkipped ||
                 e->status == model::ExecutionStatus::kCancelled) {
        fired = e->started_at;
      }
      if (!fired) {
        fail(name,
             str_cat("check 2 (late run): ", name, "#", short_id(e->id), " for ", secs(t, epoch),
                     " (", model::to_string(e->status),
                     ") was never sent although a majority stayed up"),
             t);
        continue;
      }
      res.max_lateness = std::max(res.max_lateness, *fired - due);
      if (*fired - due > tm.deadline) {
        fail(name,
             str_cat("check 2 (late run): ", name, "#", short_id(e->id), " for ", secs(t, epoch),
                     " first fired at ", secs(*fired, epoch), ", ", ms(*fired - due), " after ",
                     due == fire ? "its fire time" : "its turn in the line", " (deadline ",
                     ms(tm.deadline), ")"),
             t);
      }
    }
  }
  return res;
}

}  // namespace chronos::sim
