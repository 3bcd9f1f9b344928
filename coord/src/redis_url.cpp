// Coordinator addresses (redis://...) and the password file.

#include <drover/coord/redis.hpp>

#include <charconv>
#include <fstream>
#include <sstream>

namespace drover::coord {

namespace {

// The URL as messages show it: a password in it is replaced by "***".
std::string redacted(std::string_view url) {
  const auto scheme_end = url.find("://");
  const auto at = url.rfind('@');
  if (scheme_end == std::string_view::npos || at == std::string_view::npos || at < scheme_end)
    return std::string(url);
  const auto colon = url.find(':', scheme_end + 3);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

[[noreturn]] void bad_url(std::string_view url, const std::string& why) {
  throw std::invalid_argument("coordinator '" + redacted(url) + "': " + why +
                              " (expected redis://[USER@]HOST[:PORT][/DB])");
}

template <class Number>
bool parse_number(std::string_view text, Number& out) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

}  // namespace

std::string redis_endpoint::url() const {
  if (fake) return "fake://redis/" + std::to_string(db);
  std::string out = "redis://";
  if (!user.empty()) out += user + "@";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  out += ":" + std::to_string(port) + "/" + std::to_string(db);
  return out;
}

redis_endpoint parse_redis_url(std::string_view url) {
  constexpr std::string_view scheme = "redis://";
  if (url.starts_with("rediss://")) {
    bad_url(url,
            "TLS (rediss://) is not supported: Debian's hiredis 0.14 has no TLS; reach Redis "
            "over a trusted network or a TLS tunnel (stunnel, spiped) and use redis://");
  }
  if (!url.starts_with(scheme)) bad_url(url, "the scheme must be redis://");
  std::string_view rest = url.substr(scheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    bad_url(url, "query strings and fragments are not supported");
  }
  redis_endpoint out;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view user_info = rest.substr(0, at);
    if (user_info.find(':') != std::string_view::npos) {
      bad_url(url,
              "a password in the URL would show in process lists and logs; put it in a file "
              "and pass its path (--coordinator-password-file)");
    }
    if (user_info.empty()) bad_url(url, "the user before '@' is empty");
    out.user = std::string(user_info);
    rest = rest.substr(at + 1);
  }
  std::string_view host_port = rest;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    host_port = rest.substr(0, slash);
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!parse_number(db, out.db) || out.db < 0)) {
      bad_url(url, "the database '" + std::string(db) + "' is not a number >= 0");
    }
  }
  std::string_view port;
  if (host_port.starts_with('[')) {
    const auto close = host_port.find(']');
    if (close == std::string_view::npos) bad_url(url, "an IPv6 address lacks its ']'");
    out.host = std::string(host_port.substr(1, close - 1));
    const std::string_view after = host_port.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad_url(url, "expected ':' after ']'");
      port = after.substr(1);
      if (port.empty()) bad_url(url, "the port after ':' is empty");
    }
  } else if (const auto colon = host_port.find(':'); colon != std::string_view::npos) {
    out.host = std::string(host_port.substr(0, colon));
    port = host_port.substr(colon + 1);
    if (port.empty()) bad_url(url, "the port after ':' is empty");
  } else {
    out.host = std::string(host_port);
  }
  if (out.host.empty()) bad_url(url, "the host is empty");
  if (!port.empty() && (!parse_number(port, out.port) || out.port == 0)) {
    bad_url(url, "the port '" + std::string(port) + "' is not a number from 1 to 65535");
  }
  return out;
}

std::string read_redis_password(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read the Redis password file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  std::string password = text.str();
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r'))
    password.pop_back();
  if (password.empty()) throw std::runtime_error("the Redis password file " + path + " is empty");
  return password;
}

}  // namespace drover::coord
