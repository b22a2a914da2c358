#include "net/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>
#include <cstring>

#include "common/fs.h"

namespace overcast::net {

Nonce RandomNonce() {
  Nonce n;
  if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1) {
    // RAND_bytes fails only when the OS entropy source is broken; fall back to /dev/urandom.
    std::string bytes;
    if (ReadFile("/dev/urandom", &bytes).ok() && bytes.size() >= n.size()) {
      std::memcpy(n.data(), bytes.data(), n.size());
    }
  }
  return n;
}

Mac ComputeMac(std::string_view secret, const Nonce& nonce) {
  static constexpr std::string_view kContext = "overcast-auth-v1";
  unsigned char msg[kContext.size() + kNonceSize];
  std::memcpy(msg, kContext.data(), kContext.size());
  std::memcpy(msg + kContext.size(), nonce.data(), kNonceSize);
  Mac mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), msg, sizeof(msg), mac.data(),
       &len);
  return mac;
}

bool VerifyMac(std::string_view secret, const Nonce& nonce, std::string_view mac) {
  if (mac.size() != kMacSize) return false;
  Mac want = ComputeMac(secret, nonce);
  return CRYPTO_memcmp(want.data(), mac.data(), kMacSize) == 0;
}

bool SecretMatches(std::string_view secret, std::string_view presented) {
  if (secret.empty() || presented.size() != secret.size()) return false;
  return CRYPTO_memcmp(secret.data(), presented.data(), secret.size()) == 0;
}

bool IsLoopback(std::string_view host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.starts_with("127.");
}

Result<std::string> ReadSecretFile(const std::string& path) {
  std::string s;
  OC_RETURN_IF_ERROR(ReadFile(path, &s).WithContext("secret file"));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.empty()) return InvalidArgument("secret file " + path + " is empty");
  return s;
}

Status ParseHostPort(std::string_view spec, std::string* host, uint16_t* port) {
  auto colon = spec.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgument("expected HOST:PORT, found '" + std::string(spec) + "'");
  }
  std::string_view h = spec.substr(0, colon), p = spec.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (ec != std::errc() || ptr != p.data() + p.size() || v > 65535) {
    return InvalidArgument("bad port in '" + std::string(spec) + "'");
  }
  *host = std::string(h);
  *port = static_cast<uint16_t>(v);
  return Status::Ok();
}

}  // namespace overcast::net
