#include <drover/coord/lease.hpp>

#include <algorithm>

namespace drover::coord {

lease_keeper::lease_keeper(lease_settings settings, std::uint32_t instance, time_point now)
    : settings_(settings), wake_at_(instance == 0 ? now : now + settings.others_wait) {}

lease_keeper::step lease_keeper::next(time_point now) {
  switch (phase_) {
    case phase::candidate:
      if (now < wake_at_) return step::wait;
      phase_ = phase::asking;
      sent_at_ = now;
      return step::acquire;
    case phase::asking:
      return step::wait;  // for acquired() or refused()
    case phase::holding:
      if (now >= trusted_until_) {
        lose(now);
        return next(now);
      }
      if (now < wake_at_) return step::wait;
      phase_ = phase::renewing;
      sent_at_ = now;
      return step::renew;
    case phase::renewing:
      if (now >= trusted_until_) {
        lose(now);  // whatever the renewal says, it came too late to trust
        return next(now);
      }
      return step::wait;
  }
  return step::wait;
}

void lease_keeper::acquired(std::uint64_t epoch, time_point sent) {
  epoch_ = epoch;
  phase_ = phase::holding;
  trusted_until_ = sent + settings_.ttl - settings_.margin;
  wake_at_ = std::min(sent + settings_.renew_every, trusted_until_);
}

void lease_keeper::refused(time_point now) {
  phase_ = phase::candidate;
  wake_at_ = now + settings_.retry_every;
}

void lease_keeper::renewed(time_point sent) {
  if (phase_ != phase::renewing) return;  // lost meanwhile: a late yes changes nothing
  phase_ = phase::holding;
  trusted_until_ = std::max(trusted_until_, sent + settings_.ttl - settings_.margin);
  wake_at_ = std::min(sent + settings_.renew_every, trusted_until_);
}

void lease_keeper::renew_refused(time_point now) {
  if (phase_ == phase::renewing || phase_ == phase::holding) lose(now);
}

void lease_keeper::renew_failed(time_point now) {
  if (phase_ != phase::renewing) return;
  phase_ = phase::holding;
  wake_at_ = std::min(now + settings_.retry_every, trusted_until_);
}

bool lease_keeper::is_master(time_point now) const noexcept {
  return (phase_ == phase::holding || phase_ == phase::renewing) && now < trusted_until_;
}

void lease_keeper::lose(time_point now) {
  ++losses_;
  phase_ = phase::candidate;
  trusted_until_ = {};
  wake_at_ = now + settings_.retry_every;
}

}  // namespace drover::coord
