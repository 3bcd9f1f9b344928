#include <drover/remote.hpp>

#include "run_driver.hpp"

namespace drover {

worker_hub::worker_id worker_hub::attach(std::shared_ptr<remote_worker> worker, std::string name,
                                         std::vector<std::string> capabilities,
                                         std::uint32_t slots) {
  std::unique_lock lock(mutex_);
  const worker_id id = next_id_++;
  if (finished_) {
    lock.unlock();
    worker->run_finished("run finished");
    return id;
  }
  call c = [id, worker = std::move(worker), name = std::move(name),
            capabilities = std::move(capabilities), slots](detail::run_driver& run) mutable {
    run.on_remote_attach(id, std::move(worker), std::move(name), std::move(capabilities), slots);
  };
  if (post_) {
    post_(std::move(c));
  } else {
    early_.push_back(std::move(c));
  }
  return id;
}

void worker_hub::detach(worker_id id, std::string reason, detach_cause cause) {
  deliver([id, reason = std::move(reason), cause](detail::run_driver& run) mutable {
    run.on_remote_detach(id, std::move(reason), cause == detach_cause::worker_lost);
  });
}

void worker_hub::complete(worker_id id, remote_completion completion) {
  deliver([id, completion = std::move(completion)](detail::run_driver& run) mutable {
    run.on_remote_complete(id, std::move(completion));
  });
}

void worker_hub::complete(worker_id id, std::vector<remote_completion> completions) {
  if (completions.empty()) return;
  deliver([id, completions = std::move(completions)](detail::run_driver& run) mutable {
    for (remote_completion& c : completions)
      run.on_remote_complete(id, std::move(c));
  });
}

void worker_hub::reject(worker_id id, rejected_result rejected) {
  deliver([id, rejected = std::move(rejected)](detail::run_driver& run) mutable {
    run.on_remote_rejected(id, std::move(rejected));
  });
}

void worker_hub::drain(worker_id id, std::string reason) {
  deliver([id, reason = std::move(reason)](detail::run_driver& run) mutable {
    run.on_remote_drain(id, std::move(reason));
  });
}

bool worker_hub::finished() const {
  std::lock_guard lock(mutex_);
  return finished_;
}

bool worker_hub::bound() const {
  std::lock_guard lock(mutex_);
  return static_cast<bool>(post_) && !finished_;
}

// Posting happens under the lock so that calls reach the run in the order they were made;
// the run's post never runs the call inline.
void worker_hub::deliver(call c) {
  std::lock_guard lock(mutex_);
  if (finished_) return;
  if (!post_) {
    early_.push_back(std::move(c));
    return;
  }
  post_(std::move(c));
}

void worker_hub::bind(std::function<void(call)> post_to_run) {
  std::lock_guard lock(mutex_);
  post_ = std::move(post_to_run);
  for (auto& c : early_)
    post_(std::move(c));
  early_.clear();
}

void worker_hub::unbind() {
  std::lock_guard lock(mutex_);
  finished_ = true;
  post_ = nullptr;  // drops the run: the hub no longer keeps it alive
  early_.clear();
}

}  // namespace drover
