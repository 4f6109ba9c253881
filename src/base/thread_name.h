#pragma once

#include <pthread.h>

#include <string>

namespace chronos {

// Names the calling thread (what `top -H`, perf and gdb show), so a profile
// tells the Raft loop from the scheduler and the API workers. Linux keeps 15
// bytes; longer names are cut. Best effort: a failure is ignored.
inline void name_this_thread(std::string name) {
  if (name.size() > 15) name.resize(15);
  pthread_setname_np(pthread_self(), name.c_str());
}

}  // namespace chronos
