#pragma once
// Who is the master of a run coordinated through Redis: the decisions of the master lease,
// without Redis and without a clock (docs/redis.md, "The master lease").
//
// Every instance runs one lease_keeper. It says when to try to take the lease, when to renew
// it, and when a lease it held must be taken as lost. The driver carries that out against
// Redis (redis_lease) and feeds back what happened, with the time:
//
//     lease_keeper keeper{settings, instance_index, now};
//     for (;;) {
//       switch (keeper.next(now)) {                     // what to do now
//         case lease_keeper::step::acquire: ... keeper.acquired(epoch, now) or keeper.refused(now)
//         case lease_keeper::step::renew:   ... keeper.renewed(now), renew_refused or renew_failed
//         case lease_keeper::step::wait:    sleep until keeper.wake_at()
//       }
//       if (!keeper.is_master(now)) stop acting as master: another may hold the lease now
//     }
//
// Safety. The lease in Redis expires `ttl` after its last renewal. The holder stops trusting it
// `margin` before that (measured from when it sent the renewal, so a slow reply only shortens
// it), so two instances never both believe they are the master while clocks run at the same
// rate. Every master action also carries the lease's epoch, which only grows, so whatever an
// old master still sends is rejected (fencing).

#include <chrono>
#include <cstdint>

namespace drover::coord {

struct lease_settings {
  /// How long the lease lasts in Redis after its last renewal.
  std::chrono::milliseconds ttl{std::chrono::seconds(10)};
  /// The holder renews this often (ttl / 3 by default).
  std::chrono::milliseconds renew_every{std::chrono::milliseconds(3333)};
  /// The holder stops trusting its lease this long before it expires.
  std::chrono::milliseconds margin{std::chrono::seconds(2)};
  /// Instances other than 0 first try this long after they start, so that instance 0, when
  /// it is alive, becomes the master.
  std::chrono::milliseconds others_wait{std::chrono::seconds(2)};
  /// A non-holder tries again this often, to take over from a master that died.
  std::chrono::milliseconds retry_every{std::chrono::seconds(1)};
};

class lease_keeper {
 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;
  enum class step : std::uint8_t { wait, acquire, renew };

  lease_keeper(lease_settings settings, std::uint32_t instance, time_point now);

  /// What to do now. After `acquire` or `renew`, report the result before asking again.
  step next(time_point now);
  /// When next() will have something to do, while it says `wait`.
  time_point wake_at() const noexcept { return wake_at_; }

  /// The lease was taken with this epoch; `sent` is when the request was sent.
  void acquired(std::uint64_t epoch, time_point sent);
  /// Another instance holds it, or Redis could not be asked.
  void refused(time_point now);
  /// The renewal sent at `sent` succeeded.
  void renewed(time_point sent);
  /// The lease is no longer ours: it expired, or another instance took it.
  void renew_refused(time_point now);
  /// Redis could not be asked (it is restarting, the network blinked): the lease is still
  /// trusted until its time runs out, and the renewal is tried again meanwhile.
  void renew_failed(time_point now);

  /// Whether this instance may act as the master now.
  bool is_master(time_point now) const noexcept;
  /// How many times a lease this instance held was lost. A lost lease makes the instance a
  /// candidate again; if it takes the lease back, it has a new epoch.
  std::uint32_t losses() const noexcept { return losses_; }
  /// The epoch of the lease held, or last held.
  std::uint64_t epoch() const noexcept { return epoch_; }

 private:
  enum class phase : std::uint8_t { candidate, asking, holding, renewing };
  void lose(time_point now);

  lease_settings settings_;
  phase phase_ = phase::candidate;
  time_point wake_at_;
  time_point trusted_until_{};
  time_point sent_at_{};
  std::uint64_t epoch_ = 0;
  std::uint32_t losses_ = 0;
};

}  // namespace drover::coord
