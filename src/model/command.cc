#include "model/command.h"

#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <type_traits>

#include "base/bytes.h"
#include "base/check.h"
#include "base/strings.h"
#include "model/execution_codec.h"
#include "model/job_codec.h"
#include "model/json_fields.h"
#include "model/limits.h"

namespace chronos::model {
namespace {

using internal::Json;

constexpr std::string_view kMagic = "CHRB";
constexpr uint8_t kFormatVersion = 1;
constexpr size_t kCommandHeaderBytes = 1 + 4;  // tag, length
// Deep enough for any job an API request can produce (model/limits.h);
// shallow enough that nlohmann's recursive reader and destructor cannot
// exhaust the stack on hostile input.
constexpr int kMaxMsgpackDepth = kMaxBatchDecodeDepth;

enum class Tag : uint8_t {
  kPutJob = 1,
  kDeleteJob = 2,
  kNoop = 3,
  kStartExecutions = 4,
  kFinishExecutions = 5,
  kRedispatchExecutions = 6,
  kPruneExecutions = 7,
  kPutMember = 8,
};
constexpr Tag kLastTag = Tag::kPutMember;

Error corrupt(std::string_view what) {
  return Error::internal(str_cat("corrupt command batch: ", what));
}

// Walks a MessagePack value without recursion and checks that it is exactly
// one well-formed value of the kinds our JSON uses (no bin/ext), that
// strings are UTF-8 and that nesting stays within kMaxMsgpackDepth. Only then
// is it handed to nlohmann, whose reader recurses.
Status check_msgpack(std::string_view in) {
  size_t pos = 0;
  // Values still to read per open container; the bottom entry is the root.
  std::vector<uint64_t> pending = {1};
  auto need = [&](size_t n) { return n <= in.size() - pos; };
  auto read_be = [&](size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(in[pos + i]);
    pos += n;
    return v;
  };
  while (!pending.empty()) {
    if (pending.back() == 0) {
      pending.pop_back();
      continue;
    }
    --pending.back();
    if (!need(1)) return corrupt("truncated payload");
    auto b = static_cast<uint8_t>(in[pos++]);
    uint64_t children = 0;
    uint64_t str_len = 0;
    bool is_str = false;
    size_t skip = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
      // fixint, nil, bool
    } else if (b >= 0x80 && b <= 0x8f) {
      children = 2 * static_cast<uint64_t>(b & 0x0f);
    } else if (b >= 0x90 && b <= 0x9f) {
      children = b & 0x0f;
    } else if (b >= 0xa0 && b <= 0xbf) {
      is_str = true;
      str_len = b & 0x1f;
    } else {
      switch (b) {
        case 0xca:    // float32
        case 0xcb: {  // float64
          skip = b == 0xca ? 4 : 8;
          if (!need(skip)) return corrupt("truncated payload");
          // NaN and infinity never come from JSON: their exponent is all ones.
          auto hi = static_cast<uint8_t>(in[pos]);
          auto next = static_cast<uint8_t>(in[pos + 1]);
          bool all_ones =
              (hi & 0x7f) == 0x7f && (b == 0xca ? (next & 0x80) == 0x80 : (next & 0xf0) == 0xf0);
          if (all_ones) return corrupt("non-finite number");
          break;
        }
        case 0xcc:
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xd9:
        case 0xda:
        case 0xdb: {
          size_t n = b == 0xd9 ? 1 : b == 0xda ? 2 : 4;
          if (!need(n)) return corrupt("truncated payload");
          is_str = true;
          str_len = read_be(n);
          break;
        }
        case 0xdc:
        case 0xdd: {
          size_t n = b == 0xdc ? 2 : 4;
          if (!need(n)) return corrupt("truncated payload");
          children = read_be(n);
          break;
        }
        case 0xde:
        case 0xdf: {
          size_t n = b == 0xde ? 2 : 4;
          if (!need(n)) return corrupt("truncated payload");
          children = 2 * read_be(n);
          break;
        }
        default:
          return corrupt(str_cat("unexpected MessagePack byte ", static_cast<int>(b)));
      }
    }
    if (!need(skip)) return corrupt("truncated payload");
    pos += skip;
    if (is_str) {
      if (!need(str_len)) return corrupt("truncated payload");
      if (!internal::valid_utf8(in.substr(pos, str_len))) return corrupt("string is not UTF-8");
      pos += str_len;
    }
    if (children > 0) {
      // Every child takes at least one byte: refuses absurd counts early.
      if (children > in.size() - pos) return corrupt("container larger than the payload");
      if (pending.size() > kMaxMsgpackDepth) return corrupt("nesting too deep");
      pending.push_back(children);
    }
  }
  if (pos != in.size()) return corrupt("trailing bytes after payload");
  return ok_status();
}

Result<Json> decode_payload(std::string_view payload) {
  CHRONOS_RETURN_IF_ERROR(check_msgpack(payload));
  try {
    Json j = Json::from_msgpack(payload.begin(), payload.end());
    if (!j.is_object()) return corrupt("payload is not an object");
    return j;
  } catch (const std::exception& e) {
    return corrupt(e.what());
  }
}

Result<int64_t> required_int(const Json& j, std::string_view key) {
  CHRONOS_ASSIGN_OR_RETURN(auto v, internal::get_int(j, key));
  if (!v) return Error::validation(std::string(key), "is required");
  return *v;
}

Result<std::string> required_string(const Json& j, std::string_view key) {
  CHRONOS_ASSIGN_OR_RETURN(auto v, internal::get_string(j, key));
  if (!v) return Error::validation(std::string(key), "is required");
  return std::move(*v);
}

Result<int> int32_field(const Json& j, std::string_view key) {
  CHRONOS_ASSIGN_OR_RETURN(auto v, internal::get_int(j, key));
  if (!v) return Error::validation(std::string(key), "is required");
  if (*v < std::numeric_limits<int>::min() || *v > std::numeric_limits<int>::max()) {
    return Error::validation(std::string(key), "is out of range");
  }
  return static_cast<int>(*v);
}

// The array at `key` (required); elements are decoded by `element`, errors
// name "<key>[i].<field>".
template <typename T, typename F>
Result<std::vector<T>> array_field(const Json& j, std::string_view key, F element) {
  const Json* list = internal::find(j, key);
  if (list == nullptr) return Error::validation(std::string(key), "is required");
  if (!list->is_array()) return Error::validation(std::string(key), "must be an array");
  std::vector<T> out;
  out.reserve(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    Result<T> item = element((*list)[i]);
    if (!item.ok()) return std::move(item).error().nested_in(str_cat(key, "[", i, "]"));
    out.push_back(std::move(item).value());
  }
  return out;
}

Result<std::string> string_element(const Json& v) {
  if (!v.is_string()) return Error::validation("", "must be a string");
  return v.get<std::string>();
}

Result<int> int32_element(const Json& v) {
  if (!v.is_number_integer()) return Error::validation("", "must be an integer");
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int>::max())) {
      return Error::validation("", "is out of range");
    }
    return static_cast<int>(u);
  }
  const auto i = v.get<int64_t>();
  if (i < std::numeric_limits<int>::min() || i > std::numeric_limits<int>::max()) {
    return Error::validation("", "is out of range");
  }
  return static_cast<int>(i);
}

Result<ScheduleAdvance> schedule_advance_from_json(const Json& j) {
  CHRONOS_RETURN_IF_ERROR(internal::check_object(j, {"job_id", "last_scheduled"}));
  ScheduleAdvance a;
  CHRONOS_ASSIGN_OR_RETURN(a.job_id, required_string(j, "job_id"));
  CHRONOS_ASSIGN_OR_RETURN(a.last_scheduled, internal::get_time_or_unset(j, "last_scheduled"));
  return a;
}

Json execution_result_to_json(const ExecutionResult& r) {
  return Json{{"job_id", r.job_id},
              {"execution_id", r.execution_id},
              {"status", to_string(r.status)},
              {"attempts", r.attempts},
              {"status_code", r.status_code},
              {"response", internal::bytes_to_json(r.response)},
              {"error", internal::bytes_to_json(r.error)},
              {"node_id", r.node_id},
              {"completed_at", internal::time_or_null(r.completed_at)}};
}

Result<ExecutionResult> execution_result_from_json(const Json& j) {
  CHRONOS_RETURN_IF_ERROR(
      internal::check_object(j, {"job_id", "execution_id", "status", "attempts", "status_code",
                                 "response", "error", "node_id", "completed_at"}));
  ExecutionResult r;
  CHRONOS_ASSIGN_OR_RETURN(r.job_id, required_string(j, "job_id"));
  CHRONOS_ASSIGN_OR_RETURN(r.execution_id, required_string(j, "execution_id"));
  CHRONOS_ASSIGN_OR_RETURN(const std::string status, required_string(j, "status"));
  std::optional<ExecutionStatus> s = parse_execution_status(status);
  if (!s) return Error::validation("status", "is not an execution status");
  r.status = *s;
  CHRONOS_ASSIGN_OR_RETURN(r.attempts, int32_field(j, "attempts"));
  CHRONOS_ASSIGN_OR_RETURN(r.status_code, int32_field(j, "status_code"));
  CHRONOS_ASSIGN_OR_RETURN(r.response, internal::get_bytes(j, "response"));
  CHRONOS_ASSIGN_OR_RETURN(r.error, internal::get_bytes(j, "error"));
  CHRONOS_ASSIGN_OR_RETURN(r.node_id, required_string(j, "node_id"));
  CHRONOS_ASSIGN_OR_RETURN(r.completed_at, internal::get_time_or_unset(j, "completed_at"));
  return r;
}

Result<Command> decode_command(Tag tag, const Json& j) {
  switch (tag) {
    case Tag::kPutJob: {
      CHRONOS_RETURN_IF_ERROR(internal::check_object(j, {"job", "expected_version"}));
      const Json* job_json = internal::find(j, "job");
      if (job_json == nullptr) return Error::validation("job", "is required");
      PutJob put;
      CHRONOS_ASSIGN_OR_RETURN(put.job, internal::nest(job_from_internal_json(*job_json), "job"));
      CHRONOS_ASSIGN_OR_RETURN(put.expected_version, required_int(j, "expected_version"));
      return Command(std::move(put));
    }
    case Tag::kDeleteJob: {
      CHRONOS_RETURN_IF_ERROR(internal::check_object(j, {"job_id", "expected_version"}));
      DeleteJob del;
      CHRONOS_ASSIGN_OR_RETURN(auto id, internal::get_string(j, "job_id"));
      if (!id) return Error::validation("job_id", "is required");
      del.job_id = *id;
      CHRONOS_ASSIGN_OR_RETURN(del.expected_version, required_int(j, "expected_version"));
      return Command(std::move(del));
    }
    case Tag::kNoop:
      CHRONOS_RETURN_IF_ERROR(internal::check_object(j, {}));
      return Command(Noop{});
    case Tag::kStartExecutions: {
      CHRONOS_RETURN_IF_ERROR(internal::check_object(j, {"executions", "schedule", "force"}));
      StartExecutions start;
      if (j.contains("force")) {
        if (!j["force"].is_boolean()) return Error::internal("corrupt command batch: force");
        start.force = j["force"].get<bool>();
      }
      CHRONOS_ASSIGN_OR_RETURN(start.executions,
                               array_field<Execution>(j, "executions", [](const Json& v) {
                                 return execution_from_internal_json(v);
                               }));
      CHRONOS_ASSIGN_OR_RETURN(
          start.schedule, array_field<ScheduleAdvance>(j, "schedule", schedule_advance_from_json));
      return Command(std::move(start));
    }
    case Tag::kFinishExecutions: {
      CHRONOS_RETURN_IF_ERROR(internal::check_object(j, {"results"}));
      FinishExecutions finish;
      CHRONOS_ASSIGN_OR_RETURN(
          finish.results, array_field<ExecutionResult>(j, "results", execution_result_from_json));
      return Command(std::move(finish));
    }
    case Tag::kRedispatchExecutions: {
      CHRONOS_RETURN_IF_ERROR(internal::check_object(
          j, {"job_ids", "execution_ids", "attempts", "node_id", "retry", "next_attempt_at"}));
      RedispatchExecutions redispatch;
      if (j.contains("retry")) {
        if (!j["retry"].is_boolean()) return Error::internal("corrupt command batch: retry");
        redispatch.retry = j["retry"].get<bool>();
      }
      CHRONOS_ASSIGN_OR_RETURN(redispatch.job_ids,
                               array_field<std::string>(j, "job_ids", string_element));
      CHRONOS_ASSIGN_OR_RETURN(redispatch.execution_ids,
                               array_field<std::string>(j, "execution_ids", string_element));
      CHRONOS_ASSIGN_OR_RETURN(redispatch.attempts, array_field<int>(j, "attempts", int32_element));
      CHRONOS_ASSIGN_OR_RETURN(redispatch.node_id, required_string(j, "node_id"));
      if (j.contains("next_attempt_at")) {
        CHRONOS_ASSIGN_OR_RETURN(
            redispatch.next_attempt_at,
            array_field<absl::Time>(j, "next_attempt_at", [](const Json& v) -> Result<absl::Time> {
              Json holder{{"t", v}};
              return internal::get_time_or_unset(holder, "t");
            }));
        if (redispatch.next_attempt_at.size() != redispatch.execution_ids.size()) {
          return Error::validation("next_attempt_at", "must be empty or as long as execution_ids");
        }
      }
      if (redispatch.job_ids.size() != redispatch.execution_ids.size() ||
          redispatch.attempts.size() != redispatch.execution_ids.size()) {
        return Error::validation("execution_ids",
                                 "job_ids, execution_ids and attempts must have the same length");
      }
      return Command(std::move(redispatch));
    }
    case Tag::kPruneExecutions: {
      CHRONOS_RETURN_IF_ERROR(internal::check_object(j, {"job_id", "execution_ids"}));
      PruneExecutions prune;
      CHRONOS_ASSIGN_OR_RETURN(prune.job_id, required_string(j, "job_id"));
      CHRONOS_ASSIGN_OR_RETURN(prune.execution_ids,
                               array_field<std::string>(j, "execution_ids", string_element));
      return Command(std::move(prune));
    }
    case Tag::kPutMember: {
      CHRONOS_RETURN_IF_ERROR(
          internal::check_object(j, {"raft_id", "name", "raft_address", "http_address"}));
      PutMember member;
      if (!j.contains("raft_id") || !j["raft_id"].is_number_unsigned()) {
        return corrupt("raft_id");
      }
      member.raft_id = j["raft_id"].get<uint64_t>();
      CHRONOS_ASSIGN_OR_RETURN(member.name, required_string(j, "name"));
      CHRONOS_ASSIGN_OR_RETURN(member.raft_address, required_string(j, "raft_address"));
      CHRONOS_ASSIGN_OR_RETURN(member.http_address, required_string(j, "http_address"));
      return Command(std::move(member));
    }
  }
  return corrupt("unknown command tag");
}

}  // namespace

std::string encode_batch(const CommandBatch& batch) {
  std::string out(kMagic);
  out.push_back(static_cast<char>(kFormatVersion));
  put_u32_le(out, static_cast<uint32_t>(batch.commands.size()));
  for (const Command& cmd : batch.commands) {
    Tag tag = Tag::kNoop;
    Json j = Json::object();
    std::visit(
        [&](const auto& c) {
          using T = std::decay_t<decltype(c)>;
          if constexpr (std::is_same_v<T, PutJob>) {
            tag = Tag::kPutJob;
            j["job"] = job_to_internal_json(c.job);
            j["expected_version"] = c.expected_version;
          } else if constexpr (std::is_same_v<T, DeleteJob>) {
            tag = Tag::kDeleteJob;
            j["job_id"] = c.job_id;
            j["expected_version"] = c.expected_version;
          } else if constexpr (std::is_same_v<T, Noop>) {
            tag = Tag::kNoop;
          } else if constexpr (std::is_same_v<T, StartExecutions>) {
            tag = Tag::kStartExecutions;
            Json executions = Json::array();
            for (const Execution& e : c.executions) {
              executions.push_back(execution_to_internal_json(e));
            }
            Json schedule = Json::array();
            for (const ScheduleAdvance& a : c.schedule) {
              schedule.push_back(
                  Json{{"job_id", a.job_id},
                       {"last_scheduled", internal::time_or_null(a.last_scheduled)}});
            }
            j["executions"] = std::move(executions);
            j["schedule"] = std::move(schedule);
            if (c.force) j["force"] = true;  // absent = false (older entries)
          } else if constexpr (std::is_same_v<T, FinishExecutions>) {
            tag = Tag::kFinishExecutions;
            Json results = Json::array();
            for (const ExecutionResult& r : c.results)
              results.push_back(execution_result_to_json(r));
            j["results"] = std::move(results);
          } else if constexpr (std::is_same_v<T, RedispatchExecutions>) {
            tag = Tag::kRedispatchExecutions;
            j["job_ids"] = c.job_ids;
            j["execution_ids"] = c.execution_ids;
            j["attempts"] = c.attempts;
            j["node_id"] = c.node_id;
            if (c.retry) j["retry"] = true;  // absent = false (older entries)
            if (!c.next_attempt_at.empty()) {
              Json times = Json::array();
              for (absl::Time t : c.next_attempt_at) times.push_back(internal::time_or_null(t));
              j["next_attempt_at"] = std::move(times);
            }
          } else if constexpr (std::is_same_v<T, PruneExecutions>) {
            tag = Tag::kPruneExecutions;
            j["job_id"] = c.job_id;
            j["execution_ids"] = c.execution_ids;
          } else {
            static_assert(std::is_same_v<T, PutMember>, "every command has a tag");
            tag = Tag::kPutMember;
            j["raft_id"] = c.raft_id;
            j["name"] = c.name;
            j["raft_address"] = c.raft_address;
            j["http_address"] = c.http_address;
          }
        },
        cmd);
    std::vector<uint8_t> payload = Json::to_msgpack(j);
    out.push_back(static_cast<char>(tag));
    put_u32_le(out, static_cast<uint32_t>(payload.size()));
    out.append(reinterpret_cast<const char*>(payload.data()), payload.size());
  }
  return out;
}

std::string concat_encoded_batches(const std::vector<std::string_view>& parts) {
  constexpr size_t kHeader = kMagic.size() + 1 + 4;
  size_t size = kHeader;
  uint64_t count = 0;
  for (std::string_view part : parts) {
    CHRONOS_CHECK(part.size() >= kHeader && part.substr(0, kMagic.size()) == kMagic)
        << "concat_encoded_batches: a part is not an encoded batch";
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i) {
      n |= static_cast<uint32_t>(static_cast<uint8_t>(part[kMagic.size() + 1 + i])) << (8 * i);
    }
    count += n;
    size += part.size() - kHeader;
  }
  CHRONOS_CHECK(count <= UINT32_MAX) << "concat_encoded_batches: too many commands";
  std::string out(kMagic);
  out.reserve(size);
  out.push_back(static_cast<char>(kFormatVersion));
  put_u32_le(out, static_cast<uint32_t>(count));
  for (std::string_view part : parts) out.append(part.substr(kHeader));
  return out;
}

Result<CommandBatch> decode_batch(std::string_view bytes) {
  ByteReader in(bytes);
  std::string_view magic;
  std::string_view version;
  uint32_t count = 0;
  if (!in.bytes(kMagic.size(), &magic) || !in.bytes(1, &version) || !in.u32_le(&count)) {
    return corrupt("shorter than its header");
  }
  if (magic != kMagic) return corrupt("bad magic");
  if (static_cast<uint8_t>(version[0]) != kFormatVersion) {
    return corrupt(str_cat("unsupported format version ", static_cast<int>(version[0])));
  }
  if (count > in.remaining() / kCommandHeaderBytes) {
    return corrupt("command count larger than the entry");
  }
  CommandBatch batch;
  batch.commands.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    std::string_view tag_byte;
    uint32_t len = 0;
    if (!in.bytes(1, &tag_byte) || !in.u32_le(&len)) return corrupt("truncated command header");
    std::string_view payload;
    if (!in.bytes(len, &payload)) return corrupt("truncated command payload");
    auto tag = static_cast<uint8_t>(tag_byte[0]);
    if (tag < static_cast<uint8_t>(Tag::kPutJob) || tag > static_cast<uint8_t>(kLastTag)) {
      return corrupt(str_cat("unknown command tag ", static_cast<int>(tag)));
    }
    CHRONOS_ASSIGN_OR_RETURN(Json j, decode_payload(payload));
    auto cmd = decode_command(static_cast<Tag>(tag), j);
    if (!cmd.ok()) {
      const Error& e = cmd.error();
      return corrupt(str_cat("command ", i, ": ", e.field, ": ", e.message));
    }
    batch.commands.push_back(std::move(cmd).value());
  }
  if (in.remaining() != 0) return corrupt("trailing bytes after the last command");
  return batch;
}

}  // namespace chronos::model
