// An allocator for the shim's containers that calls no libstdc++ function
// newer than the ones the wheel already needs.
#ifndef BPR_OPS_PLAIN_ALLOCATOR_H_
#define BPR_OPS_PLAIN_ALLOCATOR_H_

#include <cstddef>
#include <cstdint>
#include <new>

namespace bpr_ops {

// std::allocator<T>::allocate of GCC 11+ calls std::__throw_bad_array_new_length
// (GLIBCXX_3.4.29) on overflow, and absl::InlinedVector calls it unguarded: that
// one symbol would raise the release wheel's tag from manylinux_2_24 to 2_34
// (README, "Install"). The inline vectors (and std::vectors on hot paths,
// whose growth GCC cannot always prove bounded) allocate through this instead.
template <typename T>
struct PlainAllocator {
  using value_type = T;
  PlainAllocator() = default;
  template <typename U>
  PlainAllocator(const PlainAllocator<U>&) {}
  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t) { ::operator delete(p); }
  friend bool operator==(const PlainAllocator&, const PlainAllocator&) { return true; }
  friend bool operator!=(const PlainAllocator&, const PlainAllocator&) { return false; }
};

}  // namespace bpr_ops

#endif  // BPR_OPS_PLAIN_ALLOCATOR_H_
