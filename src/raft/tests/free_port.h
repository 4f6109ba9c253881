#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/check.h"

namespace chronos::raft {

// A port that was free on 127.0.0.1 a moment ago: bind port 0, read, close.
inline int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHRONOS_CHECK(fd >= 0) << "socket";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  CHRONOS_CHECK(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) << "bind";
  socklen_t len = sizeof(addr);
  CHRONOS_CHECK(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) << "getsockname";
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace chronos::raft
