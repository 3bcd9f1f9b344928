// Module values are boost::json::value; a user type travels through them with the
// value_from / value_to customization points (tag_invoke overloads found by ADL).
#include <drover/drover.hpp>

#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <iostream>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace json = boost::json;

namespace shop {

struct build_info {
  std::string artifact;
  int size_kb = 0;
  std::vector<std::string> warnings;
};

void tag_invoke(json::value_from_tag, json::value& out, const build_info& b) {
  json::object& o = out.emplace_object();
  o["artifact"] = b.artifact;
  o["size_kb"] = b.size_kb;
  o["warnings"] = json::value_from(b.warnings);
}

build_info tag_invoke(json::value_to_tag<build_info>, const json::value& in) {
  const json::object& o = in.as_object();
  return {json::value_to<std::string>(o.at("artifact")), json::value_to<int>(o.at("size_kb")),
          json::value_to<std::vector<std::string>>(o.at("warnings"))};
}

}  // namespace shop

asio::awaitable<json::value> build(drover::module_context&) {
  co_return json::value_from(shop::build_info{"shop-1.4.0.tar.gz", 2048, {"unused variable"}});
}

asio::awaitable<json::value> publish(drover::module_context& ctx) {
  auto info = ctx.result<shop::build_info>("build");
  co_return "published " + info.artifact + " (" + std::to_string(info.size_kb) + " KiB)";
}

int main() {
  drover::pipeline p;
  p.add("build", build);
  p.add("publish", publish, {"build"});

  asio::io_context io;
  drover::engine engine{io.get_executor()};
  engine.async_run(std::move(p), [](drover::run_report report) {
    // The report keeps every value, so the caller can read them typed as well.
    auto info = json::value_to<shop::build_info>(report.find("build")->value);
    std::cout << "build: " << info.artifact << ", " << info.size_kb << " KiB, "
              << info.warnings.size() << " warning(s)\n";
    std::cout << "publish: " << json::value_to<std::string>(report.find("publish")->value) << "\n";
    std::cout << "build as JSON: " << report.find("build")->value << "\n";
  });
  io.run();
}
