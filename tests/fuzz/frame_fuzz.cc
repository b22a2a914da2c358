// libFuzzer target: the frame decoder and every parameter-server payload decoder behind it.
// Whatever the bytes, decoding returns a Status; it never reads out of bounds or aborts.
#include <cstddef>
#include <cstdint>
#include <string>

#include "net/frame.h"
#include "ps/protocol.h"
#include "ps/table_spec.h"

using namespace overcast;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  net::FrameLimits limits{1 << 20};
  net::FrameDecoder decoder(limits);
  // Feed in two pieces to exercise reassembly.
  std::string_view all(reinterpret_cast<const char*>(data), size);
  decoder.Append(all.substr(0, size / 2));
  for (int round = 0; round < 2; ++round) {
    for (;;) {
      net::FrameHeader h;
      std::string payload;
      bool got = false;
      if (!decoder.Next(&h, &payload, &got).ok() || !got) break;
      ps::SparseRequest sr;
      ps::DenseRequest dr;
      std::string name;
      for (uint32_t dim : {1u, 3u}) (void)ps::DecodeSparse(payload, true, dim, &sr);
      (void)ps::DecodeSparse(payload, false, 0, &sr);
      (void)ps::DecodeDense(payload, true, &dr);
      (void)ps::DecodeDense(payload, false, &dr);
      (void)ps::PeekTable(payload, &name);
      ByteReader r(payload);
      ps::TableSpec spec;
      (void)ps::DecodeSpec(&r, &spec);
    }
    decoder.Append(all.substr(size / 2));
  }
  // The raw payload decoders directly on the input, too.
  ps::SparseRequest sr;
  (void)ps::DecodeSparse(all, true, 2, &sr);
  ByteReader r(all);
  ps::TableSpec spec;
  (void)ps::DecodeSpec(&r, &spec);
  return 0;
}
