// redis_fake: links (one per connection), keys with expiry, the string commands, the scripts,
// and the waiting of blocking reads. The stream commands are in redis_fake_streams.cpp.

#include "redis_fake_state.hpp"
#include "redis_scripts.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace drover::coord {

namespace asio = boost::asio;
using namespace fake_detail;

// --- replies and the keyspace ----------------------------------------------------------------

namespace fake_detail {

redis_reply status(std::string text) {
  redis_reply r;
  r.type = redis_reply::kind::status;
  r.text = std::move(text);
  return r;
}

redis_reply error(std::string text) {
  redis_reply r;
  r.type = redis_reply::kind::error;
  r.text = std::move(text);
  return r;
}

redis_reply integer(long long n) {
  redis_reply r;
  r.type = redis_reply::kind::integer;
  r.integer = n;
  return r;
}

redis_reply bulk(std::string text) {
  redis_reply r;
  r.type = redis_reply::kind::string;
  r.text = std::move(text);
  return r;
}

redis_reply nil() {
  return redis_reply{};
}

redis_reply array(std::vector<redis_reply> elements) {
  redis_reply r;
  r.type = redis_reply::kind::array;
  r.elements = std::move(elements);
  return r;
}

redis_reply entry_reply(const stream_id& id, const std::vector<std::string>& fields) {
  std::vector<redis_reply> values;
  values.reserve(fields.size());
  for (const auto& f : fields)
    values.push_back(bulk(f));
  std::vector<redis_reply> entry;
  entry.push_back(bulk(id.text()));
  entry.push_back(array(std::move(values)));
  return array(std::move(entry));
}

value* keyspace::find(const std::string& key) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return nullptr;
  if (it->second.expires && *it->second.expires <= run_clock::now()) {
    keys_.erase(it);
    return nullptr;
  }
  return &it->second;
}

value& keyspace::create(const std::string& key, value v) {
  return keys_[key] = std::move(v);
}

bool keyspace::erase(const std::string& key) {
  return find(key) != nullptr && keys_.erase(key) == 1;
}

std::vector<std::string> keyspace::live_keys() {
  std::vector<std::string> names;
  for (const auto& [name, v] : keys_)
    names.push_back(name);
  std::vector<std::string> live;
  for (const auto& name : names)
    if (find(name)) live.push_back(name);
  return live;
}

stream* keyspace::find_stream(const std::string& key, bool& wrong) {
  wrong = false;
  value* v = find(key);
  if (!v) return nullptr;
  if (auto* s = std::get_if<stream>(&v->data)) return s;
  wrong = true;
  return nullptr;
}

}  // namespace fake_detail

// --- the fake ----------------------------------------------------------------------------------

struct redis_fake::link {
  std::uint64_t generation = 0;
  bool authenticated = false;
  bool closed = false;
  std::shared_ptr<run_timer> waiting;  // a blocking read's timer, while it waits
};

struct redis_fake::state {
  std::mutex mutex;
  std::optional<std::string> password;
  std::uint64_t generation = 1;
  std::uint64_t connections = 0;  // ids handed out by next_connection_id
  bool down = false;
  keyspace keys;
  std::vector<std::weak_ptr<link>> links;

  // Ends every blocking read's wait; each looks again (and finds its link broken, or data).
  void wake_all() {
    std::erase_if(links, [](const std::weak_ptr<link>& w) { return w.expired(); });
    for (const auto& w : links) {
      auto l = w.lock();
      if (l && l->waiting) {
        asio::post(l->waiting->get_executor(), [t = l->waiting] { t->cancel(); });
      }
    }
  }
};

namespace {

std::optional<long long> signed_number(std::string_view text) {
  long long n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return n;
}

const std::string* string_at(keyspace& keys, const std::string& key, bool& wrong) {
  wrong = false;
  value* v = keys.find(key);
  if (!v) return nullptr;
  if (auto* s = std::get_if<std::string>(&v->data)) return s;
  wrong = true;
  return nullptr;
}

// Redis's glob for KEYS: '*', '?' and literal characters (drover's keys have no '[' or '\').
bool glob_match(std::string_view pattern, std::string_view text) {
  if (pattern.empty()) return text.empty();
  if (pattern.front() == '*') {
    for (std::size_t skip = 0; skip <= text.size(); ++skip)
      if (glob_match(pattern.substr(1), text.substr(skip))) return true;
    return false;
  }
  if (text.empty()) return false;
  if (pattern.front() != '?' && pattern.front() != text.front()) return false;
  return glob_match(pattern.substr(1), text.substr(1));
}

redis_reply set(keyspace& keys, const command& c) {
  // SET key value [NX] [PX ms]
  bool nx = false;
  std::optional<long long> px;
  for (std::size_t i = 3; i < c.size(); ++i) {
    const std::string word = upper(c[i]);
    if (word == "NX") {
      nx = true;
    } else if (word == "PX" && i + 1 < c.size() && (px = signed_number(c[++i])) && *px > 0) {
    } else {
      return error("ERR syntax error");
    }
  }
  if (nx && keys.find(c[1])) return nil();
  value v{c[2], std::nullopt};
  if (px) v.expires = run_clock::now() + std::chrono::milliseconds{*px};
  keys.create(c[1], std::move(v));
  return status("OK");
}

redis_reply incr(keyspace& keys, const std::string& key) {
  bool wrong = false;
  const std::string* now = string_at(keys, key, wrong);
  if (wrong) return error(std::string(wrong_type));
  long long n = 0;
  if (now) {
    auto parsed = signed_number(*now);
    if (!parsed) return error("ERR value is not an integer or out of range");
    n = *parsed;
  }
  ++n;
  value* v = keys.find(key);
  if (v) {
    v->data = std::to_string(n);  // INCR keeps the key's expiry
  } else {
    keys.create(key, value{std::to_string(n), std::nullopt});
  }
  return integer(n);
}

redis_reply pexpire(keyspace& keys, const command& c) {
  if (c.size() != 3) return error("ERR wrong number of arguments for 'pexpire' command");
  auto ms = signed_number(c[2]);
  if (!ms) return error("ERR value is not an integer or out of range");
  value* v = keys.find(c[1]);
  if (!v) return integer(0);
  v->expires = run_clock::now() + std::chrono::milliseconds{*ms};
  return integer(1);
}

// The scripts of redis_scripts.hpp, done in C++: KEYS and ARGV as EVAL passes them.
redis_reply eval(keyspace& keys, const command& c) {
  if (c.size() < 3) return error("ERR wrong number of arguments for 'eval' command");
  auto key_count = signed_number(c[2]);
  if (!key_count || *key_count < 0 || 3 + static_cast<std::size_t>(*key_count) > c.size()) {
    return error("ERR Number of keys can't be greater than number of args");
  }
  const std::vector<std::string> k(c.begin() + 3, c.begin() + 3 + *key_count);
  const std::vector<std::string> argv(c.begin() + 3 + *key_count, c.end());
  const std::string_view script = c[1];
  bool wrong = false;
  if (script == detail::acquire_script && k.size() == 2 && argv.size() == 2) {
    if (keys.find(k[0])) return integer(0);
    const redis_reply epoch = incr(keys, k[1]);
    if (epoch.is_error()) return epoch;
    set(keys, {"SET", k[0], std::to_string(epoch.integer) + " " + argv[0], "PX", argv[1]});
    return epoch;
  }
  if ((script == detail::renew_script || script == detail::release_script) && !k.empty() &&
      !argv.empty()) {
    const std::string* now = string_at(keys, k[0], wrong);
    if (!now || *now != argv[0]) return integer(0);
    if (script == detail::release_script) return integer(keys.erase(k[0]) ? 1 : 0);
    if (argv.size() != 2) return error("ERR the renew script takes a value and a ttl");
    return pexpire(keys, {"PEXPIRE", k[0], argv[1]});
  }
  if (script == detail::append_script && k.size() == 2 && argv.size() == 3) {
    const std::string* epoch = string_at(keys, k[0], wrong);
    if (!epoch || *epoch != argv[0]) return error("FENCED " + (epoch ? *epoch : std::string()));
    keys.find_stream(k[1], wrong);
    if (wrong) return error(std::string(wrong_type));
    add_entry(keys, k[1], {"r", argv[1]});
    pexpire(keys, {"PEXPIRE", k[1], argv[2]});
    return integer(1);
  }
  return error("NOSCRIPT the Redis fake does not know this script");
}

}  // namespace

redis_fake::redis_fake(std::optional<std::string> password) : state_(std::make_unique<state>()) {
  state_->password = std::move(password);
}

redis_fake::~redis_fake() = default;

redis_endpoint redis_fake::endpoint() {
  redis_endpoint where;
  where.host = "fake";
  where.fake = shared_from_this();
  return where;
}

void redis_fake::restart() {
  std::lock_guard lock(state_->mutex);
  ++state_->generation;
  state_->wake_all();
}

void redis_fake::set_down(bool down) {
  std::lock_guard lock(state_->mutex);
  if (down && !state_->down) {
    ++state_->generation;
    state_->wake_all();
  }
  state_->down = down;
}

std::vector<std::string> redis_fake::keys() {
  std::lock_guard lock(state_->mutex);
  return state_->keys.live_keys();
}

std::string redis_fake::next_connection_id() {
  std::lock_guard lock(state_->mutex);
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(++state_->connections));
  return id;  // hexadecimal, as dial_redis_master's ids are
}

std::shared_ptr<redis_fake::link> redis_fake::open_link() {
  std::lock_guard lock(state_->mutex);
  if (state_->down) throw redis_error("cannot connect: Connection refused (the fake is down)");
  auto l = std::make_shared<link>();
  l->generation = state_->generation;
  l->authenticated = !state_->password;
  state_->links.push_back(l);
  return l;
}

void redis_fake::close_link(const std::shared_ptr<link>& l) {
  std::lock_guard lock(state_->mutex);
  l->closed = true;
  if (l->waiting) asio::post(l->waiting->get_executor(), [t = l->waiting] { t->cancel(); });
}

asio::awaitable<std::vector<redis_reply>> redis_fake::execute(std::shared_ptr<link> l,
                                                              std::vector<command> commands) {
  const auto executor = co_await asio::this_coro::executor;
  std::vector<redis_reply> replies;
  replies.reserve(commands.size());
  for (const command& c : commands) {
    std::optional<run_clock::time_point> deadline;
    for (;;) {
      std::shared_ptr<run_timer> timer;
      {
        std::lock_guard lock(state_->mutex);
        l->waiting.reset();
        if (l->closed) throw redis_error("the connection was closed");
        if (l->generation != state_->generation) {
          throw redis_error("the connection broke (the Redis fake restarted)");
        }
        if (c.empty()) {
          replies.push_back(error("ERR empty command"));
          break;
        }
        const std::string name = upper(c.front());
        if (name == "AUTH") {
          const bool right = state_->password && c.size() >= 2 && c.back() == *state_->password;
          l->authenticated = l->authenticated || right;
          replies.push_back(right ? status("OK")
                                  : error("WRONGPASS invalid username-password pair or user is "
                                          "disabled."));
          break;
        }
        if (!l->authenticated) {
          replies.push_back(error("NOAUTH Authentication required."));
          break;
        }
        if (auto s = answer_stream_command(state_->keys, c)) {
          if (s->reply) {
            if (name == "XADD") state_->wake_all();
            replies.push_back(std::move(*s->reply));
            break;
          }
          if (!deadline) {
            deadline =
                s->block.count() == 0 ? run_clock::time_point::max() : run_clock::now() + s->block;
          }
          if (run_clock::now() >= *deadline) {
            replies.push_back(nil());
            break;
          }
          timer = std::make_shared<run_timer>(executor);
          l->waiting = timer;
        } else {
          replies.push_back(answer(c, name));
          if (name == "EVAL") state_->wake_all();  // a script may have added an entry
          break;
        }
      }
      timer->expires_at(*deadline);
      co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }
  co_return replies;
}

redis_reply redis_fake::answer(const command& c, const std::string& name) {
  keyspace& keys = state_->keys;
  bool wrong = false;
  if (name == "PING") return status("PONG");
  if (name == "SELECT") return status("OK");
  if (name == "FLUSHALL") {
    keys.clear();
    return status("OK");
  }
  if (name == "GET" && c.size() == 2) {
    const std::string* v = string_at(keys, c[1], wrong);
    if (wrong) return error(std::string(wrong_type));
    return v ? bulk(*v) : nil();
  }
  if (name == "SET" && c.size() >= 3) return set(keys, c);
  if (name == "DEL" || name == "EXISTS") {
    long long n = 0;
    for (std::size_t i = 1; i < c.size(); ++i)
      n += name == "DEL" ? keys.erase(c[i]) : keys.find(c[i]) != nullptr;
    return integer(n);
  }
  if (name == "INCR" && c.size() == 2) return incr(keys, c[1]);
  if (name == "PEXPIRE") return pexpire(keys, c);
  if (name == "KEYS" && c.size() == 2) {
    std::vector<redis_reply> out;
    for (const auto& key : keys.live_keys())
      if (glob_match(c[1], key)) out.push_back(bulk(key));
    return array(std::move(out));
  }
  if (name == "EVAL") return eval(keys, c);
  return error("ERR unknown command '" + c.front() +
               "' (the Redis fake answers only what "
               "drover sends)");
}

}  // namespace drover::coord
