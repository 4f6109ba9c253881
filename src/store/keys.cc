#include "store/keys.h"

#include "base/bytes.h"
#include "base/check.h"

namespace chronos::store::keys {

namespace {

std::string concat(std::string_view a, std::string_view b, std::string_view c = {},
                   std::string_view d = {}) {
  std::string out;
  out.reserve(a.size() + b.size() + c.size() + d.size());
  out.append(a).append(b).append(c).append(d);
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string hex_encode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

std::optional<std::string> hex_decode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_value(hex[i]);
    const int lo = hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

}  // namespace

bool is_key_segment(std::string_view part) {
  return !part.empty() && part.find('/') == std::string_view::npos;
}

std::string job(std::string_view job_id) { return concat(kJobPrefix, job_id); }

std::string name(std::string_view ns, std::string_view name) {
  return concat(kNamePrefix, ns, "/", name);
}

std::string namespace_prefix(std::string_view ns) { return concat(kNamePrefix, ns, "/"); }

std::string versions_prefix(std::string_view job_id) { return concat(kVersionPrefix, job_id, "/"); }

std::string version(std::string_view job_id, uint64_t version) {
  return concat(kVersionPrefix, job_id, "/", encode_u64(version));
}

std::string schedule(std::string_view job_id) { return concat(kSchedulePrefix, job_id); }
std::string timing(std::string_view job_id) { return concat(kTimingPrefix, job_id); }

std::string executions_prefix(std::string_view job_id) {
  return concat(kExecutionPrefix, job_id, "/");
}

std::string execution(std::string_view job_id, std::string_view execution_id) {
  return concat(kExecutionPrefix, job_id, "/", execution_id);
}

std::string member(uint64_t raft_id) {
  std::string key(kMemberPrefix);
  key += encode_u64(raft_id);
  return key;
}

std::string running(std::string_view execution_id) { return concat(kRunningPrefix, execution_id); }

std::string prefix_end(std::string_view prefix) {
  CHRONOS_CHECK(!prefix.empty() && static_cast<unsigned char>(prefix.back()) != 0xff)
      << "prefix_end needs a prefix whose last byte can be incremented";
  std::string end(prefix);
  end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

std::string encode_u64(uint64_t v) {
  std::string out;
  out.reserve(8);
  put_u64_be(out, v);
  return out;
}

std::optional<uint64_t> decode_u64(std::string_view bytes) {
  if (bytes.size() != 8) return std::nullopt;
  return get_u64_be(bytes.data());
}

std::string encode_cursor(std::string_view name_key) { return hex_encode(name_key); }

std::optional<std::string> decode_cursor(std::string_view cursor) {
  std::optional<std::string> decoded = hex_decode(cursor);
  if (!decoded) return std::nullopt;
  // Inspected in place and returned whole: moving the string out of the
  // optional trips a g++ 12 -O2 false -Wmaybe-uninitialized.
  const std::string& key = *decoded;
  if (!key.starts_with(kNamePrefix)) return std::nullopt;
  const std::string_view rest = std::string_view(key).substr(kNamePrefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  if (!is_key_segment(rest.substr(0, slash)) || !is_key_segment(rest.substr(slash + 1))) {
    return std::nullopt;
  }
  return decoded;
}

std::string encode_execution_cursor(std::string_view execution_id) {
  return hex_encode(execution_id);
}

std::optional<std::string> decode_execution_cursor(std::string_view cursor) {
  std::optional<std::string> id = hex_decode(cursor);
  if (!id || !is_key_segment(*id)) return std::nullopt;
  return id;
}

std::string_view namespace_of_name_key(std::string_view name_key) {
  CHRONOS_CHECK(name_key.starts_with(kNamePrefix)) << "not a name key";
  const std::string_view rest = name_key.substr(kNamePrefix.size());
  return rest.substr(0, rest.find('/'));
}

}  // namespace chronos::store::keys
