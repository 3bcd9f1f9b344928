#pragma once
// In-process worker slots that several runs of one process share by demand.
//
//     auto slots = std::make_shared<drover::slot_share>(8);
//     drover::run_options options;
//     options.workers = slots->slots();  // alone, a run may use every slot
//     options.shared_slots = slots;
//     engine.async_run(std::move(a), options, ...);
//     engine.async_run(std::move(b), options, ...);  // together they never run more than 8
//
// A run given a share (run_options::shared_slots) starts an attempt on an in-process worker
// only while that worker holds one of the share's slots, and gives the slot back when the
// attempt ends. A slot that frees up while runs wait goes to the waiting run with the fewest
// slots for its demand (held / (ready + running modules)); a run that holds none is always
// served first, so no run starves. Slots move between runs only when attempts end: a running
// attempt is never stopped to rebalance.
//
// Thread-safe. The member functions below `slots()` and `busy()` are what the engine uses for
// each run; embedding code only constructs the share and reads it.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace drover {

class slot_share {
 public:
  /// `slots` >= 1.
  explicit slot_share(std::size_t slots);

  std::size_t slots() const noexcept { return slots_; }
  /// Slots held now, by every run.
  std::size_t busy() const;

  /// A run that takes part. Ids of members that left are used again.
  using member_id = std::uint32_t;
  member_id join();
  /// The member holds no slot and waits for none any more.
  void leave(member_id m);
  /// How many modules the member could run now (ready and running); read when slots are
  /// handed to waiting members. The engine sets it when it changes.
  void set_demand(member_id m, std::size_t modules);

  /// Takes a free slot if there is one.
  bool try_acquire(member_id m);

  /// A place in the queue for a slot.
  struct waiter {
    member_id member = 0;
    std::function<void()> wake;  // called once the slot is granted, from the releasing thread
    bool granted = false;        // [the share's lock]
    bool queued = false;         // [the share's lock]
  };
  /// Queues for a slot. When one is free now it is granted at once, and `wake` runs before
  /// this returns.
  std::shared_ptr<waiter> wait(member_id m, std::function<void()> wake);
  /// Whether the wait ended with a slot (which the member then holds).
  bool granted(const std::shared_ptr<waiter>& w) const;
  /// Leaves the queue. True: it left without a slot. False: the slot had been granted already
  /// and the member holds it.
  bool withdraw(const std::shared_ptr<waiter>& w);

  /// Gives a slot back: to the waiting member with the fewest slots for its demand, or to the
  /// free pool.
  void release(member_id m);

 private:
  struct member_state {
    std::size_t held = 0;
    std::size_t demand = 0;
    bool active = false;
  };
  /// The queued waiter that should get the next slot; nullptr when none waits.
  std::shared_ptr<waiter> next_waiter_locked();
  /// Grants a slot to that waiter (held, granted, out of the queue); nullptr when none waits.
  std::shared_ptr<waiter> grant_locked();

  const std::size_t slots_;
  mutable std::mutex mutex_;
  std::size_t free_;
  std::deque<member_state> members_;  // by member_id; a deque keeps their addresses
  std::vector<member_id> unused_;     // ids of members that left
  std::deque<std::shared_ptr<waiter>> queue_;
};

}  // namespace drover
