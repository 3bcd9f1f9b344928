#include "progress.hpp"

#define BOOST_TEST_MODULE progress
#include <boost/test/unit_test.hpp>

#include <boost/asio/io_context.hpp>

#include <regex>
#include <sstream>

namespace {

using namespace drover;
using namespace drover::app;
using std::chrono::milliseconds;

const wall_clock::time_point t0 = wall_clock::time_point{std::chrono::hours{24 * 365 * 56}};

event make_event(event_type type, std::string_view module = {}, std::uint32_t index = 0) {
  event e{};
  e.type = type;
  e.ts = t0;
  e.module = module;
  e.index = index;
  return e;
}

event started(std::string_view module, std::uint32_t index, std::uint32_t attempt,
              wall_clock::time_point ts = t0) {
  auto e = make_event(event_type::module_started, module, index);
  e.attempt = attempt;
  e.worker = "local-0";
  e.ts = ts;
  return e;
}

event finished(std::string_view module, std::uint32_t index, module_status status,
               std::string_view message = {}, wall_clock::time_point ts = t0) {
  auto e = make_event(event_type::module_finished, module, index);
  e.status = status;
  e.message = message;
  e.ts = ts;
  return e;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(progress)

BOOST_AUTO_TEST_CASE(describes_module_events) {
  BOOST_TEST(describe_event(started("build", 0, 1), std::nullopt).value() ==
             "started  build (attempt 1, local-0)");
  auto retry = make_event(event_type::module_retrying, "build");
  retry.attempt = 1;
  retry.delay = milliseconds{200};
  retry.message = "exit code 2\nlast output line";
  BOOST_TEST(describe_event(retry, std::nullopt).value() ==
             "retrying build in 200ms (attempt 1: exit code 2)");
  BOOST_TEST(
      describe_event(finished("build", 0, module_status::succeeded), milliseconds{1234}).value() ==
      "finished build succeeded 1.2s");
  BOOST_TEST(describe_event(finished("test", 1, module_status::skipped, "dependency build failed"),
                            std::nullopt)
                 .value() == "finished test skipped: dependency build failed");
  BOOST_TEST(!describe_event(make_event(event_type::module_ready, "a"), std::nullopt));
  BOOST_TEST(!describe_event(make_event(event_type::run_started), std::nullopt));
}

BOOST_AUTO_TEST_CASE(plain_lines_carry_time_and_duration) {
  std::ostringstream out;
  event_printer print{out};
  print(make_event(event_type::run_started));
  print(make_event(event_type::module_ready, "build"));
  print(started("build", 0, 1));
  print(started("build", 0, 2, t0 + milliseconds{500}));
  print(finished("build", 0, module_status::failed, "exit code 1\nmore", t0 + milliseconds{1500}));
  const std::regex expected{
      "\\d\\d:\\d\\d:\\d\\d\\.\\d\\d\\d started  build \\(attempt 1, local-0\\)\n"
      "\\d\\d:\\d\\d:\\d\\d\\.\\d\\d\\d started  build \\(attempt 2, local-0\\)\n"
      "\\d\\d:\\d\\d:\\d\\d\\.\\d\\d\\d finished build failed 1\\.5s: exit code 1\n"};
  BOOST_TEST(std::regex_match(out.str(), expected), out.str());
}

BOOST_AUTO_TEST_CASE(live_display_redraws_and_erases_itself) {
  boost::asio::io_context io;
  std::ostringstream out;
  live_progress live{io.get_executor(), out, 80, 2};
  live.on_event(make_event(event_type::run_started));
  live.on_event(started("compile", 0, 1));
  live.start();
  io.run_for(milliseconds{350});
  const std::string drawn = out.str();
  BOOST_TEST(drawn.find("[0/2] 1 running\n  compile  ") != std::string::npos, drawn);
  // More than one frame, each replacing the last: cursor up and clear to the end.
  BOOST_TEST(drawn.find("\x1b[2F\x1b[J") != std::string::npos, drawn);

  live.on_event(finished("compile", 0, module_status::succeeded));
  live.stop();
  io.run_for(milliseconds{200});
  const std::string after_stop = out.str().substr(drawn.size());
  BOOST_TEST(after_stop.starts_with("\x1b[2F\x1b[J"), "the live lines are erased");
  BOOST_TEST(after_stop.find("finished compile succeeded") != std::string::npos, after_stop);
  BOOST_TEST(after_stop.find("running") == std::string::npos, "nothing is drawn after stop");
  BOOST_TEST(io.stopped(), "the redraw timer is gone after stop");
}

BOOST_AUTO_TEST_SUITE_END()
