#pragma once
// Admission of TCP connections before their handshake, shared by a master's port
// (master_options' limits) and drover serve's worker port: connections open and still in their
// handshake, counted per IP address and in all, and refusals to log at most once a second.
// Not synchronised: its owner calls it under its own lock.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace drover::coord::detail {

class connection_gate {
 public:
  /// 0 means no limit.
  struct limits {
    std::size_t connections_per_address = 0;
    std::size_t handshakes_per_address = 0;
    std::size_t handshakes = 0;
  };

  /// Why a connection was refused: the limit it met, how many were counted against it, and
  /// whether to log now (`refused` refusals since the last line, this one included).
  struct refusal {
    enum class limit { connections_per_address, handshakes_per_address, handshakes } which;
    std::size_t count = 0;
    std::size_t limit_value = 0;
    bool log_now = false;
    std::uint64_t refused = 0;

    /// The start of the line to log: "refused N connections, the last from ADDRESS".
    std::string summary(const std::string& address) const {
      return "refused " + std::to_string(refused) +
             (refused == 1 ? " connection" : " connections") + ", the last from " + address;
    }
  };

  explicit connection_gate(limits l) : limits_(l) {}

  /// Counts a new connection from `address` as open and in its handshake, or refuses it.
  std::optional<refusal> admit(const std::string& address);
  /// An admitted connection is past its handshake (welcomed or not).
  void handshake_ended(const std::string& address);
  /// An admitted connection closed (after handshake_ended()).
  void connection_ended(const std::string& address);

 private:
  struct address_load {
    std::size_t connections = 0;
    std::size_t handshakes = 0;
  };
  limits limits_;
  std::map<std::string, address_load, std::less<>> by_address_;
  std::size_t handshakes_ = 0;  // summed over by_address_
  std::uint64_t refused_since_log_ = 0;
  std::chrono::steady_clock::time_point refusal_logged_at_{};
};

}  // namespace drover::coord::detail
