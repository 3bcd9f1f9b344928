// In-process slots shared with other runs (run_options::shared_slots, drover/slot_share.hpp):
// a worker holds one of the share's slots while its attempt runs.

#include "run_driver.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace drover::detail {

namespace asio = boost::asio;

run_driver::~run_driver() {
  if (slot_member_) options_.shared_slots->leave(*slot_member_);
}

// Waits until `w` holds a slot for the dispatched attempt of `i`. False, holding none, when the
// run will not start `i` after all (a stop) or is over: the worker then reports it not started.
asio::awaitable<bool> run_driver::take_shared_slot(local_worker& w, module_index i) {
  slot_share& share = *options_.shared_slots;
  if (share.try_acquire(*slot_member_)) {
    w.holds_slot = true;
    co_return true;
  }
  // The share wakes the worker on its own strand; a stop or the end of the run wakes it too
  // (wake_slot_waiters). A wake meant for an earlier wait only makes this one look again.
  auto waiter = share.wait(*slot_member_, [self = shared_from_this(), &w] {
    asio::post(w.strand, [self, &w] { w.slot_timer.cancel(); });
  });
  for (;;) {
    if (share.granted(waiter)) break;
    if (slots_closed_.load(std::memory_order_acquire) || !may_start(i)) {
      if (share.withdraw(waiter)) co_return false;
      break;  // granted meanwhile
    }
    w.slot_timer.expires_at(asio::steady_timer::time_point::max());
    co_await w.slot_timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  w.holds_slot = true;
  co_return true;
}

// On the worker's strand. Idempotent: an abandoned attempt gives its slot back when the run
// walks away from it, not when its body at last returns.
void run_driver::release_shared_slot(local_worker& w) {
  if (!w.holds_slot) return;
  w.holds_slot = false;
  options_.shared_slots->release(*slot_member_);
}

// A stop or the end of the run: workers waiting for a slot look again whether they still need
// one.
void run_driver::wake_slot_waiters() {
  if (!slot_member_) return;
  for (local_worker& w : workers_)
    asio::post(w.strand, [self = shared_from_this(), &w] { w.slot_timer.cancel(); });
}

// The share needs demand only to compare runs, so a change of less than an eighth is not worth
// its lock (a wide run's demand changes with every module).
void run_driver::publish_demand() {
  const std::size_t demand = core_->local_demand();
  const std::size_t change =
      demand > published_demand_ ? demand - published_demand_ : published_demand_ - demand;
  if (change == 0 || (demand != 0 && published_demand_ != 0 && change * 8 < published_demand_))
    return;
  published_demand_ = demand;
  options_.shared_slots->set_demand(*slot_member_, demand);
}

}  // namespace drover::detail
