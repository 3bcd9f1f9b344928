#pragma once
// A pipeline: modules plus the defaults and the execution mode that apply to all of them.
//
// The pipeline keeps its modules compact, so that one of a million modules costs about a
// hundred bytes: ids and dependency names in one arena, each name once; what the scheduler
// reads per module in a 12-byte record; bodies in a vector of their own; rarely used settings
// (timeouts, backoff, skip_if, tags, constraints, kind and params, ...) in a side table that a
// plain module has no entry in.
//
//     drover::pipeline p;
//     p.add("build", build_body);
//     p.add("test", test_body, {"build"}).retries(2).timeout(std::chrono::minutes{5});
//     p.add(std::move(spec));  // or a whole module_spec at once
//
// Add modules with add(); read them with module(i) (a view) or spec(i) (a copy).

#include <drover/module.hpp>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace drover {

/// What happens to the rest of the run after a module fails.
enum class execution_mode : std::uint8_t {
  fail_fast,  ///< cancel running modules, mark unstarted ones cancelled (always_run ones still run)
  keep_going,  ///< finish every branch that does not depend on the failure
};

/// Policies a module inherits when it does not set its own.
struct module_defaults {
  int retries = 0;
  backoff_policy backoff;
  std::optional<std::chrono::milliseconds> timeout;
};

class pipeline;
class plan;

namespace detail {

/// What the scheduler reads of a module on every start and end.
struct module_record {
  std::int32_t priority = 0;
  std::uint32_t extras = static_cast<std::uint32_t>(-1);  ///< side table entry, or none
  std::uint16_t retries = 0;  ///< own (when flag own_retries), the default's after prepare()
  std::uint16_t flags = 0;    ///< module_flag bits

  bool has(std::uint16_t flag) const noexcept { return (flags & flag) != 0; }
};

/// Bits of module_record::flags.
namespace module_flag {
inline constexpr std::uint16_t always_run = 1 << 0;
inline constexpr std::uint16_t ignore_failure = 1 << 1;
inline constexpr std::uint16_t has_skip_if = 1 << 2;
inline constexpr std::uint16_t has_timeout = 1 << 3;  ///< its own or, after prepare, the default
inline constexpr std::uint16_t pin_local = 1 << 4;    ///< never on a remote worker
inline constexpr std::uint16_t requires_labels = 1 << 5;  ///< required_capabilities non-empty
inline constexpr std::uint16_t cacheable = 1 << 6;        ///< the fingerprint cache may store it
inline constexpr std::uint16_t own_retries = 1 << 7;      ///< retries set on the module itself
inline constexpr std::uint16_t has_io = 1 << 8;  ///< declares inputs or outputs (set by prepare)
}  // namespace module_flag

/// The settings few modules have, kept apart.
struct module_extras {
  std::string kind;
  boost::json::value params;
  std::optional<int> retries;  ///< only when out of the record's range (validation reports it)
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<backoff_policy> backoff;
  skip_condition skip_if;
  std::vector<std::string> tags;
  boxed<module_constraints> constraints;
  boxed<matrix_spec> matrix;
  boxed<matrix_instance> instance;
  boxed<module_io> io;
};

}  // namespace detail

/// A read-only view of one module: of a pipeline's module, or of a module_spec. Valid while
/// what it views is unchanged.
class module_view {
 public:
  module_view() = default;  ///< views nothing: only to be assigned
  module_view(const pipeline& p, std::uint32_t index) noexcept : pipeline_(&p), index_(index) {}
  explicit module_view(const module_spec& spec) noexcept : spec_(&spec) {}

  std::string_view id() const noexcept;
  /// The dependency ids as given (before matrix expansion: a matrix module's id means every
  /// instance).
  std::vector<std::string_view> deps() const;
  const module_body& body() const noexcept;
  std::string_view kind() const noexcept;
  const boost::json::value& params() const noexcept;
  std::optional<int> retries() const noexcept;
  std::optional<backoff_policy> backoff() const noexcept;
  std::optional<std::chrono::milliseconds> timeout() const noexcept;
  bool always_run() const noexcept;
  bool ignore_failure() const noexcept;
  /// Null when the module has none.
  const skip_condition* skip_if() const noexcept;
  std::span<const std::string> tags() const noexcept;
  int priority() const noexcept;
  /// Null when the module has none of these.
  const module_constraints* constraints() const noexcept;
  const matrix_spec* matrix() const noexcept;
  const matrix_instance* instance() const noexcept;
  const module_io* io() const noexcept;

  /// A copy of the whole description.
  module_spec spec() const;

 private:
  const detail::module_extras* extras() const noexcept;

  const pipeline* pipeline_ = nullptr;
  std::uint32_t index_ = 0;
  const module_spec* spec_ = nullptr;  // instead of pipeline_ and index_
};

/// A module of a pipeline, to change its settings after add():
///
///     p.add("test", body, {"build"}).retries(2).priority(10);
///     p.add("deploy", body).constraints().pool = "network";
///
/// Valid until the pipeline is moved or destroyed. References it returns (constraints(),
/// io(), matrix()) are valid until the next add().
class module_ref {
 public:
  module_ref(pipeline& p, std::uint32_t index) noexcept : p_(&p), index_(index) {}

  std::uint32_t index() const noexcept { return index_; }
  std::string_view id() const noexcept;
  module_view view() const noexcept;

  module_ref& retries(int n);
  module_ref& backoff(backoff_policy b);
  module_ref& timeout(std::chrono::milliseconds t);
  module_ref& always_run(bool on = true);
  module_ref& ignore_failure(bool on = true);
  module_ref& skip_if(skip_condition condition);
  module_ref& tags(std::vector<std::string> tags);
  module_ref& priority(int p);
  module_ref& body(module_body body);
  /// Replaces the module's dependencies (cheap for the module added last, linear otherwise).
  module_ref& deps(const std::vector<std::string>& ids);
  /// A kind for a registry (drover::modules) to resolve, and its params.
  module_ref& kind(std::string kind, boost::json::value params = {});
  /// Created empty on first use.
  module_constraints& constraints();
  module_io& io();
  matrix_spec& matrix();

 private:
  detail::module_extras& extras();
  pipeline* p_;
  std::uint32_t index_;
};

class pipeline {
 public:
  std::string name;
  module_defaults defaults;
  execution_mode mode = execution_mode::fail_fast;
  /// Named pools and their slots: at most that many slots are in use at once, across all
  /// workers. Modules take slots with module_constraints::pool and pool_slots.
  std::map<std::string, std::uint32_t> pools;

  pipeline();
  pipeline(pipeline&&) noexcept;
  pipeline& operator=(pipeline&&) noexcept;
  pipeline(const pipeline&);
  pipeline& operator=(const pipeline&);
  ~pipeline();

  /// Appends a module with a body and returns it for further settings:
  ///
  ///     p.add("test", test_body, {"build"}).retries(2);
  module_ref add(std::string_view id, module_body body,
                 std::initializer_list<std::string_view> deps = {});
  module_ref add(std::string_view id, module_body body, const std::vector<std::string>& deps);
  /// Appends a module described whole (a pipeline file's reader, matrix expansion).
  module_ref add(module_spec spec);

  std::size_t size() const noexcept { return records_.size(); }
  bool empty() const noexcept { return records_.empty(); }
  /// Room for `modules` modules with `dependencies` dependencies in all, so that a large
  /// pipeline is built without regrowing its tables.
  void reserve(std::size_t modules, std::size_t dependencies = 0);

  module_view module(std::size_t i) const noexcept {
    return {*this, static_cast<std::uint32_t>(i)};
  }
  /// Module i, to change its settings.
  module_ref edit(std::size_t i) noexcept { return {*this, static_cast<std::uint32_t>(i)}; }
  std::string_view id(std::size_t i) const noexcept { return symbol_text(id_of_[i]); }
  /// A copy of module i's whole description.
  module_spec spec(std::size_t i) const { return module(i).spec(); }
  /// Every module's description, in order (for tools that rewrite a pipeline).
  std::vector<module_spec> specs() const;
  /// Replaces every module by `modules`, in that order.
  void assign(std::vector<module_spec> modules);
  /// The index of the first module with this id, or nothing.
  std::optional<std::size_t> find(std::string_view id) const noexcept;
  /// The symbol of a name, if the pipeline has it (see symbol_text()).
  std::optional<std::uint32_t> symbol_of_text(std::string_view text) const noexcept;

  /// Internal: for the engine's validation and prepare().
  const detail::module_record& record(std::size_t i) const noexcept { return records_[i]; }
  const detail::module_extras* extras(std::size_t i) const noexcept {
    const std::uint32_t e = records_[i].extras;
    return e == no_extras ? nullptr : &extras_[e];
  }
  /// Module i's dependencies as name symbols (see symbol_text()), or as module indices once
  /// resolved by prepare().
  std::span<const std::uint32_t> dependency_refs(std::size_t i) const noexcept {
    return {deps_.data() + dep_begin_[i], deps_.data() + dep_begin_[i + 1]};
  }
  bool dependencies_resolved() const noexcept { return resolved_; }
  /// The name with symbol `s`: an id or a dependency name, each stored once.
  std::string_view symbol_text(std::uint32_t s) const noexcept {
    return {names_.data() + name_begin_[s], name_begin_[s + 1] - name_begin_[s]};
  }
  std::size_t symbol_count() const noexcept { return name_begin_.size() - 1; }
  std::uint32_t symbol_of(std::size_t module) const noexcept { return id_of_[module]; }

 private:
  friend class module_ref;
  friend class module_view;
  friend class plan;
  friend struct graph_builder;
  static constexpr std::uint32_t no_extras = static_cast<std::uint32_t>(-1);

  std::uint32_t intern(std::string_view text);
  void grow_names();
  module_ref append(std::string_view id, module_body body);
  void add_dependency(std::string_view dep) { deps_.push_back(intern(dep)); }
  void close_dependencies() { dep_begin_.push_back(static_cast<std::uint32_t>(deps_.size())); }
  detail::module_extras& extras_of(std::uint32_t i);

  // Names: every id and dependency name once, in one arena; a symbol is a name's number.
  std::string names_;
  std::vector<std::uint32_t> name_begin_;  // per symbol, plus one: where its name starts
  std::vector<std::uint32_t> slots_;       // open addressing, symbol + 1 (0: empty)
  // Per module.
  std::vector<std::uint32_t> id_of_;      // its id's symbol
  std::vector<std::uint32_t> dep_begin_;  // plus one: where its dependencies start in deps_
  std::vector<std::uint32_t> deps_;       // symbols; module indices once resolved_
  std::vector<module_body> bodies_;
  std::vector<detail::module_record> records_;
  std::vector<detail::module_extras> extras_;
  bool resolved_ = false;
};

}  // namespace drover
