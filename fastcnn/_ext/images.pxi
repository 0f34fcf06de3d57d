# Included by the kernel modules that resample NHWC images (remap, resize): the check that an
# output or gradient holds the images and channels of the array it pairs with.

cdef int check_same_images(Py_ssize_t n, Py_ssize_t c, Py_ssize_t got_n, Py_ssize_t got_c,
                           str name) except -1:
    """Raise unless the array called ``name`` holds n images of c channels (got_n and got_c)."""
    if got_n != n or got_c != c:
        raise ValueError(f"{name} must hold {n} images of {c} channels, received {got_n} of "
                         f"{got_c}")
    return 0
