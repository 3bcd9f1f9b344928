#include <drover/coord/invariant_checker.hpp>

namespace drover::coord {

namespace {

bool is_glob(const std::string& resource) {
  return resource.find_first_of("*?[") != std::string::npos;
}

bool terminal(module_status s) {
  return s != module_status::pending;
}

// A dependency that ended so lets its dependents run.
bool releases_dependents(module_status s) {
  return s == module_status::succeeded || s == module_status::cached ||
         s == module_status::ignored_failure;
}

}  // namespace

std::string violation::describe() const {
  std::string out = "step " + std::to_string(step);
  if (!module.empty()) out += ", module " + module;
  out += ": " + invariant;
  if (!detail.empty()) out += ": " + detail;
  return out;
}

invariant_checker::invariant_checker(const plan& p)
    : modules_(p.size()), state_(p.size()), journaled_(p.size(), false) {
  for (const auto& [name, capacity] : p.pipeline().pools)
    pool_capacity_[name] = capacity;
  id_begin_.reserve(p.size() + 1);
  dep_begin_.reserve(p.size() + 1);
  for (plan::index i = 0; i < p.size(); ++i) {
    id_begin_.push_back(static_cast<std::uint32_t>(ids_.size()));
    ids_ += p.id(i);
    dep_begin_.push_back(static_cast<std::uint32_t>(deps_.size()));
    deps_.insert(deps_.end(), p.predecessors(i).begin(), p.predecessors(i).end());
    module_model& m = modules_[i];
    const auto& record = p.record(i);
    m.retries = record.retries;
    m.always_run = (record.flags & detail::module_flag::always_run) != 0;
    m.ignore_failure = (record.flags & detail::module_flag::ignore_failure) != 0;
    const module_constraints* c = p.constraints(i);
    if (c == nullptr) continue;
    constraint_model model;
    model.run_alone = c->run_alone;
    model.keys = c->not_in_parallel;
    if (!c->pool.empty()) {
      model.pool = c->pool;
      model.pool_slots = c->pool_slots;
    }
    for (const resource_claim& claim : c->claims) {
      // Glob claims conflict by overlap, which the engine's matcher decides; the checker
      // compares literal paths only (docs/simulation.md).
      if (!is_glob(claim.resource))
        model.literal_claims.emplace_back(claim.resource, claim.mode == claim_mode::write);
    }
    if (model.run_alone || !model.pool.empty() || !model.keys.empty() ||
        !model.literal_claims.empty()) {
      m.constraint = static_cast<std::uint32_t>(constrained_.size());
      constrained_.push_back(std::move(model));
    }
  }
  id_begin_.push_back(static_cast<std::uint32_t>(ids_.size()));
  dep_begin_.push_back(static_cast<std::uint32_t>(deps_.size()));
}

void invariant_checker::add(violation v) {
  violations_.push_back(std::move(v));
}

void invariant_checker::report(const char* invariant, std::uint64_t step, std::uint32_t module,
                               std::string detail) {
  violation v;
  v.invariant = invariant;
  v.step = step;
  if (module < modules_.size()) v.module = id(module);
  v.detail = std::move(detail);
  violations_.push_back(std::move(v));
}

void invariant_checker::on_event(const event& e) {
  last_step_ = e.seq;
  if (e.module.empty()) return;
  if (e.index >= modules_.size()) {
    return report(
        "known module", e.seq, e.index,
        "event names index " + std::to_string(e.index) + " of " + std::to_string(modules_.size()));
  }
  module_state& s = state_[e.index];
  switch (e.type) {
    case event_type::module_started:
      return start(e);
    case event_type::module_retrying:
      if (!s.running) report("no attempt lost", e.seq, e.index, "a retry of no running attempt");
      end_attempt(e.index);
      if (++s.retries_used > modules_[e.index].retries) {
        report("attempts within limits", e.seq, e.index,
               "retry " + std::to_string(s.retries_used) + " of " +
                   std::to_string(modules_[e.index].retries) + " allowed");
      }
      return;
    case event_type::module_reassigned:
      if (!s.running) report("no attempt lost", e.seq, e.index, "reassigned while not running");
      end_attempt(e.index);
      return;
    case event_type::module_finished:
      if (s.finished) {
        report("exactly one accepted result", e.seq, e.index,
               std::string("finished again, ") + std::string(to_string(e.status)) + " after " +
                   std::string(to_string(s.status)));
      }
      if (s.running) end_attempt(e.index);
      // The engine ends a module with an internal error only when its own rules broke (a
      // deadlock it detected, say): a bug, whatever the faults were.
      if (e.message.starts_with("internal error"))
        report("no internal error", e.seq, e.index, std::string(e.message));
      s.finished = true;
      s.status = e.status;
      if (!terminal(e.status))
        report("every module terminal", e.seq, e.index, "finished as pending");
      return;
    default:
      return;
  }
}

void invariant_checker::start(const event& e) {
  const module_model& m = modules_[e.index];
  module_state& s = state_[e.index];
  if (journaled_[e.index])
    report("journaled success not run again", e.seq, e.index, "started after a resume");
  if (s.finished) report("exactly one accepted result", e.seq, e.index, "started after it ended");
  if (s.running) report("no attempt lost", e.seq, e.index, "a second attempt while one is running");
  for (std::uint32_t d : deps(e.index)) {
    const module_state& dep = state_[d];
    if (!dep.finished) {
      report("dependency order", e.seq, e.index, "started before " + std::string(id(d)) + " ended");
    } else if (!releases_dependents(dep.status) && !m.always_run && !modules_[d].ignore_failure) {
      report("dependency order", e.seq, e.index,
             "started although " + std::string(id(d)) + " ended " +
                 std::string(to_string(dep.status)));
    }
  }
  const constraint_model* c = constraints(e.index);
  if (alone_running_ || (c && c->run_alone && running_ > 0))
    report("constraints", e.seq, e.index, "started beside a module that runs alone");
  if (c && !c->pool.empty()) {
    const std::uint32_t used = pool_used_[c->pool] += c->pool_slots;
    const auto capacity = pool_capacity_.find(c->pool);
    if (capacity != pool_capacity_.end() && used > capacity->second) {
      report("constraints", e.seq, e.index,
             "pool " + c->pool + " holds " + std::to_string(used) + " of " +
                 std::to_string(capacity->second) + " slots");
    }
  }
  if (c) {
    for (const std::string& key : c->keys) {
      if (++keys_held_[key] > 1)
        report("constraints", e.seq, e.index, "key " + key + " held twice");
    }
    for (const auto& [resource, writes] : c->literal_claims) {
      auto& [readers, writers] = claims_held_[resource];
      if (writers > 0 || (writes && readers > 0))
        report("constraints", e.seq, e.index, "claim on " + resource + " conflicts");
      ++(writes ? writers : readers);
    }
    if (c->run_alone) alone_running_ = true;
  }
  ++running_;
  s.running = true;
  s.attempt = e.attempt;
}

void invariant_checker::end_attempt(std::uint32_t i) {
  module_state& s = state_[i];
  if (!s.running) return;
  s.running = false;
  --running_;
  const constraint_model* c = constraints(i);
  if (c == nullptr) return;
  if (c->run_alone) alone_running_ = false;
  if (!c->pool.empty()) pool_used_[c->pool] -= c->pool_slots;
  for (const std::string& key : c->keys)
    --keys_held_[key];
  for (const auto& [resource, writes] : c->literal_claims) {
    auto& [readers, writers] = claims_held_[resource];
    --(writes ? writers : readers);
  }
}

void invariant_checker::resume(const std::unordered_set<std::string>& now_succeeded) {
  for (std::uint32_t i = 0; i < state_.size(); ++i) {
    end_attempt(i);
    state_[i] = module_state{};
    journaled_[i] = now_succeeded.contains(std::string(id(i)));
  }
}

void invariant_checker::finish(const run_report& r) {
  const std::uint64_t step = last_step_ + 1;
  for (std::uint32_t i = 0; i < state_.size(); ++i) {
    const module_state& s = state_[i];
    if (s.running) report("no attempt lost", step, i, "an attempt never ended");
    if (!s.finished) report("every module terminal", step, i, "no terminal event");
  }
  for (const module_result& m : r.modules) {
    if (!terminal(m.status)) {
      violation v{"every module terminal", step, std::string(m.id),
                  "the report says " + std::string(to_string(m.status))};
      violations_.push_back(std::move(v));
    }
  }
}

}  // namespace drover::coord
