#include "selection.hpp"

#define BOOST_TEST_MODULE selection
#include <boost/test/unit_test.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

namespace {

using drover::app::apply_selection;
using drover::app::selection;

//   fetch -> build -> test -> package
//   lint (tag check)       docs (tag docs, deps: fetch)
drover::pipeline sample() {
  drover::pipeline p;
  auto body = [](drover::module_context&) -> boost::asio::awaitable<boost::json::value> {
    co_return nullptr;
  };
  p.add("fetch", body);
  p.add("build", body, {"fetch"});
  p.add("test", body, {"build"}).tags({"check"});
  p.add("package", body, {"test"});
  p.add("lint", body).tags({"check", "fast"});
  p.add("docs", body, {"fetch"}).tags({"docs"});
  return p;
}

std::vector<std::string> ids(const drover::pipeline& p) {
  std::vector<std::string> out;
  for (const auto& m : p.specs())
    out.push_back(m.id);
  return out;
}

drover::module_spec module_named(const drover::pipeline& p, std::string_view id) {
  const auto found = p.find(id);
  BOOST_TEST_REQUIRE(found.has_value(), "no module " << id);
  return p.spec(*found);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(selection_flags)

BOOST_AUTO_TEST_CASE(no_flags_keep_everything) {
  auto p = sample();
  BOOST_TEST(apply_selection(p, {}).empty());
  BOOST_TEST(ids(p) == ids(sample()), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(module_pulls_in_its_transitive_dependencies) {
  auto p = sample();
  BOOST_TEST(apply_selection(p, {.modules = {"test"}}).empty());
  const std::vector<std::string> expected{"fetch", "build", "test"};
  BOOST_TEST(ids(p) == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(tag_selects_tagged_modules_and_their_dependencies) {
  auto p = sample();
  BOOST_TEST(apply_selection(p, {.tags = {"check"}}).empty());
  const std::vector<std::string> expected{"fetch", "build", "test", "lint"};
  BOOST_TEST(ids(p) == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(modules_and_tags_together_select_the_union) {
  auto p = sample();
  BOOST_TEST(apply_selection(p, {.modules = {"docs"}, .tags = {"fast"}}).empty());
  const std::vector<std::string> expected{"fetch", "lint", "docs"};
  BOOST_TEST(ids(p) == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(skip_module_keeps_the_module_but_skips_it) {
  auto p = sample();
  BOOST_TEST(apply_selection(p, {.skip_modules = {"build"}}).empty());
  BOOST_TEST(p.size() == 6u);
  const auto& build = module_named(p, "build");
  BOOST_TEST_REQUIRE(static_cast<bool>(build.skip_if));
  BOOST_TEST(build.skip_if().value() == "skipped by --skip-module");
  BOOST_TEST(!module_named(p, "test").skip_if, "dependents are skipped by the engine's cascade");
}

BOOST_AUTO_TEST_CASE(skip_module_combines_with_module) {
  auto p = sample();
  BOOST_TEST(apply_selection(p, {.modules = {"package"}, .skip_modules = {"fetch"}}).empty());
  const std::vector<std::string> expected{"fetch", "build", "test", "package"};
  BOOST_TEST(ids(p) == expected, boost::test_tools::per_element());
  BOOST_TEST(static_cast<bool>(module_named(p, "fetch").skip_if));
}

BOOST_AUTO_TEST_CASE(unknown_ids_and_tags_are_errors_and_change_nothing) {
  auto p = sample();
  const auto errors =
      apply_selection(p, {.modules = {"biuld"}, .tags = {"nightly"}, .skip_modules = {"zzz"}});
  const std::vector<std::string> expected{
      "--module 'biuld': no module has this id (did you mean 'build'?)",
      "--tag 'nightly': no module has this tag", "--skip-module 'zzz': no module has this id"};
  BOOST_TEST(errors == expected, boost::test_tools::per_element());
  BOOST_TEST(ids(p) == ids(sample()), boost::test_tools::per_element());
  BOOST_TEST(!module_named(p, "build").skip_if);
}

BOOST_AUTO_TEST_SUITE_END()
