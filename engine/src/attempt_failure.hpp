#pragma once
// How an attempt whose body threw ends; shared by a run's workers and attempt_runner.

#include <drover/status.hpp>

#include <exception>
#include <string>

namespace drover::detail {

/// timeout_error means timed_out, an aborted wait means cancelled (callers check that they did
/// cancel it: otherwise the abort was the body's own doing, a failure), anything else failed.
/// `error` gets the exception's message.
void classify_failure(std::exception_ptr thrown, module_status& status, std::string& error);

}  // namespace drover::detail
