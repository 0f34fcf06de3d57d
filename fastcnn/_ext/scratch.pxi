# Included by conv.pyx and dense.pyx: scratch allocation outside a parallel region, and the
# zero gradients of an empty batch.
cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)


def _zero_gradients(*gradients):
    """The gradients of an empty batch; None stands for one not asked for."""
    for g in gradients:
        if g is not None:
            g[...] = 0


cdef void *_alloc(size_t n, size_t size) except NULL:
    """Scratch of n elements of size bytes for a kernel call, taken outside its parallel region;
    the caller frees it (free). Aligned to a cache line: malloc's 16-byte alignment split every
    64-byte vector load of the packed weights across two lines."""
    cdef void *p = NULL
    if posix_memalign(&p, 64, (n if n > 0 else 1) * size) != 0:
        raise MemoryError()
    return p
