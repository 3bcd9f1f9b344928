// The run's side of remote workers: what the worker_hub reports becomes core inputs, and the
// core's dispatches, cancels and rejections to remote workers become calls on their links.
// Fencing is the core's (remote_ended); this only translates.

#include "run_driver.hpp"

#include <boost/asio/post.hpp>

namespace drover::detail {

namespace asio = boost::asio;

void run_driver::bind_hub() {
  hub_ = options_.remote;
  // The hub keeps the run alive until unbind(): remote completions may be all that is left.
  hub_->bind([self = shared_from_this()](std::function<void(run_driver&)> call) {
    asio::post(self->strand_, [self, call = std::move(call)] { call(*self); });
  });
}

void run_driver::on_remote_attach(worker_hub::worker_id id, std::shared_ptr<remote_worker> link,
                                  std::string name, std::vector<std::string> capabilities,
                                  std::uint32_t slots) {
  if (finished_ || !core_) return link->run_finished("run finished");
  const worker_number w =
      core_->worker_attached(std::move(name), std::move(capabilities), slots, core_clock::now());
  remote_number_[id] = w;
  remotes_.push_back({id, std::move(link), {}, true});
  process();
}

void run_driver::on_remote_detach(worker_hub::worker_id id, std::string reason,
                                  bool blames_attempts) {
  auto found = remote_number_.find(id);
  if (found == remote_number_.end() || finished_) return;
  remotes_[found->second - local_workers_].alive = false;
  core_->worker_lost(found->second, reason, core_clock::now(), blames_attempts);
  process();
}

void run_driver::on_remote_complete(worker_hub::worker_id id, remote_completion c) {
  auto found = remote_number_.find(id);
  if (found == remote_number_.end() || finished_) return;  // after the end: the workers got bye
  const module_index i = c.module == remote_completion::unknown_module ? module_named(c.id)
                         : c.module < plan_->size()                    ? c.module
                                                                       : no_module;
  if (i == no_module) {
    // Not a module of the run: nothing to fence, only an id to refuse (and count).
    ++transport_rejections_;
    remote_link& r = remotes_[found->second - local_workers_];
    if (r.alive) {
      r.link->rejected(c.id, c.attempt, to_string(rejection::unknown_module),
                       "no module of this run has that id");
    }
    return;
  }
  core_->remote_ended(
      found->second, i, c.epoch, c.attempt,
      {.status = c.status, .value = std::move(c.value), .error = std::move(c.error)},
      core_clock::now());
  process();
}

// A result the transport refused on its own (it names another run): counted with the run's
// refusals and answered like them.
void run_driver::on_remote_rejected(worker_hub::worker_id id, rejected_result rejected) {
  auto found = remote_number_.find(id);
  if (found == remote_number_.end() || finished_) return;
  ++transport_rejections_;
  remote_link& r = remotes_[found->second - local_workers_];
  if (!r.alive) return;
  if (rejected.code.empty()) {
    const bool known = module_named(rejected.module) != no_module;
    rejected.code = known ? "stale_result" : "unknown_module";
    rejected.reason = known ? "that attempt was not assigned to this worker"
                            : "no module of this run has that id";
  }
  r.link->rejected(rejected.module, rejected.attempt, rejected.code, rejected.reason);
}

void run_driver::on_remote_drain(worker_hub::worker_id id, std::string reason) {
  auto found = remote_number_.find(id);
  if (found == remote_number_.end() || finished_) return;
  core_->worker_draining(found->second, std::move(reason), core_clock::now());
  process();
}

// The index of the module with this id, or no_module. The map is made the first time a worker
// names a module its connection was never assigned: rare, so a run without it pays nothing.
module_index run_driver::module_named(std::string_view id) {
  if (module_ids_.empty()) {
    module_ids_.reserve(plan_->size());
    for (module_index i = 0; i < plan_->size(); ++i)
      module_ids_.emplace(plan_->id(i), i);
  }
  auto found = module_ids_.find(id);
  return found == module_ids_.end() ? no_module : found->second;
}

void run_driver::assign_remote(module_index i, std::uint32_t attempt, worker_number w) {
  remote_link& r = remotes_[w - local_workers_];
  const module_view spec = plan_->module(i);
  assignment a;
  a.epoch = hub_->config().epoch;
  a.module = i;
  a.id = spec.id();
  a.attempt = attempt;
  a.kind = spec.kind();
  a.params = &spec.params();
  a.timeout = plan_->timeout(i);
  for (module_index d : plan_->predecessors(i)) {
    a.deps.push_back(plan_->id(d));
    if (r.sent.insert(d).second) {
      // Workers know no cached status: to them it is a success like any other.
      const module_status status =
          core_->status(d) == module_status::cached ? module_status::succeeded : core_->status(d);
      a.new_results.push_back({plan_->id(d), status, &core_->value(d)});
      ++dependency_results_sent_;
    }
  }
  if (const auto* instance = spec.instance()) a.matrix_target = instance->target;
  if (const auto* io = spec.io()) a.outputs = io->outputs;
  r.link->assign(a);
}

void run_driver::cancel_remote(module_index i, std::uint32_t attempt, worker_number w) {
  remote_link& r = remotes_[w - local_workers_];
  if (!r.alive) return;
  const std::string_view why = core_->stop_applies(i) ? std::string_view{} : core_->reason(i);
  const std::string reason = why.empty() ? core_->stop_reason() : std::string(why);
  r.link->cancel(i, plan_->id(i), attempt, reason);
}

void run_driver::reject_remote(module_index i, std::uint32_t attempt, worker_number w,
                               rejection code, std::uint64_t epoch) {
  remote_link& r = remotes_[w - local_workers_];
  if (!r.alive) return;
  std::string why;
  switch (code) {
    case rejection::unknown_module:
      why = "no module of this run has that id";
      break;
    case rejection::other_epoch:
      why = "it names epoch " + std::to_string(epoch) + ", this is epoch " +
            std::to_string(hub_->config().epoch);
      break;
    case rejection::given_up:
      why = "the attempt had already ended timed_out (no result in time)";
      break;
    case rejection::unconfirmed:
      why =
          "the attempt had already ended cancelled (its cancellation was not confirmed in "
          "time)";
      break;
    case rejection::duplicate:
      why = "a result for that attempt already arrived on this connection";
      break;
    case rejection::not_running:
      why = "that attempt is not one this worker runs (the module's current attempt is " +
            std::to_string(core_->attempts(i)) + ")";
      break;
  }
  const std::string_view id = i == no_module ? std::string_view{} : plan_->id(i);
  r.link->rejected(id, attempt, to_string(code), why);
}

void run_driver::drain_remote(worker_number w) {
  remote_link& r = remotes_[w - local_workers_];
  if (!r.alive) return;
  r.link->drain(core_->drain_reason(w));
}

void run_driver::release_remote(worker_number w) {
  remote_link& r = remotes_[w - local_workers_];
  if (!r.alive) return;
  r.link->run_finished("run finished");
}

}  // namespace drover::detail
