#include "model/command.h"

#include <cstring>
#include <exception>
#include <type_traits>

#include "base/bytes.h"
#include "base/strings.h"
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

enum class Tag : uint8_t { kPutJob = 1, kDeleteJob = 2, kNoop = 3 };

Error corrupt(std::string_view what) {
  return Error::internal(str_cat("corrupt command batch: ", what));
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<uint8_t>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n > s.size() - i - 1) return false;
    for (size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values beyond U+10FFFF.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
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
      if (!valid_utf8(in.substr(pos, str_len))) return corrupt("string is not UTF-8");
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
          } else {
            tag = Tag::kNoop;
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
    if (tag < static_cast<uint8_t>(Tag::kPutJob) || tag > static_cast<uint8_t>(Tag::kNoop)) {
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
