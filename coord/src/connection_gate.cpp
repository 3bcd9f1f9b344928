#include "connection_gate.hpp"

namespace drover::coord::detail {

std::optional<connection_gate::refusal> connection_gate::admit(const std::string& address) {
  auto& load = by_address_[address];
  const auto over = [](std::size_t count, std::size_t limit) {
    return limit != 0 && count >= limit;
  };
  refusal r;
  if (over(load.connections, limits_.connections_per_address)) {
    r = {refusal::limit::connections_per_address, load.connections,
         limits_.connections_per_address};
  } else if (over(load.handshakes, limits_.handshakes_per_address)) {
    r = {refusal::limit::handshakes_per_address, load.handshakes, limits_.handshakes_per_address};
  } else if (over(handshakes_, limits_.handshakes)) {
    r = {refusal::limit::handshakes, handshakes_, limits_.handshakes};
  } else {
    ++load.connections;
    ++load.handshakes;
    ++handshakes_;
    return std::nullopt;
  }
  if (load.connections == 0) by_address_.erase(address);
  // A flood must not flood the log too: one line a second at most, with the count.
  const auto now = std::chrono::steady_clock::now();
  if (refused_since_log_++ > 0 && now - refusal_logged_at_ < std::chrono::seconds{1}) return r;
  r.log_now = true;
  r.refused = refused_since_log_;
  refused_since_log_ = 0;
  refusal_logged_at_ = now;
  return r;
}

void connection_gate::handshake_ended(const std::string& address) {
  const auto found = by_address_.find(address);
  if (found == by_address_.end() || found->second.handshakes == 0) return;
  --found->second.handshakes;
  --handshakes_;
}

void connection_gate::connection_ended(const std::string& address) {
  const auto found = by_address_.find(address);
  if (found == by_address_.end()) return;
  if (--found->second.connections == 0) by_address_.erase(found);
}

}  // namespace drover::coord::detail
