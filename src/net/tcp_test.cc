#include "net/tcp.h"

#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio.hpp>
#include <fstream>
#include <string>

namespace overcast::net {
namespace {

std::string Algorithm(int fd) {
  char name[32] = {};
  socklen_t n = sizeof(name);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &n) != 0) return "?";
  return std::string(name);
}

std::string KernelDefault() {
  std::ifstream in("/proc/sys/net/ipv4/tcp_congestion_control");
  std::string s;
  in >> s;
  return s;
}

// A connected pair over 127.0.0.1: [0] the client's end, [1] the accepted end.
struct LoopbackPair {
  asio::io_context io;
  asio::ip::tcp::socket client{io}, accepted{io};
  int fd[2] = {-1, -1};
  LoopbackPair() {
    std::error_code ec;
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
    client.connect(acceptor.local_endpoint(), ec);
    if (!ec) acceptor.accept(accepted, ec);
    if (!ec) fd[0] = client.native_handle(), fd[1] = accepted.native_handle();
  }
};

TEST(Congestion, ValidatesNamesAgainstTheKernel) {
  EXPECT_TRUE(ValidateCongestion("auto").ok());
  EXPECT_TRUE(ValidateCongestion("system").ok());
  EXPECT_TRUE(ValidateCongestion("reno").ok());  // every process may set reno
  Status bad = ValidateCongestion("no-such-algorithm");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), Code::kInvalidArgument);
  // The message says what would have been accepted.
  EXPECT_NE(bad.message().find("auto, system"), std::string::npos) << bad.ToString();
  EXPECT_NE(bad.message().find("reno"), std::string::npos) << bad.ToString();
  EXPECT_FALSE(ValidateCongestion("").ok());
}

TEST(Congestion, AutoSetsRenoOnLoopbackAndSystemLeavesTheDefault) {
  LoopbackPair p;
  ASSERT_GE(p.fd[1], 0);
  const std::string dflt = KernelDefault();
  ASSERT_EQ(Algorithm(p.fd[0]), dflt);
  ASSERT_TRUE(ApplyCongestion(p.fd[0], "system").ok());
  EXPECT_EQ(Algorithm(p.fd[0]), dflt);
  ASSERT_TRUE(ApplyCongestion(p.fd[0], "auto").ok());
  EXPECT_EQ(Algorithm(p.fd[0]), "reno");
  ASSERT_TRUE(ApplyCongestion(p.fd[1], "auto").ok());
  EXPECT_EQ(Algorithm(p.fd[1]), "reno");
}

TEST(Congestion, AutoLeavesAnUnconnectedSocketAlone) {
  // Without a peer there is no loopback connection to recognise: the kernel's choice stays.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(ApplyCongestion(fd, "auto").ok());
  EXPECT_EQ(Algorithm(fd), KernelDefault());
  ::close(fd);
}

TEST(Congestion, ANamedAlgorithmIsSetAndARefusedOneIsAnError) {
  LoopbackPair p;
  ASSERT_GE(p.fd[1], 0);
  ASSERT_TRUE(ApplyCongestion(p.fd[0], "reno").ok());
  EXPECT_EQ(Algorithm(p.fd[0]), "reno");
  EXPECT_FALSE(ApplyCongestion(p.fd[0], "no-such-algorithm").ok());
  EXPECT_EQ(Algorithm(p.fd[0]), "reno");
}

}  // namespace
}  // namespace overcast::net
