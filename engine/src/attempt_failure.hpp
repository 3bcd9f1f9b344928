#pragma once
// How an attempt whose body threw ends; shared by a run's workers and attempt_runner.

#include <drover/status.hpp>

#include <chrono>
#include <exception>
#include <string>

namespace drover::detail {

/// timeout_error means timed_out, an aborted wait means cancelled (callers check that they did
/// cancel it: otherwise the abort was the body's own doing, a failure), anything else failed.
/// `error` gets the exception's message.
void classify_failure(std::exception_ptr thrown, module_status& status, std::string& error);

/// The error of an attempt stopped from outside: "timed out after N ms" or "cancelled". Then
/// what happened while it stopped: a body that did not return within `grace` was abandoned;
/// one that did keeps its own error after a colon (exec: the last lines of output), unless
/// it merely reported the cancellation.
std::string stop_error(bool timed_out, std::chrono::milliseconds timeout);
void add_stop_detail(std::string& error, bool abandoned, std::chrono::milliseconds grace,
                     module_status body_status, const std::string& body_error);

}  // namespace drover::detail
