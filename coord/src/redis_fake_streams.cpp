// redis_fake's stream commands: what Redis 7 answers to the forms drover sends.

#include "redis_fake_state.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace drover::coord::fake_detail {

namespace {

std::optional<std::uint64_t> number(std::string_view text) {
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return n;
}

redis_reply syntax_error() {
  return error("ERR syntax error");
}

// A range bound: "-", "+", "(ID" (exclusive) or "ID".
struct bound {
  stream_id id;
  bool exclusive = false;
};

std::optional<bound> parse_bound(std::string_view text, bool upper_end) {
  if (text == "-") return bound{{0, 0}, false};
  if (text == "+") return bound{{UINT64_MAX, UINT64_MAX}, false};
  bool exclusive = false;
  if (!text.empty() && text.front() == '(') {
    exclusive = true;
    text.remove_prefix(1);
  }
  auto id = parse_id(text, upper_end);
  if (!id) return std::nullopt;
  return bound{*id, exclusive};
}

// Options between the fixed words of a command: COUNT n, BLOCK ms, MKSTREAM, ...
struct read_options {
  std::optional<std::uint64_t> count;
  std::optional<std::uint64_t> block;
  std::size_t streams_at = 0;  // index of the first key after STREAMS
};

std::optional<read_options> parse_read_options(const command& c, std::size_t from) {
  read_options o;
  for (std::size_t i = from; i < c.size(); ++i) {
    const std::string word = upper(c[i]);
    if (word == "STREAMS") {
      o.streams_at = i + 1;
      return o;
    }
    if ((word == "COUNT" || word == "BLOCK") && i + 1 < c.size()) {
      auto n = number(c[++i]);
      if (!n) return std::nullopt;
      (word == "COUNT" ? o.count : o.block) = *n;
      continue;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

redis_reply read_reply(const std::string& key, std::vector<redis_reply> entries) {
  std::vector<redis_reply> one;
  one.push_back(bulk(key));
  one.push_back(array(std::move(entries)));
  std::vector<redis_reply> all;
  all.push_back(array(std::move(one)));
  return array(std::move(all));
}

stream_answer answer(redis_reply r) {
  return stream_answer{std::move(r), std::chrono::milliseconds{0}};
}

stream_answer nothing_yet(const read_options& o) {
  if (!o.block) return answer(nil());
  return stream_answer{std::nullopt, std::chrono::milliseconds{*o.block}};
}

stream_answer xrange(keyspace& keys, const command& c, bool reverse) {
  if (c.size() != 4 && c.size() != 6) return answer(syntax_error());
  // XRANGE key start end / XREVRANGE key end start
  auto low = parse_bound(c[reverse ? 3 : 2], false);
  auto high = parse_bound(c[reverse ? 2 : 3], true);
  std::optional<std::uint64_t> count;
  if (c.size() == 6) {
    if (upper(c[4]) != "COUNT" || !(count = number(c[5]))) return answer(syntax_error());
  }
  if (!low || !high)
    return answer(error("ERR Invalid stream ID specified as stream command argument"));
  bool wrong = false;
  stream* s = keys.find_stream(c[1], wrong);
  if (wrong) return answer(error(std::string(wrong_type)));
  std::vector<redis_reply> out;
  if (s) {
    const auto inside = [&](const stream_id& id) {
      const bool above = low->exclusive ? id > low->id : id >= low->id;
      const bool below = high->exclusive ? id < high->id : id <= high->id;
      return above && below;
    };
    const auto take = [&](const auto& entry) {
      if (!inside(entry.first)) return true;
      if (count && out.size() >= *count) return false;
      out.push_back(entry_reply(entry.first, entry.second));
      return true;
    };
    if (reverse) {
      for (auto it = s->entries.rbegin(); it != s->entries.rend() && take(*it); ++it) {
      }
    } else {
      for (auto it = s->entries.begin(); it != s->entries.end() && take(*it); ++it) {
      }
    }
  }
  return answer(array(std::move(out)));
}

stream_answer xread(keyspace& keys, const command& c) {
  auto o = parse_read_options(c, 1);
  if (!o || o->streams_at + 2 != c.size()) return answer(syntax_error());
  const std::string& key = c[o->streams_at];
  bool wrong = false;
  stream* s = keys.find_stream(key, wrong);
  if (wrong) return answer(error(std::string(wrong_type)));
  std::optional<stream_id> after;
  if (c.back() == "$") {
    after = s ? s->last : stream_id{};
  } else {
    after = parse_id(c.back());
  }
  if (!after) return answer(error("ERR Invalid stream ID specified as stream command argument"));
  std::vector<redis_reply> out;
  if (s) {
    for (auto it = s->entries.upper_bound(*after); it != s->entries.end(); ++it) {
      if (o->count && out.size() >= *o->count) break;
      out.push_back(entry_reply(it->first, it->second));
    }
  }
  if (out.empty()) return nothing_yet(*o);
  return answer(read_reply(key, std::move(out)));
}

stream_answer xgroup(keyspace& keys, const command& c) {
  if (c.size() < 5 || upper(c[1]) != "CREATE") return answer(syntax_error());
  const bool mkstream = c.size() == 6 && upper(c[5]) == "MKSTREAM";
  if (c.size() > 6 || (c.size() == 6 && !mkstream)) return answer(syntax_error());
  bool wrong = false;
  stream* s = keys.find_stream(c[2], wrong);
  if (wrong) return answer(error(std::string(wrong_type)));
  if (!s) {
    if (!mkstream) {
      return answer(
          error("ERR The XGROUP subcommand requires the key to exist. Note that for "
                "CREATE you may want to use the MKSTREAM option to create an empty "
                "stream automatically."));
    }
    s = &std::get<stream>(keys.create(c[2], value{stream{}, std::nullopt}).data);
  }
  if (s->groups.contains(c[3]))
    return answer(error("BUSYGROUP Consumer Group name already exists"));
  auto start = c[4] == "$" ? std::optional<stream_id>(s->last) : parse_id(c[4]);
  if (!start) return answer(error("ERR Invalid stream ID specified as stream command argument"));
  s->groups[c[3]].last_delivered = *start;
  return answer(status("OK"));
}

stream_answer xreadgroup(keyspace& keys, const command& c) {
  if (c.size() < 4 || upper(c[1]) != "GROUP") return answer(syntax_error());
  auto o = parse_read_options(c, 4);
  if (!o || o->streams_at + 2 != c.size() || c.back() != ">") return answer(syntax_error());
  const std::string& key = c[o->streams_at];
  bool wrong = false;
  stream* s = keys.find_stream(key, wrong);
  if (wrong) return answer(error(std::string(wrong_type)));
  auto group = s ? s->groups.find(c[2]) : decltype(s->groups.end()){};
  if (!s || group == s->groups.end()) {
    return answer(error("NOGROUP No such key '" + key + "' or consumer group '" + c[2] +
                        "' in XREADGROUP with GROUP option"));
  }
  std::vector<redis_reply> out;
  for (auto it = s->entries.upper_bound(group->second.last_delivered); it != s->entries.end();
       ++it) {
    if (o->count && out.size() >= *o->count) break;
    out.push_back(entry_reply(it->first, it->second));
    group->second.last_delivered = it->first;
    group->second.pending[it->first] = pending_entry{c[3], run_clock::now()};
  }
  if (out.empty()) return nothing_yet(*o);
  return answer(read_reply(key, std::move(out)));
}

stream_answer xack(keyspace& keys, const command& c) {
  if (c.size() < 4) return answer(syntax_error());
  bool wrong = false;
  stream* s = keys.find_stream(c[1], wrong);
  if (wrong) return answer(error(std::string(wrong_type)));
  long long acked = 0;
  if (s) {
    if (auto group = s->groups.find(c[2]); group != s->groups.end()) {
      for (std::size_t i = 3; i < c.size(); ++i) {
        if (auto id = parse_id(c[i]))
          acked += static_cast<long long>(group->second.pending.erase(*id));
      }
    }
  }
  return answer(integer(acked));
}

stream_answer xautoclaim(keyspace& keys, const command& c) {
  // XAUTOCLAIM key group consumer min-idle-time start [COUNT n]
  if (c.size() != 6 && c.size() != 8) return answer(syntax_error());
  auto min_idle = number(c[4]);
  auto start = parse_id(c[5]);
  std::uint64_t count = 100;
  if (c.size() == 8) {
    auto n = number(c[7]);
    if (upper(c[6]) != "COUNT" || !n) return answer(syntax_error());
    count = *n;
  }
  if (!min_idle || !start) return answer(syntax_error());
  bool wrong = false;
  stream* s = keys.find_stream(c[1], wrong);
  if (wrong) return answer(error(std::string(wrong_type)));
  auto group = s ? s->groups.find(c[2]) : decltype(s->groups.end()){};
  if (!s || group == s->groups.end()) {
    return answer(error("NOGROUP No such key '" + c[1] + "' or consumer group '" + c[2] + "'"));
  }
  const auto now = run_clock::now();
  std::vector<redis_reply> claimed, deleted;
  stream_id next{0, 0};
  auto& pending = group->second.pending;
  for (auto it = pending.lower_bound(*start); it != pending.end();) {
    if (claimed.size() + deleted.size() >= count) {
      next = it->first;
      break;
    }
    if (now - it->second.delivered < std::chrono::milliseconds{*min_idle}) {
      ++it;
      continue;
    }
    auto entry = s->entries.find(it->first);
    if (entry == s->entries.end()) {  // trimmed away: Redis drops it from the pending list
      deleted.push_back(bulk(it->first.text()));
      it = pending.erase(it);
      continue;
    }
    it->second = pending_entry{c[3], now};
    claimed.push_back(entry_reply(entry->first, entry->second));
    ++it;
  }
  std::vector<redis_reply> out;
  out.push_back(bulk(next.text()));
  out.push_back(array(std::move(claimed)));
  out.push_back(array(std::move(deleted)));
  return answer(array(std::move(out)));
}

stream_answer xtrim(keyspace& keys, const command& c) {
  if (c.size() != 4 || upper(c[2]) != "MINID") return answer(syntax_error());
  auto min = parse_id(c[3]);
  if (!min) return answer(syntax_error());
  bool wrong = false;
  stream* s = keys.find_stream(c[1], wrong);
  if (wrong) return answer(error(std::string(wrong_type)));
  long long removed = 0;
  if (s) {
    auto end = s->entries.lower_bound(*min);
    removed = static_cast<long long>(std::distance(s->entries.begin(), end));
    s->entries.erase(s->entries.begin(), end);
  }
  return answer(integer(removed));
}

}  // namespace

std::string upper(std::string_view word) {
  std::string out(word);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

std::optional<stream_id> parse_id(std::string_view text, bool missing_seq_is_max) {
  const auto dash = text.find('-');
  auto ms = number(text.substr(0, dash));
  if (!ms) return std::nullopt;
  if (dash == std::string_view::npos) return stream_id{*ms, missing_seq_is_max ? UINT64_MAX : 0};
  auto seq = number(text.substr(dash + 1));
  if (!seq) return std::nullopt;
  return stream_id{*ms, *seq};
}

stream_id add_entry(keyspace& keys, const std::string& key, std::vector<std::string> fields) {
  bool wrong = false;
  stream* s = keys.find_stream(key, wrong);
  if (!s) s = &std::get<stream>(keys.create(key, value{stream{}, std::nullopt}).data);
  const auto now_ms =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     run_clock::wall_now().time_since_epoch())
                                     .count());
  const stream_id id =
      now_ms > s->last.ms ? stream_id{now_ms, 0} : stream_id{s->last.ms, s->last.seq + 1};
  s->entries.emplace(id, std::move(fields));
  s->last = id;
  return id;
}

std::optional<stream_answer> answer_stream_command(keyspace& keys, const command& c) {
  const std::string name = upper(c.front());
  if (name == "XADD") {
    if (c.size() < 5 || c[2] != "*" || (c.size() - 3) % 2 != 0) return answer(syntax_error());
    bool wrong = false;
    keys.find_stream(c[1], wrong);
    if (wrong) return answer(error(std::string(wrong_type)));
    return answer(
        bulk(add_entry(keys, c[1], std::vector<std::string>(c.begin() + 3, c.end())).text()));
  }
  if (name == "XTRIM") return xtrim(keys, c);
  if (name == "XRANGE") return xrange(keys, c, false);
  if (name == "XREVRANGE") return xrange(keys, c, true);
  if (name == "XREAD") return xread(keys, c);
  if (name == "XGROUP") return xgroup(keys, c);
  if (name == "XREADGROUP") return xreadgroup(keys, c);
  if (name == "XACK") return xack(keys, c);
  if (name == "XAUTOCLAIM") return xautoclaim(keys, c);
  return std::nullopt;
}

}  // namespace drover::coord::fake_detail
