#include "common/hash.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace overcast {

uint64_t Checksum64(const void* data, size_t size) { return XXH3_64bits(data, size); }

Checksummer::Checksummer() : state_(XXH3_createState()) {
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}
Checksummer::~Checksummer() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }
void Checksummer::Update(const void* data, size_t size) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, size);
}
uint64_t Checksummer::Digest() const {
  return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_));
}

}  // namespace overcast
