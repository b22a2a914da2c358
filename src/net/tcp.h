// Socket settings overcast applies to its TCP connections.
#pragma once

#include <string>

#include "common/status.h"

namespace overcast::net {

// The TCP congestion control of overcast's connections (`--tcp-congestion`). Each end sets it
// on its own socket, and it governs what that end sends: a dense pull's reply goes out under
// the server's choice, a push under the client's.
// "auto" sets reno on a connection whose two ends are loopback addresses and leaves any other
// at the kernel's default. On loopback nothing is lost, so no window rule ever acts, but BBR
// (a common default, this project's machine's among them) paces its sends itself where the
// interface has no pacing qdisc, and that held 16 MB dense pulls to 3.1-3.7 GB/s where reno
// or cubic moved 4.6-5.4 (bench/README.md). Every process may set reno. "system" leaves each
// connection as the kernel made it; any other value names a kernel algorithm (see
// /proc/sys/net/ipv4/tcp_available_congestion_control), set on every connection.
inline constexpr const char* kDefaultCongestion = "auto";

// OK for "auto", "system" and an algorithm this process may set; otherwise InvalidArgument
// naming what the kernel offers.
Status ValidateCongestion(const std::string& choice);

// Sets `choice` (validated) on a connected TCP socket; does nothing for "system", or for
// "auto" off loopback.
Status ApplyCongestion(int fd, const std::string& choice);

// A blocking TCP connection to 127.0.0.1:`port`: its descriptor, or -1 with errno set.
int ConnectLoopback(int port);

}  // namespace overcast::net
