// Runs a two-module pipeline through an installed or embedded drover and checks the result:
// the exit code tells the package test whether drover::engine and drover::modules work.
#include <drover/drover.hpp>
#include <drover/modules/registry.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>

#include <cstdio>
#include <optional>

namespace {

int fail(const char* what) {
  std::fprintf(stderr, "drover_consumer: %s\n", what);
  return 1;
}

}  // namespace

int main() {
  drover::pipeline p;
  p.name = "consumer";
  p.add("answer", [](drover::module_context&) -> boost::asio::awaitable<boost::json::value> {
    co_return 42;
  });
  p.add("done", drover::module_body{}, {"answer"}).kind("noop", boost::json::object{});

  auto problems = drover::modules::builtin_registry().resolve(p);
  if (!problems.empty()) return fail(drover::format_problems(problems).c_str());

  boost::asio::io_context io;
  drover::engine engine{io.get_executor()};
  std::optional<drover::run_report> report;
  engine.async_run(std::move(p), [&](drover::run_report r) { report = std::move(r); });
  io.run();

  if (!report) return fail("the run never completed");
  if (report->status != drover::run_status::succeeded) return fail("the run did not succeed");
  const auto answer = report->find("answer");
  if (!answer || answer->value != boost::json::value(42)) return fail("answer is not 42");
  const auto noop = report->find("done");
  if (!noop || noop->status != drover::module_status::succeeded) return fail("done did not run");

  std::printf("drover %s: answer = 42, done = succeeded\n", drover::version_string);
  return 0;
}
