// The compact pipeline: interned names, per-module records, bodies apart, rare settings in a
// side table. See drover/pipeline.hpp.

#include <drover/pipeline.hpp>

#include <functional>
#include <limits>

namespace drover {

namespace flag = detail::module_flag;

namespace {

std::size_t hash_of(std::string_view text) noexcept {
  return std::hash<std::string_view>{}(text);
}

// Retries are kept in 16 bits; a value outside waits in the side table for validation to
// reject it.
bool retries_fit(int n) noexcept {
  return n >= 0 && n <= std::numeric_limits<std::uint16_t>::max();
}

}  // namespace

pipeline::pipeline() : name_begin_{0}, dep_begin_{0} {}
pipeline::pipeline(pipeline&&) noexcept = default;
pipeline& pipeline::operator=(pipeline&&) noexcept = default;
pipeline::pipeline(const pipeline&) = default;
pipeline& pipeline::operator=(const pipeline&) = default;
pipeline::~pipeline() = default;

void pipeline::reserve(std::size_t modules, std::size_t dependencies) {
  id_of_.reserve(modules);
  dep_begin_.reserve(modules + 1);
  deps_.reserve(dependencies);
  bodies_.reserve(modules);
  records_.reserve(modules);
  name_begin_.reserve(modules + 1);
  names_.reserve(modules * 8);
  std::size_t capacity = 16;
  while (capacity < 2 * modules)
    capacity *= 2;
  if (capacity > slots_.size()) {
    slots_.assign(capacity, 0);
    for (std::uint32_t s = 0; s + 1 < name_begin_.size(); ++s) {
      std::size_t pos = hash_of(symbol_text(s)) & (slots_.size() - 1);
      while (slots_[pos] != 0)
        pos = (pos + 1) & (slots_.size() - 1);
      slots_[pos] = s + 1;
    }
  }
}

// The symbol of `text`, added if new. Slots stay at most half full.
std::uint32_t pipeline::intern(std::string_view text) {
  if (2 * (symbol_count() + 1) > slots_.size()) grow_names();
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t pos = hash_of(text) & mask;; pos = (pos + 1) & mask) {
    const std::uint32_t slot = slots_[pos];
    if (slot == 0) {
      const auto symbol = static_cast<std::uint32_t>(symbol_count());
      names_.append(text);
      name_begin_.push_back(static_cast<std::uint32_t>(names_.size()));
      slots_[pos] = symbol + 1;
      return symbol;
    }
    if (symbol_text(slot - 1) == text) return slot - 1;
  }
}

void pipeline::grow_names() {
  const std::size_t capacity = std::max<std::size_t>(16, slots_.size() * 2);
  slots_.assign(capacity, 0);
  const std::size_t mask = capacity - 1;
  for (std::uint32_t s = 0; s < symbol_count(); ++s) {
    std::size_t pos = hash_of(symbol_text(s)) & mask;
    while (slots_[pos] != 0)
      pos = (pos + 1) & mask;
    slots_[pos] = s + 1;
  }
}

std::optional<std::uint32_t> pipeline::symbol_of_text(std::string_view text) const noexcept {
  if (slots_.empty()) return std::nullopt;
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t pos = hash_of(text) & mask;; pos = (pos + 1) & mask) {
    const std::uint32_t slot = slots_[pos];
    if (slot == 0) return std::nullopt;
    if (symbol_text(slot - 1) == text) return slot - 1;
  }
}

std::optional<std::size_t> pipeline::find(std::string_view id) const noexcept {
  const auto symbol = symbol_of_text(id);
  if (!symbol) return std::nullopt;
  for (std::size_t i = 0; i < id_of_.size(); ++i) {
    if (id_of_[i] == *symbol) return i;
  }
  return std::nullopt;
}

module_ref pipeline::append(std::string_view id, module_body body) {
  if (resolved_) {
    // A pipeline prepare() took apart is not built on; keep names, start dependencies anew.
    resolved_ = false;
  }
  const auto index = static_cast<std::uint32_t>(records_.size());
  id_of_.push_back(intern(id));
  bodies_.push_back(std::move(body));
  records_.emplace_back();
  return {*this, index};
}

module_ref pipeline::add(std::string_view id, module_body body,
                         std::initializer_list<std::string_view> deps) {
  module_ref m = append(id, std::move(body));
  for (std::string_view dep : deps)
    add_dependency(dep);
  close_dependencies();
  return m;
}

module_ref pipeline::add(std::string_view id, module_body body,
                         const std::vector<std::string>& deps) {
  module_ref m = append(id, std::move(body));
  for (const std::string& dep : deps)
    add_dependency(dep);
  close_dependencies();
  return m;
}

module_ref pipeline::add(module_spec spec) {
  module_ref m = append(spec.id, std::move(spec.body));
  for (const std::string& dep : spec.deps)
    add_dependency(dep);
  close_dependencies();
  if (spec.retries) m.retries(*spec.retries);
  if (spec.backoff) m.backoff(*spec.backoff);
  if (spec.timeout) m.timeout(*spec.timeout);
  if (spec.always_run) m.always_run();
  if (spec.ignore_failure) m.ignore_failure();
  if (spec.skip_if) m.skip_if(std::move(spec.skip_if));
  if (!spec.tags.empty()) m.tags(std::move(spec.tags));
  if (spec.priority != 0) m.priority(spec.priority);
  if (!spec.kind.empty() || !spec.params.is_null())
    m.kind(std::move(spec.kind), std::move(spec.params));
  if (spec.constraints) m.constraints() = std::move(*spec.constraints);
  if (spec.matrix) m.matrix() = std::move(*spec.matrix);
  if (spec.instance) extras_of(m.index()).instance = std::move(spec.instance);
  if (spec.io) m.io() = std::move(*spec.io);
  return m;
}

std::vector<module_spec> pipeline::specs() const {
  std::vector<module_spec> out;
  out.reserve(size());
  for (std::size_t i = 0; i < size(); ++i)
    out.push_back(spec(i));
  return out;
}

void pipeline::assign(std::vector<module_spec> modules) {
  pipeline fresh;
  fresh.name = std::move(name);
  fresh.defaults = std::move(defaults);
  fresh.mode = mode;
  fresh.pools = std::move(pools);
  fresh.reserve(modules.size());
  for (module_spec& m : modules)
    fresh.add(std::move(m));
  *this = std::move(fresh);
}

detail::module_extras& pipeline::extras_of(std::uint32_t i) {
  detail::module_record& r = records_[i];
  if (r.extras == no_extras) {
    r.extras = static_cast<std::uint32_t>(extras_.size());
    extras_.emplace_back();
  }
  return extras_[r.extras];
}

// ---- module_ref ------------------------------------------------------------------------------

std::string_view module_ref::id() const noexcept {
  return p_->id(index_);
}

module_view module_ref::view() const noexcept {
  return {*p_, index_};
}

detail::module_extras& module_ref::extras() {
  return p_->extras_of(index_);
}

module_ref& module_ref::retries(int n) {
  detail::module_record& r = p_->records_[index_];
  r.flags |= flag::own_retries;
  if (retries_fit(n)) {
    r.retries = static_cast<std::uint16_t>(n);
    if (r.extras != pipeline::no_extras) p_->extras_[r.extras].retries.reset();
  } else {
    r.retries = 0;
    extras().retries = n;
  }
  return *this;
}

module_ref& module_ref::backoff(backoff_policy b) {
  extras().backoff = b;
  return *this;
}

module_ref& module_ref::timeout(std::chrono::milliseconds t) {
  extras().timeout = t;
  p_->records_[index_].flags |= flag::has_timeout;
  return *this;
}

module_ref& module_ref::always_run(bool on) {
  auto& flags = p_->records_[index_].flags;
  flags = on ? (flags | flag::always_run) : (flags & ~flag::always_run);
  return *this;
}

module_ref& module_ref::ignore_failure(bool on) {
  auto& flags = p_->records_[index_].flags;
  flags = on ? (flags | flag::ignore_failure) : (flags & ~flag::ignore_failure);
  return *this;
}

module_ref& module_ref::skip_if(skip_condition condition) {
  auto& flags = p_->records_[index_].flags;
  flags = condition ? (flags | flag::has_skip_if) : (flags & ~flag::has_skip_if);
  extras().skip_if = std::move(condition);
  return *this;
}

module_ref& module_ref::tags(std::vector<std::string> tags) {
  extras().tags = std::move(tags);
  return *this;
}

module_ref& module_ref::priority(int p) {
  p_->records_[index_].priority = p;
  return *this;
}

module_ref& module_ref::body(module_body body) {
  p_->bodies_[index_] = std::move(body);
  return *this;
}

module_ref& module_ref::deps(const std::vector<std::string>& ids) {
  pipeline& p = *p_;
  std::vector<std::uint32_t> symbols;
  symbols.reserve(ids.size());
  for (const std::string& id : ids)
    symbols.push_back(p.intern(id));
  const auto begin = static_cast<std::ptrdiff_t>(p.dep_begin_[index_]);
  const auto end = static_cast<std::ptrdiff_t>(p.dep_begin_[index_ + 1]);
  p.deps_.erase(p.deps_.begin() + begin, p.deps_.begin() + end);
  p.deps_.insert(p.deps_.begin() + begin, symbols.begin(), symbols.end());
  const auto delta = static_cast<std::int64_t>(symbols.size()) - (end - begin);
  for (std::size_t k = index_ + 1; k < p.dep_begin_.size(); ++k)
    p.dep_begin_[k] = static_cast<std::uint32_t>(p.dep_begin_[k] + delta);
  return *this;
}

module_ref& module_ref::kind(std::string kind, boost::json::value params) {
  detail::module_extras& e = extras();
  e.kind = std::move(kind);
  e.params = std::move(params);
  return *this;
}

module_constraints& module_ref::constraints() {
  return extras().constraints.ensure();
}

module_io& module_ref::io() {
  return extras().io.ensure();
}

matrix_spec& module_ref::matrix() {
  return extras().matrix.ensure();
}

// ---- module_view -----------------------------------------------------------------------------

const detail::module_extras* module_view::extras() const noexcept {
  return spec_ ? nullptr : pipeline_->extras(index_);
}

std::string_view module_view::id() const noexcept {
  return spec_ ? std::string_view{spec_->id} : pipeline_->id(index_);
}

std::vector<std::string_view> module_view::deps() const {
  std::vector<std::string_view> out;
  if (spec_) {
    out.assign(spec_->deps.begin(), spec_->deps.end());
    return out;
  }
  const auto refs = pipeline_->dependency_refs(index_);
  out.reserve(refs.size());
  for (std::uint32_t ref : refs) {
    out.push_back(pipeline_->dependencies_resolved() ? pipeline_->id(ref)
                                                     : pipeline_->symbol_text(ref));
  }
  return out;
}

const module_body& module_view::body() const noexcept {
  return spec_ ? spec_->body : pipeline_->bodies_[index_];
}

std::string_view module_view::kind() const noexcept {
  if (spec_) return spec_->kind;
  const auto* e = extras();
  return e ? std::string_view{e->kind} : std::string_view{};
}

const boost::json::value& module_view::params() const noexcept {
  static const boost::json::value null_value;
  if (spec_) return spec_->params;
  const auto* e = extras();
  return e ? e->params : null_value;
}

std::optional<int> module_view::retries() const noexcept {
  if (spec_) return spec_->retries;
  const detail::module_record& r = pipeline_->record(index_);
  if (!r.has(flag::own_retries)) return std::nullopt;
  const auto* e = extras();
  if (e && e->retries) return e->retries;
  return r.retries;
}

std::optional<backoff_policy> module_view::backoff() const noexcept {
  if (spec_) return spec_->backoff;
  const auto* e = extras();
  return e ? e->backoff : std::nullopt;
}

std::optional<std::chrono::milliseconds> module_view::timeout() const noexcept {
  if (spec_) return spec_->timeout;
  const auto* e = extras();
  return e ? e->timeout : std::nullopt;
}

bool module_view::always_run() const noexcept {
  return spec_ ? spec_->always_run : pipeline_->record(index_).has(flag::always_run);
}

bool module_view::ignore_failure() const noexcept {
  return spec_ ? spec_->ignore_failure : pipeline_->record(index_).has(flag::ignore_failure);
}

const skip_condition* module_view::skip_if() const noexcept {
  if (spec_) return spec_->skip_if ? &spec_->skip_if : nullptr;
  const auto* e = extras();
  return e && e->skip_if ? &e->skip_if : nullptr;
}

std::span<const std::string> module_view::tags() const noexcept {
  if (spec_) return spec_->tags;
  const auto* e = extras();
  return e ? std::span<const std::string>{e->tags} : std::span<const std::string>{};
}

int module_view::priority() const noexcept {
  return spec_ ? spec_->priority : pipeline_->record(index_).priority;
}

const module_constraints* module_view::constraints() const noexcept {
  if (spec_) return spec_->constraints.get();
  const auto* e = extras();
  return e ? e->constraints.get() : nullptr;
}

const matrix_spec* module_view::matrix() const noexcept {
  if (spec_) return spec_->matrix.get();
  const auto* e = extras();
  return e ? e->matrix.get() : nullptr;
}

const matrix_instance* module_view::instance() const noexcept {
  if (spec_) return spec_->instance.get();
  const auto* e = extras();
  return e ? e->instance.get() : nullptr;
}

const module_io* module_view::io() const noexcept {
  if (spec_) return spec_->io.get();
  const auto* e = extras();
  return e ? e->io.get() : nullptr;
}

module_spec module_view::spec() const {
  if (spec_) return *spec_;
  module_spec out;
  out.id = id();
  for (std::string_view dep : deps())
    out.deps.emplace_back(dep);
  out.body = body();
  out.kind = kind();
  out.params = params();
  out.retries = retries();
  out.backoff = backoff();
  out.timeout = timeout();
  out.always_run = always_run();
  out.ignore_failure = ignore_failure();
  if (const auto* condition = skip_if()) out.skip_if = *condition;
  const auto t = tags();
  out.tags.assign(t.begin(), t.end());
  out.priority = priority();
  if (const auto* c = constraints()) out.constraints = *c;
  if (const auto* m = matrix()) out.matrix = *m;
  if (const auto* i = instance()) out.instance = *i;
  if (const auto* io = this->io()) out.io = *io;
  return out;
}

}  // namespace drover
