#include <drover/detail/constraint_table.hpp>

#include <drover/pipeline.hpp>

#include "id_index.hpp"
#include "resource_glob.hpp"

#include <algorithm>
#include <unordered_map>

namespace drover::detail {

namespace {

// Numbers literal resources: equal texts get equal numbers, in order of first appearance,
// through the id_index that graphs use for module ids (one probe a claim, no allocation per
// resource: a pipeline may claim a million distinct ones).
class resource_numbering {
 public:
  explicit resource_numbering(std::size_t claims) : index_(claims) {}

  std::uint32_t number(const std::string& resource) {
    const auto next = static_cast<std::uint32_t>(texts_.size());
    const std::uint32_t known =
        index_.insert(id_index::hash(resource), resource, next,
                      [this](std::uint32_t k) -> std::string_view { return *texts_[k]; });
    if (known != id_index::npos) return known;
    texts_.push_back(&resource);
    return next;
  }
  std::vector<const std::string*> take_texts() { return std::move(texts_); }
  std::size_t size() const noexcept { return texts_.size(); }

 private:
  id_index index_;
  std::vector<const std::string*> texts_;  // per number
};

}  // namespace

constraint_table constraint_table::compile(const pipeline& p) {
  constraint_table t;
  std::unordered_map<std::string_view, std::uint32_t> pool_ids, key_ids;
  for (const auto& [name, slots] : p.pools) {
    pool_ids.emplace(name, static_cast<std::uint32_t>(t.pool_capacity.size()));
    t.pool_capacity.push_back(slots);
  }
  const std::size_t n = p.size();
  std::size_t claim_count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (const module_constraints* c = p.module(i).constraints()) claim_count += c->claims.size();
  }
  resource_numbering literals(claim_count);
  t.claims_used.reserve(claim_count);
  for (std::size_t i = 0; i < n; ++i) {
    const module_constraints* c = p.module(i).constraints();
    if (c == nullptr) continue;
    const bool exclusive =
        !c->pool.empty() || !c->not_in_parallel.empty() || !c->claims.empty() || c->run_alone;
    if (!exclusive) continue;
    if (t.needs_of.empty()) t.needs_of.assign(n, none);
    t.needs_of[i] = static_cast<std::uint32_t>(t.modules.size());
    needs& m = t.modules.emplace_back();
    if (!c->pool.empty()) {
      // Validation rejected unknown pools; a pool missing here would be a bug, so it is
      // treated as unlimited rather than blocking forever.
      if (auto it = pool_ids.find(c->pool); it != pool_ids.end()) {
        m.pool = it->second;
        m.slots = c->pool_slots;
      }
    }
    m.keys_begin = static_cast<std::uint32_t>(t.keys_used.size());
    for (const auto& key : c->not_in_parallel) {
      auto [it, added] = key_ids.emplace(key, t.key_count);
      if (added) ++t.key_count;
      const auto mine = t.keys_used.begin() + m.keys_begin;
      if (std::find(mine, t.keys_used.end(), it->second) == t.keys_used.end())
        t.keys_used.push_back(it->second);
    }
    m.keys_end = static_cast<std::uint32_t>(t.keys_used.size());
    m.claims_begin = static_cast<std::uint32_t>(t.claims_used.size());
    for (const auto& c_claim : c->claims) {
      claim& out = t.claims_used.emplace_back();
      out.write = c_claim.mode == claim_mode::write;
      out.literal = resource_glob_is_literal(c_claim.resource);
      if (out.literal) {
        out.resource = literals.number(c_claim.resource);
      } else {
        // Globs are few and compared by text: each claim keeps its own.
        out.resource = static_cast<std::uint32_t>(t.globs.size());
        t.globs.push_back(&c_claim.resource);
      }
    }
    m.claims_end = static_cast<std::uint32_t>(t.claims_used.size());
    m.alone = c->run_alone;
    t.every_start = t.every_start || m.alone;
  }
  t.literal_count = static_cast<std::uint32_t>(literals.size());
  if (t.has_globs()) t.literals = literals.take_texts();
  return t;
}

}  // namespace drover::detail
