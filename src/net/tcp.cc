#include "net/tcp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace overcast::net {
namespace {
bool IsLoopbackAddress(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr) >> 24) == 127;
  }
  if (a.ss_family == AF_INET6) {
    const in6_addr& v6 = reinterpret_cast<const sockaddr_in6&>(a).sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

std::string ProcLine(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line.empty() ? "?" : line;
}

int SetAlgorithm(int fd, const std::string& name) {
  return ::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(),
                      static_cast<socklen_t>(name.size()));
}
}  // namespace

Status ValidateCongestion(const std::string& choice) {
  if (choice == "auto" || choice == "system") return Status::Ok();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return ErrnoStatus("socket", errno);
  const int rc = choice.empty() ? -1 : SetAlgorithm(fd, choice);
  const int err = choice.empty() ? ENOENT : errno;
  ::close(fd);
  if (rc == 0) return Status::Ok();
  return InvalidArgument(
      "--tcp-congestion '" + choice + "': the kernel refuses it (" + std::strerror(err) +
      "); expected auto, system or one of the available algorithms (" +
      ProcLine("/proc/sys/net/ipv4/tcp_available_congestion_control") +
      "; without CAP_NET_ADMIN only " +
      ProcLine("/proc/sys/net/ipv4/tcp_allowed_congestion_control") + ")");
}

Status ApplyCongestion(int fd, const std::string& choice) {
  if (choice == "system") return Status::Ok();
  std::string name = choice;
  if (choice == "auto") {
    sockaddr_storage self{}, peer{};
    socklen_t a = sizeof(self), b = sizeof(peer);
    const bool named = ::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &a) == 0 &&
                       ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &b) == 0;
    if (!named || !IsLoopbackAddress(self) || !IsLoopbackAddress(peer)) return Status::Ok();
    name = "reno";
  }
  if (SetAlgorithm(fd, name) != 0) return ErrnoStatus("TCP_CONGESTION " + name, errno);
  return Status::Ok();
}

int ConnectLoopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
  const int err = errno;
  ::close(fd);
  errno = err;
  return -1;
}

}  // namespace overcast::net
