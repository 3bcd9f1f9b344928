// Fuzz target: the journal reader (engine/journal.hpp), which reads back whatever a crashed or
// tampered-with run left. Opening with resume either refuses with a journal_error or succeeds;
// after a success the journal takes a new run's records, and a second open reads them back
// with the next epoch.

#include "fuzz_target.hpp"

#include <drover/journal.hpp>
#include <drover/pipeline.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>

#include <memory>
#include <string>

namespace {

drover::pipeline two_modules(std::string name) {
  drover::pipeline p;
  p.name = std::move(name);
  const auto body = [](drover::module_context&) -> boost::asio::awaitable<boost::json::value> {
    co_return 1;
  };
  p.add("a", body);
  p.add("b", body, {"a"});
  return p;
}

}  // namespace

DROVER_FUZZ_TARGET(journal) {
  auto storage = std::make_shared<std::string>(drover::fuzz::as_text(data, size));
  std::shared_ptr<drover::run_journal> journal;
  try {
    journal = drover::run_journal::open_in_memory(storage, {.resume = true});
  } catch (const drover::journal_error& e) {
    drover::fuzz::check(*e.what() != '\0', "a refused journal says why");
    return 0;
  }
  const auto epoch = journal->epoch();
  drover::fuzz::check(epoch >= 1, "a journal's epoch is at least 1");
  for (const char* id : {"a", "b", ""}) {
    if (const auto* previous = journal->previous(id)) (void)boost::json::serialize(previous->value);
  }

  // The records of the run that follows are read back by the next one.
  const auto p = two_modules(journal->resuming() ? journal->recorded_pipeline() : "fuzz");
  drover::fuzz::check(!journal->begin_run(p, "fingerprint"), "the recorded pipeline is accepted");
  journal->append_module("a", "f", drover::module_status::succeeded, 1, boost::json::value(7), "");
  journal->end_run(drover::run_status::succeeded);
  drover::fuzz::check(!journal->failure(), "an in-memory journal does not fail");
  journal.reset();

  std::shared_ptr<drover::run_journal> next;
  try {
    next = drover::run_journal::open_in_memory(storage, {.resume = true});
  } catch (const drover::journal_error& e) {
    drover::fuzz::check(false, e.what());
  }
  drover::fuzz::check(next->epoch() == epoch + 1, "the next run's epoch follows");
  const auto* a = next->previous("a");
  drover::fuzz::check(a && a->status == drover::module_status::succeeded && a->value == 7,
                      "the module recorded last is read back");
  return 0;
}
