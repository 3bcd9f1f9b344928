#pragma once
// A pipeline's exclusive constraints compiled once, by prepare(), into numbers: pools, keys
// and literal resources become indices, each constrained module a `needs` record whose keys
// and claims are ranges of two flat arrays. The constraint gate of every run of the plan reads
// it and keeps only its own mutable state (who holds what, who waits), so a run pays nothing
// per module to set its gate up and compares claims by number, never by text.
//
// Built by plan's constructor; nothing else needs to make one.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace drover {
class pipeline;
}

namespace drover::detail {

struct constraint_table {
  static constexpr std::uint32_t none = static_cast<std::uint32_t>(-1);

  /// One claim of a module. `resource` numbers a literal resource (equal texts, equal
  /// numbers) or, for a glob, indexes `globs`.
  struct claim {
    std::uint32_t resource = 0;
    bool write = false;
    bool literal = true;  // no wildcard: compared by equality
  };
  /// What one constrained module takes when it starts.
  struct needs {
    std::uint32_t pool = none;
    std::uint32_t slots = 0;
    std::uint32_t keys_begin = 0, keys_end = 0;
    std::uint32_t claims_begin = 0, claims_end = 0;
    bool alone = false;
  };

  std::vector<std::uint32_t> pool_capacity;  // per pool number
  std::uint32_t key_count = 0;               // not_in_parallel keys, numbered
  std::uint32_t literal_count = 0;           // literal resources, numbered
  std::vector<needs> modules;                // one per constrained module
  std::vector<std::uint32_t> needs_of;       // per module: index into modules, or none
  std::vector<std::uint32_t> keys_used;      // every module's keys, in module order
  std::vector<claim> claims_used;            // every module's claims, in module order
  bool every_start = false;                  // some module runs alone: every start is gated
  // Texts, kept only when some claim is a glob (a glob is compared with other resources by
  // text). They point into the plan's own pipeline, which never changes and whose constraints
  // are boxed, so they stay valid however the plan is moved.
  std::vector<const std::string*> literals;  // per literal number
  std::vector<const std::string*> globs;

  /// Compiles p's constraints; p must be valid (every pool it names exists).
  static constraint_table compile(const pipeline& p);

  bool empty() const noexcept { return modules.empty(); }
  const needs* needs_for(std::uint32_t module) const noexcept {
    return needs_of.empty() || needs_of[module] == none ? nullptr : &modules[needs_of[module]];
  }
  std::span<const std::uint32_t> keys(const needs& m) const noexcept {
    return {keys_used.data() + m.keys_begin, keys_used.data() + m.keys_end};
  }
  std::span<const claim> claims(const needs& m) const noexcept {
    return {claims_used.data() + m.claims_begin, claims_used.data() + m.claims_end};
  }
  bool has_globs() const noexcept { return !globs.empty(); }
  /// A claim's resource as written; only when has_globs().
  std::string_view text(const claim& c) const noexcept {
    return c.literal ? *literals[c.resource] : *globs[c.resource];
  }
};

}  // namespace drover::detail
