#include "http_routes.hpp"

#include "dashboard_page.hpp"

#include <boost/json/serialize.hpp>

#include <charconv>

namespace drover::coord::detail {

namespace json = boost::json;

namespace {

http_answer json_answer(unsigned status, const json::value& body) {
  http_answer a;
  a.status = status;
  a.body = json::serialize(body) + "\n";
  return a;
}

// Splits "a/b/c" into its segments.
std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto end = path.find('/');
    out.push_back(path.substr(0, end));
    path = end == std::string_view::npos ? std::string_view{} : path.substr(end);
  }
  return out;
}

// The decoded value of `key` in a query string, or nothing.
std::optional<std::string> query_value(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const auto end = query.find('&');
    const auto pair = query.substr(0, end);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == key) {
      return percent_decode(eq == std::string_view::npos ? std::string_view{}
                                                         : pair.substr(eq + 1));
    }
    query = end == std::string_view::npos ? std::string_view{} : query.substr(end + 1);
  }
  return std::nullopt;
}

std::optional<std::int64_t> parse_seq(std::string_view text) {
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

bool authorized(const http_request_view& request, const std::optional<std::string>& token) {
  if (!token) return true;
  constexpr std::string_view scheme = "Bearer ";
  if (!request.authorization.starts_with(scheme)) return false;
  return same_secret(request.authorization.substr(scheme.size()), *token);
}

http_answer submit(const http_request_view& request, std::string_view query, run_service& service) {
  auto name = query_value(query, "name");
  if (!name && query.find("name=") != std::string_view::npos) {
    return error_answer(400, "the query parameter 'name' has a malformed %-escape");
  }
  if (name && (name->size() > 255 || name->find('/') != std::string::npos)) {
    return error_answer(400,
                        "the query parameter 'name' must be a file name of at most 255 "
                        "bytes without '/'");
  }
  if (request.body.empty()) return error_answer(400, "the request body must be a pipeline file");
  auto result = service.submit(request.body, name.value_or("pipeline.json"));
  switch (result.error) {
    case submit_error::none:
      return json_answer(
          202, json::object{{"run", result.run},
                            {"status", service.run_status(result.run).value_or("queued")}});
    case submit_error::invalid:
      return error_answer(400, result.message);
    case submit_error::queue_full: {
      auto a = error_answer(429, result.message);
      a.headers.emplace_back("Retry-After", std::to_string(result.retry_after.count()));
      return a;
    }
    case submit_error::stopping:
      return error_answer(503, result.message);
  }
  return error_answer(500, "unexpected submission result");
}

http_answer run_route(const http_request_view& request, const std::vector<std::string_view>& path,
                      std::string_view query, run_service& service) {
  const std::string run{path[2]};
  if (path.size() == 3) {
    if (request.method != "GET") return error_answer(405, "use GET on /api/runs/ID");
    auto found = service.run_json(run);
    if (!found) return error_answer(404, "no run '" + run + "'");
    return json_answer(200, *found);
  }
  if (path.size() == 4 && path[3] == "cancel") {
    if (request.method != "POST") return error_answer(405, "use POST on /api/runs/ID/cancel");
    if (service.cancel(run)) {
      return json_answer(202, json::object{{"run", run}, {"cancelling", true}});
    }
    auto status = service.run_status(run);
    if (!status) return error_answer(404, "no run '" + run + "'");
    return error_answer(409, "run '" + run + "' already finished: " + *status);
  }
  if (path.size() == 4 && path[3] == "events") {
    if (request.method != "GET") return error_answer(405, "use GET on /api/runs/ID/events");
    if (!service.run_status(run)) return error_answer(404, "no run '" + run + "'");
    event_stream stream{run, -1};
    std::string_view after = request.last_event_id;
    std::optional<std::string> from_query;
    if (after.empty() && query.find("after=") != std::string_view::npos) {
      from_query = query_value(query, "after");
      if (!from_query) return error_answer(400, "the query parameter 'after' is malformed");
      after = *from_query;
    }
    if (!after.empty()) {
      auto seq = parse_seq(after);
      if (!seq) return error_answer(400, "Last-Event-ID must be an event's seq, a number");
      stream.after = *seq;
    }
    http_answer a;
    a.stream = std::move(stream);
    return a;
  }
  return error_answer(404, "no such route: " + std::string(request.target));
}

}  // namespace

http_answer error_answer(unsigned status, std::string_view message) {
  return json_answer(status, json::object{{"error", message}});
}

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%') {
      unsigned value = 0;
      if (i + 2 >= text.size()) return std::nullopt;
      auto [end, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
      if (ec != std::errc{} || end != text.data() + i + 3) return std::nullopt;
      out += static_cast<char>(value);
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

bool same_secret(std::string_view a, std::string_view b) noexcept {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    difference |= static_cast<unsigned char>(a[i] ^ (b.empty() ? 0 : b[i % b.size()]));
  return difference == 0;
}

http_answer route(const http_request_view& request, run_service& service,
                  const std::optional<std::string>& token) {
  const auto question = request.target.find('?');
  const std::string_view path_text = request.target.substr(0, question);
  const std::string_view query =
      question == std::string_view::npos ? std::string_view{} : request.target.substr(question + 1);
  if (!path_text.starts_with('/')) return error_answer(400, "the request target must be a path");
  const auto path = segments(path_text);

  if (path.empty()) {
    if (request.method != "GET") return error_answer(405, "use GET on /");
    http_answer a;
    a.content_type = "text/html; charset=utf-8";
    a.body = std::string(dashboard_page());
    return a;
  }
  if (path.size() == 1 && path[0] == "health") {
    return json_answer(200, json::object{{"status", "ok"}});
  }
  if (path.size() == 1 && path[0] == "ready") {
    const bool ready = service.ready();
    return json_answer(ready ? 200 : 503, json::object{{"ready", ready}});
  }
  if (!authorized(request, token)) {
    auto a = error_answer(401, "this route needs 'Authorization: Bearer <token>'");
    a.headers.emplace_back("WWW-Authenticate", "Bearer");
    return a;
  }
  if (path.size() == 1 && path[0] == "metrics") {
    if (request.method != "GET") return error_answer(405, "use GET on /metrics");
    http_answer a;
    a.content_type = "text/plain; version=0.0.4; charset=utf-8";
    a.body = service.metrics_text();
    return a;
  }
  if (path[0] != "api" || path.size() < 2) {
    return error_answer(404, "no such route: " + std::string(request.target));
  }
  if (path[1] == "runs" && path.size() == 2) {
    if (request.method == "GET") return json_answer(200, service.runs_json());
    if (request.method == "POST") return submit(request, query, service);
    return error_answer(405, "use GET or POST on /api/runs");
  }
  if (path[1] == "runs") return run_route(request, path, query, service);
  if (path[1] == "workers" && path.size() == 2) {
    if (request.method != "GET") return error_answer(405, "use GET on /api/workers");
    return json_answer(200, service.workers_json());
  }
  if (path[1] == "workers" && path.size() == 4 && path[3] == "drain") {
    if (request.method != "POST") return error_answer(405, "use POST on /api/workers/NAME/drain");
    const std::string name{path[2]};
    if (service.drain_worker(name)) {
      return json_answer(202, json::object{{"worker", name}, {"draining", true}});
    }
    return error_answer(404, "no connected remote worker named '" + name +
                                 "' (in-process workers cannot be drained)");
  }
  return error_answer(404, "no such route: " + std::string(request.target));
}

}  // namespace drover::coord::detail
