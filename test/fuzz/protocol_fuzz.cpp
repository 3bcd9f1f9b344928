// Fuzz target: the protocol's line framer and message decoder, as a master or worker meets
// them on a connection from a stranger. The bytes are cut into lines by a line_splitter fed in
// chunks of a size the input picks, and each line is decoded twice:
//  - by decode() and by the connection's line_decoder, which must agree (the latter has a
//    one-pass reader for plain assign and result lines);
//  - a decoded message encodes to a line that decodes to a message that encodes the same.

#include "fuzz_target.hpp"

#include <drover/coord/framing.hpp>
#include <drover/coord/protocol.hpp>

#include <algorithm>
#include <string>

namespace coord = drover::coord;

DROVER_FUZZ_TARGET(protocol) {
  if (size == 0) return 0;
  const std::size_t chunk = data[0] % 61 + 1;
  coord::limits limits;
  limits.max_line_bytes = (data[0] & 0x80) ? 256 : 64 * 1024;
  const std::string_view bytes = drover::fuzz::as_text(data + 1, size - 1);

  coord::line_splitter splitter{limits.max_line_bytes, 16};
  coord::line_decoder decoder{limits};
  coord::limits reencoded_limits = limits;
  reencoded_limits.max_line_bytes = std::size_t{1} << 30;  // escapes may lengthen a line

  std::size_t offset = 0;
  for (;;) {
    const auto next = splitter.next();
    drover::fuzz::check(splitter.capacity() <= limits.max_line_bytes + 1,
                        "the splitter holds at most max_line_bytes + 1 bytes");
    if (next.what == coord::line_splitter::status::too_long) break;
    if (next.what == coord::line_splitter::status::need_more) {
      if (offset == bytes.size()) break;
      const auto piece = bytes.substr(offset, std::min(chunk, bytes.size() - offset));
      const std::size_t taken = splitter.feed(piece);
      drover::fuzz::check(taken > 0, "a splitter that needs more takes at least one byte");
      offset += taken;
      continue;
    }
    const std::string line(next.line);
    drover::fuzz::check(!line.empty() && line.size() <= limits.max_line_bytes,
                        "lines are non-empty and within the limit");
    drover::fuzz::check(line.find('\n') == std::string::npos, "a line holds no newline");

    const auto plain = coord::decode(line, limits);
    const auto fast = decoder.decode(line);
    drover::fuzz::check(plain.ok() == fast.ok(), "decode and line_decoder agree on validity");
    if (!plain.ok()) {
      drover::fuzz::check(plain.error().code == fast.error().code,
                          "decode and line_decoder give the same error code");
      drover::fuzz::check(plain.error().fatal == fast.error().fatal,
                          "decode and line_decoder agree on fatality");
      drover::fuzz::check(!plain.error().message.empty(), "an error says what is wrong");
      continue;
    }
    const std::string encoded = coord::encode(plain.value());
    drover::fuzz::check(encoded == coord::encode(fast.value()),
                        "decode and line_decoder decode the same message");
    drover::fuzz::check(!encoded.empty() && encoded.back() == '\n', "an encoded line ends in \\n");
    const auto again =
        coord::decode(std::string_view(encoded).substr(0, encoded.size() - 1), reencoded_limits);
    drover::fuzz::check(again.ok(), "an encoded message decodes");
    drover::fuzz::check(coord::encode(again.value()) == encoded,
                        "decoding and encoding again gives the same line");
  }
  return 0;
}
