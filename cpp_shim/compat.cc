// A local definition of the one libstdc++ function GCC 12's headers call that
// is newer than the wheel's manylinux_2_24 allows (README, "Install").
//
// std::vector's copy (inline in TensorFlow's headers: a ResourceHandle copies
// its dtypes_and_shapes vector whenever a handle is stored in a tensor, which
// every decode op must do) ends in std::__new_allocator::allocate, whose
// overflow branch calls std::__throw_bad_array_new_length (GLIBCXX_3.4.29).
// PlainAllocator avoids it in our own containers, but not in TensorFlow's.
// Defined here, hidden: the reference resolves inside libbpr_ops.so (and
// inside a binary that links libbpr_ops.a), never to libstdc++'s symbol, and
// nothing outside sees this definition. It throws std::bad_alloc, the base of
// what GCC's throws (std::bad_array_new_length would add CXXABI_1.3.8
// symbols), on a branch that needs a vector of more than SIZE_MAX / sizeof(T)
// elements.

#include <new>

namespace std {
__attribute__((visibility("hidden"), weak, noreturn)) void __throw_bad_array_new_length() {
  throw std::bad_alloc();
}
}  // namespace std
