#pragma once
// boxed<T>: an optional value kept on the heap, for settings most modules never use.

#include <memory>
#include <utility>

namespace drover {

/// Like std::optional<T>, but the value lives on the heap, so an empty box costs one pointer.
/// module_spec keeps its rarely-set settings in boxes: a plain module stays small, which
/// matters for pipelines of a million modules. Copies copy the value.
///
///     spec.constraints.ensure().pool = "network";   // creates the value on first use
///     if (spec.constraints) use(spec.constraints->pool);
template <class T>
class boxed {
 public:
  boxed() = default;
  boxed(T value) : value_(std::make_unique<T>(std::move(value))) {}
  boxed(const boxed& other) : value_(other.value_ ? std::make_unique<T>(*other.value_) : nullptr) {}
  boxed(boxed&&) noexcept = default;
  boxed& operator=(const boxed& other) {
    if (this != &other) value_ = other.value_ ? std::make_unique<T>(*other.value_) : nullptr;
    return *this;
  }
  boxed& operator=(boxed&&) noexcept = default;
  ~boxed() = default;

  bool has_value() const noexcept { return value_ != nullptr; }
  explicit operator bool() const noexcept { return has_value(); }

  /// The value, default-constructed first if the box is empty.
  T& ensure() {
    if (!value_) value_ = std::make_unique<T>();
    return *value_;
  }
  void reset() noexcept { value_.reset(); }

  /// The value or nullptr.
  T* get() noexcept { return value_.get(); }
  const T* get() const noexcept { return value_.get(); }

  /// Precondition: has_value().
  T& operator*() noexcept { return *value_; }
  const T& operator*() const noexcept { return *value_; }
  T* operator->() noexcept { return value_.get(); }
  const T* operator->() const noexcept { return value_.get(); }

 private:
  std::unique_ptr<T> value_;
};

}  // namespace drover
