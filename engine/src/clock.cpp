#include <drover/clock.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>

namespace drover {

namespace asio = boost::asio;
using wait_handler = asio::any_completion_handler<void(boost::system::error_code)>;

namespace {

thread_local virtual_time* installed = nullptr;

// The report's timestamps in a simulation: 2000-01-01T00:00:00Z plus virtual time.
constexpr std::chrono::seconds virtual_wall_origin{946'684'800};

// Virtual time starts an hour past the clock's epoch, so that no time a run computes is the
// epoch itself, which some code reads as "unset".
constexpr std::chrono::hours virtual_start{1};

}  // namespace

struct virtual_time::waiter {
  asio::any_io_executor executor;
  run_clock::time_point expiry = run_clock::time_point::max();
  std::uint64_t generation = 0;  // bumped whenever pending waits complete
  std::vector<wait_handler> handlers;

  // Posts every pending wait's handler with `ec`, as Asio's timers do. A wait cancelled
  // through its cancellation slot is completed from the slot's handler, which must not clear
  // (destroy) itself.
  std::size_t complete(boost::system::error_code ec, bool clear_slots = true) {
    ++generation;
    // Posting never runs a handler inline, so nothing adds to `handlers` meanwhile; clearing
    // it afterwards keeps its capacity for the next wait.
    const std::size_t count = handlers.size();
    for (auto& h : handlers) {
      if (auto slot = asio::get_associated_cancellation_slot(h); clear_slots && slot.is_connected())
        slot.clear();
      // Through the handler's associated executor, as Asio's own completions go.
      asio::post(executor, asio::append(std::move(h), ec));
    }
    handlers.clear();
    return count;
  }
};

run_clock::time_point run_clock::now() noexcept {
  if (installed != nullptr) return installed->now();
  return std::chrono::steady_clock::now();
}

std::chrono::system_clock::time_point run_clock::wall_now() noexcept {
  if (installed != nullptr) return installed->wall_now();
  return std::chrono::system_clock::now();
}

virtual_time::virtual_time(std::uint64_t seed)
    : start_(run_clock::time_point{} + virtual_start), now_(start_), ties_(seed) {}

virtual_time::~virtual_time() {
  if (installed == this) installed = nullptr;
}

std::chrono::system_clock::time_point virtual_time::wall_now() const noexcept {
  return std::chrono::system_clock::time_point{virtual_wall_origin} +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(now_ - start_);
}

virtual_time* virtual_time::current() noexcept {
  return installed;
}

virtual_time::scope::scope(virtual_time& time) noexcept : previous_(installed) {
  installed = &time;
}

virtual_time::scope::~scope() {
  installed = previous_;
}

void virtual_time::schedule(const std::shared_ptr<waiter>& w) {
  heap_.push_back(entry{w->expiry, ties_(), w->generation, w});
  std::push_heap(heap_.begin(), heap_.end(), later{});
}

void virtual_time::track(const std::shared_ptr<waiter>& w) {
  if (timers_.size() >= prune_timers_at_) {
    std::erase_if(timers_, [](const std::weak_ptr<waiter>& t) { return t.expired(); });
    prune_timers_at_ = std::max<std::size_t>(1024, 2 * timers_.size());
  }
  timers_.push_back(w);
}

void virtual_time::drop_pending() {
  // First take every handler out, then destroy them: destroying one may destroy timers whose
  // waits must then find nothing left to complete.
  std::vector<wait_handler> dropped;
  for (const auto& weak : timers_) {
    if (auto w = weak.lock()) {
      ++w->generation;
      for (auto& h : w->handlers)
        dropped.push_back(std::move(h));
      w->handlers.clear();
    }
  }
  heap_.clear();
  dropped.clear();
}

bool virtual_time::advance() {
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), later{});
    entry next = std::move(heap_.back());
    heap_.pop_back();
    auto w = next.timer.lock();
    // Rearmed, cancelled or destroyed since it was scheduled: nothing to fire.
    if (!w || w->generation != next.generation || w->handlers.empty()) continue;
    now_ = std::max(now_, next.at);
    ++fired_;
    w->complete({});
    return true;
  }
  return false;
}

run_timer::run_timer(executor_type executor)
    : executor_(std::move(executor)), time_(virtual_time::current()) {
  if (time_ != nullptr) {
    virtual_ = std::make_shared<virtual_time::waiter>();
    virtual_->executor = executor_;
    time_->track(virtual_);
  } else {
    real_ = std::make_unique<asio::steady_timer>(executor_);
  }
}

run_timer::~run_timer() {
  if (virtual_) virtual_->complete(asio::error::operation_aborted);
}

run_timer::time_point run_timer::expiry() const {
  return virtual_ ? virtual_->expiry : real_->expiry();
}

std::size_t run_timer::expires_at(time_point at) {
  if (!virtual_) return real_->expires_at(at);
  const std::size_t cancelled = virtual_->complete(asio::error::operation_aborted);
  virtual_->expiry = at;
  return cancelled;
}

std::size_t run_timer::cancel() {
  if (!virtual_) return real_->cancel();
  return virtual_->complete(asio::error::operation_aborted);
}

void run_timer::start_wait(wait_handler handler) {
  if (!virtual_) return real_->async_wait(std::move(handler));
  // A cancellation of the waiting operation itself (a cancelled coroutine) ends the wait, as
  // it ends an Asio timer's.
  if (auto slot = asio::get_associated_cancellation_slot(handler); slot.is_connected()) {
    slot.assign([w = std::weak_ptr<virtual_time::waiter>(virtual_)](asio::cancellation_type) {
      if (auto waiter = w.lock()) waiter->complete(asio::error::operation_aborted, false);
    });
  }
  virtual_->handlers.push_back(std::move(handler));
  // A timer set to the end of time waits only for a cancel.
  if (virtual_->handlers.size() == 1 && virtual_->expiry != time_point::max())
    time_->schedule(virtual_);
}

}  // namespace drover
