#include "base/check.h"

#include <cstdio>
#include <cstdlib>

namespace chronos::internal {

CheckFailure::CheckFailure(const char* file, int line, const char* cond) {
  out_ << file << ":" << line << ": CHECK failed: " << cond << ": ";
}

CheckFailure::~CheckFailure() {
  std::string msg = out_.str();
  std::fprintf(stderr, "%s\n", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace chronos::internal
