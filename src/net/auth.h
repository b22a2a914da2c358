// Shared-secret authentication: HMAC-SHA256 challenge-response on connect.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "common/status.h"

namespace overcast::net {

inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kMacSize = 32;
using Nonce = std::array<unsigned char, kNonceSize>;
using Mac = std::array<unsigned char, kMacSize>;

Nonce RandomNonce();
// HMAC-SHA256(secret, "overcast-auth-v1" || nonce).
Mac ComputeMac(std::string_view secret, const Nonce& nonce);
// Constant-time comparison of `mac` against the expected one.
bool VerifyMac(std::string_view secret, const Nonce& nonce, std::string_view mac);

// Constant-time comparison of a presented secret (a bearer token) against the real one; the
// time taken depends on the lengths only.
bool SecretMatches(std::string_view secret, std::string_view presented);

// True for 127.0.0.0/8, ::1 and "localhost": the addresses that need no secret.
bool IsLoopback(std::string_view host);

// Reads a secret from a file (trailing newline stripped); an empty secret is an error.
Result<std::string> ReadSecretFile(const std::string& path);

// Splits "host:port" ("[v6]:port" too); port 0 asks for any free port.
Status ParseHostPort(std::string_view spec, std::string* host, uint16_t* port);

}  // namespace overcast::net
