#include "net/connection.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace overcast::net {
namespace {

// What one receiving Connection made of the frames written to it.
struct Received {
  std::vector<uint64_t> frames;  // request ids handed to the frame handler
  Status closed = Status::Ok();
  bool did_close = false;
};

// Writes `bytes` from a plain socket into a Connection whose sink takes every frame of
// request id 1 into `sink` (verified or not, as `verify` says), and returns what the
// Connection reported once the writer hung up.
Received Deliver(const std::string& bytes, std::vector<char>* sink, bool verify) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
  asio::ip::tcp::socket writer(io);
  writer.connect(acceptor.local_endpoint());
  auto conn = std::make_shared<Connection>(acceptor.accept(), FrameLimits{});
  Received r;
  conn->SetPayloadSink(
      [sink](const FrameHeader& h) -> char* {
        if (h.request_id != 1) return nullptr;
        sink->assign(h.wire_length, '\0');
        return sink->data();
      },
      verify);
  conn->Start([&](const FrameHeader& h, std::string&&) { r.frames.push_back(h.request_id); },
              [&](const Status& why) {
                r.closed = why;
                r.did_close = true;
              });
  asio::write(writer, asio::buffer(bytes));
  writer.shutdown(asio::socket_base::shutdown_send);
  io.run();  // until the connection closes on the writer's end or on a bad frame
  EXPECT_TRUE(r.did_close) << "the connection never reported its end";
  return r;
}

std::string Body(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 31 + 7);
  return s;
}

TEST(Connection, SinkPayloadsAreCheckedUnlessTheSinkSaysNot) {
  const std::string body = Body(3 * kChecksumBlock + 100);
  const uint8_t flags = kFlagResponse | kFlagBlockChecksum;
  std::string good = MakeHeader(21, 1, flags, 0, body.size(),
                                BlockChecksum64(body.data(), body.size())) + body;
  std::string bad = good;
  bad[kHeaderSize + 2 * kChecksumBlock + 1] ^= 0x10;  // one bit in the third block
  std::vector<char> sink;

  // Checked: the good frame lands whole, the flipped bit closes the connection.
  Received r = Deliver(good, &sink, /*verify=*/true);
  EXPECT_EQ(r.frames, std::vector<uint64_t>{1});
  EXPECT_EQ(std::string(sink.begin(), sink.end()), body);
  EXPECT_TRUE(r.closed.ok()) << r.closed.ToString();
  r = Deliver(bad, &sink, /*verify=*/true);
  EXPECT_TRUE(r.frames.empty());
  EXPECT_EQ(r.closed.code(), Code::kCorruption) << r.closed.ToString();

  // Unchecked: the same flipped bit is handed over as it came.
  r = Deliver(bad, &sink, /*verify=*/false);
  EXPECT_EQ(r.frames, std::vector<uint64_t>{1});
  EXPECT_TRUE(r.closed.ok()) << r.closed.ToString();
  EXPECT_EQ(std::string(sink.begin(), sink.end()), bad.substr(kHeaderSize));
}

TEST(Connection, AnUncheckedSinkStillChecksHeadersAndOtherFrames) {
  const std::string body = Body(1000);
  // A frame the sink declines (request id 2) is read into the connection's buffer and checked.
  std::string other = MakeFrame(21, 2, body, kFlagResponse);
  other[kHeaderSize + 10] ^= 0x01;
  std::vector<char> sink;
  Received r = Deliver(other, &sink, /*verify=*/false);
  EXPECT_TRUE(r.frames.empty());
  EXPECT_EQ(r.closed.code(), Code::kCorruption) << r.closed.ToString();
  // A damaged header is refused before any sink is asked.
  std::string mine = MakeFrame(21, 1, body, kFlagResponse);
  mine[12] ^= 0x01;  // inside the request id, covered by the header checksum
  r = Deliver(mine, &sink, /*verify=*/false);
  EXPECT_TRUE(r.frames.empty());
  EXPECT_EQ(r.closed.code(), Code::kCorruption) << r.closed.ToString();
}

}  // namespace
}  // namespace overcast::net
