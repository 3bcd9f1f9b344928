#pragma once
// The pipelines the service tests submit: text with one module per line,
// `id milliseconds [dep...]`, read by text_pipeline() in place of a pipeline file reader.

#include <drover/coord/service.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/value.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace drover::service_test {

namespace asio = boost::asio;
namespace json = boost::json;

inline std::mutex calls_mutex;
inline std::map<std::string, int> calls;       // body invocations by "pipeline/module"
inline std::atomic<int> long_wait_ms{30'000};  // how long modules named "long*" wait
inline std::atomic<int> bodies_running{0};     // bodies between their start and their end
inline std::atomic<int> most_bodies_running{0};

inline asio::awaitable<json::value> body(std::string key, std::chrono::milliseconds wait,
                                         bool fail) {
  {
    std::lock_guard lock(calls_mutex);
    ++calls[key];
  }
  struct running {
    running() {
      const int now = ++bodies_running;
      int most = most_bodies_running.load();
      while (now > most && !most_bodies_running.compare_exchange_weak(most, now)) {
      }
    }
    ~running() { --bodies_running; }
  } counted;
  asio::steady_timer timer(co_await asio::this_coro::executor, wait);
  co_await timer.async_wait(asio::use_awaitable);
  if (fail) throw std::runtime_error("failed on purpose");
  co_return json::value(key);
}

inline int calls_of(const std::string& key) {
  std::lock_guard lock(calls_mutex);
  return calls[key];
}

/// A module whose id starts with "long" waits long_wait_ms; with "fail" it throws. Its value
/// is "<name>/<id>". Text without modules is refused as `<name>:1:1: no modules`.
inline drover::coord::parsed_pipeline text_pipeline(std::string_view text,
                                                    const std::string& name) {
  drover::coord::parsed_pipeline out;
  drover::pipeline p;
  p.name = name;
  std::istringstream lines{std::string(text)};
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words{line};
    std::string id;
    int ms = 0;
    if (!(words >> id >> ms)) continue;
    std::vector<std::string> deps;
    for (std::string dep; words >> dep;)
      deps.push_back(dep);
    const auto wait = id.starts_with("long") ? std::chrono::milliseconds{long_wait_ms.load()}
                                             : std::chrono::milliseconds{ms};
    const bool fail = id.starts_with("fail");
    const std::string key = name + "/" + id;
    p.add(
        id, [key, wait, fail](drover::module_context&) { return body(key, wait, fail); }, deps);
  }
  if (p.size() == 0) {
    out.problems = name + ":1:1: no modules\n";
  } else {
    out.pipeline = std::move(p);
  }
  return out;
}

}  // namespace drover::service_test
