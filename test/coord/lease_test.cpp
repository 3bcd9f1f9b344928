// The master lease's decisions (drover/coord/lease.hpp), without Redis: on their own, then
// several instances against a model of the lease key, with delays, crashes and outages.

#include <drover/coord/lease.hpp>

#define BOOST_TEST_MODULE lease
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using drover::coord::lease_keeper;
using drover::coord::lease_settings;
using step = lease_keeper::step;
using time_point = lease_keeper::time_point;

const time_point t0 = time_point{} + 1000s;

lease_settings settings() {
  lease_settings s;
  s.ttl = 9s;
  s.renew_every = 3s;
  s.margin = 2s;
  s.others_wait = 2s;
  s.retry_every = 1s;
  return s;
}

BOOST_AUTO_TEST_CASE(instance_zero_tries_first_and_the_others_a_moment_later) {
  lease_keeper first{settings(), 0, t0};
  BOOST_TEST((first.next(t0) == step::acquire));
  lease_keeper third{settings(), 2, t0};
  BOOST_TEST((third.next(t0) == step::wait));
  BOOST_TEST((third.wake_at() == t0 + 2s));
  BOOST_TEST((third.next(t0 + 2s) == step::acquire));
}

BOOST_AUTO_TEST_CASE(a_holder_renews_and_trusts_its_lease_until_the_margin) {
  lease_keeper k{settings(), 0, t0};
  BOOST_REQUIRE((k.next(t0) == step::acquire));
  k.acquired(7, t0);
  BOOST_TEST(k.epoch() == 7u);
  BOOST_TEST(k.is_master(t0 + 1s));
  BOOST_TEST((k.next(t0 + 1s) == step::wait));
  BOOST_TEST((k.wake_at() == t0 + 3s));
  BOOST_TEST((k.next(t0 + 3s) == step::renew));
  BOOST_TEST((k.next(t0 + 3s) == step::wait));  // the renewal is out
  k.renewed(t0 + 3s);
  // Trusted until the renewal's send + ttl - margin: t0 + 10 s.
  BOOST_TEST(k.is_master(t0 + 9s));
  BOOST_TEST(!k.is_master(t0 + 10s));
  BOOST_TEST(k.losses() == 0u);
}

BOOST_AUTO_TEST_CASE(a_refused_renewal_loses_the_lease_and_makes_a_candidate) {
  lease_keeper k{settings(), 0, t0};
  k.next(t0);
  k.acquired(1, t0);
  BOOST_REQUIRE((k.next(t0 + 3s) == step::renew));
  k.renew_refused(t0 + 3s);
  BOOST_TEST(!k.is_master(t0 + 3s));
  BOOST_TEST(k.losses() == 1u);
  BOOST_TEST((k.next(t0 + 3s) == step::wait));
  BOOST_TEST((k.next(t0 + 4s) == step::acquire));
  k.acquired(2, t0 + 4s);
  BOOST_TEST(k.is_master(t0 + 4s));
  BOOST_TEST(k.epoch() == 2u);
}

BOOST_AUTO_TEST_CASE(while_redis_is_away_the_lease_is_trusted_until_its_time_runs_out) {
  lease_keeper k{settings(), 0, t0};
  k.next(t0);
  k.acquired(1, t0);  // trusted until t0 + 7 s
  BOOST_REQUIRE((k.next(t0 + 3s) == step::renew));
  k.renew_failed(t0 + 3s);
  BOOST_TEST(k.is_master(t0 + 3s));
  BOOST_TEST((k.next(t0 + 3s) == step::wait));
  BOOST_TEST((k.next(t0 + 4s) == step::renew));  // tried again a second later
  k.renew_failed(t0 + 4s);
  BOOST_TEST((k.next(t0 + 5s) == step::renew));
  k.renew_failed(t0 + 5s);
  BOOST_TEST((k.next(t0 + 6s) == step::renew));
  // The answer comes after the lease's time ran out: too late to trust, whatever it says.
  BOOST_TEST((k.next(t0 + 7s) == step::wait));
  BOOST_TEST(!k.is_master(t0 + 7s));
  BOOST_TEST(k.losses() == 1u);
  k.renewed(t0 + 6s);
  BOOST_TEST(!k.is_master(t0 + 7s));
}

BOOST_AUTO_TEST_CASE(a_refused_acquire_is_tried_again) {
  lease_keeper k{settings(), 1, t0};
  BOOST_REQUIRE((k.next(t0 + 2s) == step::acquire));
  k.refused(t0 + 2s);
  BOOST_TEST(!k.is_master(t0 + 2s));
  BOOST_TEST((k.next(t0 + 2500ms) == step::wait));
  BOOST_TEST((k.next(t0 + 3s) == step::acquire));
}

// ---------------------------------------------------------------------------------------------
// Several instances against a model of the lease key, in steps of 100 ms of virtual time.

struct model_lease {
  std::optional<std::uint32_t> holder;
  std::uint64_t epoch = 0;
  time_point expires{};
};

struct request {
  std::uint32_t instance;
  step what;
  time_point sent;
  time_point processed;      // when Redis runs it
  time_point answered;       // when the instance hears back
  std::optional<bool> ok;    // Redis's answer, once it ran the request
  bool unreachable = false;  // Redis was away: the instance hears that it could not ask
  std::uint64_t epoch = 0;
};

struct sweep_counts {
  std::uint64_t epochs = 0, deaths = 0, outages = 0;
};

void run_instances(std::uint32_t seed, sweep_counts& counts) {
  std::mt19937 rng(seed);
  const lease_settings s = settings();
  constexpr std::uint32_t instances = 3;
  std::vector<lease_keeper> keepers;
  std::vector<bool> alive(instances, true);
  std::vector<bool> waiting(instances, false);
  for (std::uint32_t i = 0; i < instances; ++i)
    keepers.emplace_back(s, i, t0);
  model_lease redis;
  std::deque<request> in_flight;
  bool redis_up = true;
  std::optional<time_point> master_died;
  time_point outage_ended = t0;
  std::uint32_t deaths = 0;
  std::uint64_t last_epoch = 0;
  std::uniform_int_distribution<int> delay_ms(0, 600), percent(0, 99);
  for (time_point now = t0; now < t0 + 300s; now += 100ms) {
    // Redis processes requests that reached it, and instances hear the answers.
    for (auto& r : in_flight) {
      if (r.ok || r.unreachable || now < r.processed) continue;
      if (!redis_up) {
        r.unreachable = true;
        continue;
      }
      const bool free = !redis.holder || r.processed >= redis.expires;
      if (r.what == step::acquire) {
        r.ok = free;
        if (free) {
          redis.holder = r.instance;
          r.epoch = ++redis.epoch;
          redis.expires = r.processed + s.ttl;
        }
      } else {
        r.ok = !free && redis.holder == r.instance && redis.epoch == r.epoch;
        if (*r.ok) redis.expires = r.processed + s.ttl;
      }
    }
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      if ((!it->ok && !it->unreachable) || now < it->answered) {
        ++it;
        continue;
      }
      lease_keeper& k = keepers[it->instance];
      waiting[it->instance] = false;
      if (alive[it->instance]) {
        if (it->what == step::acquire) {
          if (it->ok && *it->ok) {
            k.acquired(it->epoch, it->sent);
            BOOST_TEST_REQUIRE(it->epoch > last_epoch);  // epochs only grow
            last_epoch = it->epoch;
            ++counts.epochs;
          } else {
            k.refused(now);
          }
        } else if (it->unreachable) {
          k.renew_failed(now);
        } else if (*it->ok) {
          k.renewed(it->sent);
        } else {
          k.renew_refused(now);
        }
      }
      it = in_flight.erase(it);
    }
    // Faults: the master dies, Redis goes away for a while.
    if (percent(rng) == 0 && redis_up) {
      redis_up = false;
      ++counts.outages;
    }
    if (!redis_up && percent(rng) < 5) {
      redis_up = true;
      outage_ended = now;
    }
    for (std::uint32_t i = 0; i < instances; ++i) {
      if (alive[i] && keepers[i].is_master(now) && percent(rng) == 0 && !master_died &&
          deaths + 1 < instances) {
        alive[i] = false;
        master_died = now;
        ++deaths;
        ++counts.deaths;
      }
    }
    // Each live instance does what its keeper says.
    for (std::uint32_t i = 0; i < instances; ++i) {
      if (!alive[i] || waiting[i]) continue;
      const step what = keepers[i].next(now);
      if (what == step::wait) continue;
      request r{i, what, now, now + std::chrono::milliseconds(delay_ms(rng)), {}, {}, 0};
      r.answered = r.processed + std::chrono::milliseconds(delay_ms(rng));
      if (what == step::renew) r.epoch = keepers[i].epoch();
      in_flight.push_back(r);
      waiting[i] = true;
    }
    // Never two masters at once.
    int masters = 0;
    for (std::uint32_t i = 0; i < instances; ++i)
      masters += alive[i] && keepers[i].is_master(now) ? 1 : 0;
    BOOST_TEST_REQUIRE(masters <= 1, "seed " << seed << ": two masters at once");
    // A dead master is replaced within twice the lease's time while Redis is up.
    if (master_died && masters == 1) master_died.reset();
    if (master_died && redis_up && now - std::max(*master_died, outage_ended) > 2 * s.ttl) {
      BOOST_FAIL("seed " << seed << ": no master since one died");
    }
  }
}

BOOST_AUTO_TEST_CASE(never_two_masters_whatever_the_delays_crashes_and_outages) {
  sweep_counts counts;
  for (std::uint32_t seed = 1; seed <= 200; ++seed)
    run_instances(seed, counts);
  // The sweep did meet what it claims to survive.
  BOOST_TEST(counts.deaths >= 200u);
  BOOST_TEST(counts.outages >= 200u);
  BOOST_TEST(counts.epochs >= 400u);
}

}  // namespace
