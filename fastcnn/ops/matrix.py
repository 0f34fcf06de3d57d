"""Matrix products: matmul, dot and einsum.

A product of two floating matrices of one dtype runs the dense kernels (forward, and both
gradients); other ranks and batched products use NumPy's matmul, with gradients that sum back
over broadcast batch axes. einsum's gradient with respect to each operand is itself an einsum.
"""
import numpy as np

from .._ops import dense
from .arithmetic import multiply
from .core import (
    KERNEL_DTYPES,
    Op,
    Spec,
    broadcast_shapes,
    recordable,
    result_dtype,
    spec_of,
    unbroadcast,
)


def _dense_pair(a, b):
    return (a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype and a.dtype in KERNEL_DTYPES
            and a.size and b.size)


class _MatMul(Op):
    def compute(self, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if _dense_pair(a, b):
            return dense.dense_forward(a, b, None)
        return np.asarray(np.matmul(a, b))

    def spec(self, a, b):
        if not a.shape or not b.shape:
            raise ValueError("Expected matmul operands of rank >= 1, received a scalar")
        ka = a.shape[-1]
        kb = b.shape[-2] if len(b.shape) > 1 else b.shape[0]
        if ka is not None and kb is not None and ka != kb:
            raise ValueError(f"Expected matmul operands with matching inner sizes, received "
                             f"shapes {a.shape} and {b.shape}")
        a_rows = a.shape[:-1] if len(a.shape) > 1 else ()
        b_cols = b.shape[-1:] if len(b.shape) > 1 else ()
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
        rows = a_rows[-1:] if len(a.shape) > 1 else ()
        return Spec(batch + rows + b_cols, result_dtype(np.multiply, a, b))

    def gradients(self, dy, xs, y, needed):
        a, b = np.asarray(xs[0]), np.asarray(xs[1])
        if _dense_pair(a, b) and dy.dtype == a.dtype:
            dy = np.ascontiguousarray(dy)
            return [dense.dense_backward_input(dy, b) if needed[0] else None,
                    dense.dense_backward_weight(a, dy) if needed[1] else None]
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        dy2 = dy
        if a.ndim == 1:
            dy2 = np.expand_dims(dy2, -2 if b.ndim > 1 else -1)
        if b.ndim == 1:
            dy2 = np.expand_dims(dy2, -1)
        da = db = None
        if needed[0]:
            da = unbroadcast(np.matmul(dy2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if needed[1]:
            db = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), dy2), b2.shape).reshape(b.shape)
        return [da, db]


@recordable
def matmul(x1, x2):
    return _MatMul()(x1, x2)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _parse(subscripts, n_operands):
    """(input subscripts, output subscripts) in explicit form, '...' kept."""
    subscripts = subscripts.replace(" ", "")
    if "->" in subscripts:
        inputs, output = subscripts.split("->")
    else:
        inputs = subscripts
        letters = [c for c in inputs.replace("...", "").replace(",", "")]
        output = ("..." if "..." in inputs else "") + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1))
    terms = inputs.split(",")
    if len(terms) != n_operands:
        raise ValueError(f"Expected {len(terms)} operands for einsum {subscripts!r}, received "
                         f"{n_operands}")
    return terms, output


class _Einsum(Op):
    def __init__(self, subscripts):
        self.subscripts = subscripts

    def compute(self, *xs):
        return np.asarray(np.einsum(self.subscripts, *xs, optimize=len(xs) > 2))

    def spec(self, *specs):
        terms, output = _parse(self.subscripts, len(specs))
        sizes, ellipsis = {}, []
        for term, s in zip(terms, specs):
            letters = term.replace("...", "")
            n_ell = len(s.shape) - len(letters) if "..." in term else 0
            if n_ell < 0 or ("..." not in term and len(letters) != len(s.shape)):
                raise ValueError(f"Expected an operand of rank {len(letters)} for {term!r}, "
                                 f"received shape {s.shape}")
            head = term.index("...") if "..." in term else len(letters)
            dims = list(s.shape)
            ellipsis.append(tuple(dims[head:head + n_ell]))
            for c, d in zip(letters, dims[:head] + dims[head + n_ell:]):
                if d is not None and sizes.get(c) not in (None, d, 1) and d != 1:
                    raise ValueError(f"Expected matching sizes for {c!r} in einsum "
                                     f"{self.subscripts!r}, received {sizes[c]} and {d}")
                if sizes.get(c) in (None, 1):
                    sizes[c] = d
        ell = broadcast_shapes(*ellipsis) if ellipsis else ()
        if "..." in output:
            head, tail = output.split("...")
            out = [sizes[c] for c in head] + list(ell) + [sizes[c] for c in tail]
        else:
            out = [sizes[c] for c in output]
        return Spec(tuple(out), np.result_type(*(s.dtype for s in specs)))

    def gradients(self, dy, xs, y, needed):
        terms, output = _parse(self.subscripts, len(xs))
        grads = []
        for i, (term, x) in enumerate(zip(terms, xs)):
            x = np.asarray(x)
            if not needed[i]:
                grads.append(None)
                continue
            others = [t for j, t in enumerate(terms) if j != i]
            letters = term.replace("...", "")
            if len(set(letters)) != len(letters):
                raise NotImplementedError(f"einsum {self.subscripts!r}: no gradient for an "
                                          "operand with a repeated index")
            present = set("".join(others) + output)
            missing = [c for c in letters if c not in present]
            # A letter that only this operand has was summed out: its gradient is constant
            # along that axis, so compute without it and broadcast back.
            target = "".join(c for c in term if c not in missing) if missing else term
            if "..." in term and "..." not in output + "".join(others):
                raise NotImplementedError(f"einsum {self.subscripts!r}: no gradient when '...' "
                                          "is summed out")
            if "..." in output + "".join(others) and "..." not in term:
                target = "..." + target  # NumPy sums no broadcast axis away: unbroadcast does
            g = np.einsum(",".join([output, *others]) + "->" + target, dy,
                          *[xs[j] for j in range(len(xs)) if j != i])
            if missing:
                n_ell = x.ndim - len(letters)
                positions, k = [], 0
                for c in term.replace("...", "."):
                    if c == ".":
                        k += n_ell
                        continue
                    if c in missing:
                        positions.append(k)
                    k += 1
                g = np.broadcast_to(np.expand_dims(g, tuple(positions)), x.shape)
            if g.shape != x.shape:
                g = unbroadcast(g, x.shape)
            grads.append(g)
        return grads


@recordable
def einsum(subscripts, *operands):
    if not isinstance(subscripts, str):
        raise TypeError(f"Expected subscripts to be a string, received {subscripts!r}")
    return _Einsum(subscripts)(*operands)


@recordable
def dot(x1, x2):
    """NumPy's dot: a product with a scalar, matmul for vectors and matrices, and for higher
    ranks the sum over the last axis of x1 and the second-to-last of x2."""
    a, b = spec_of(x1), spec_of(x2)
    if not a.shape or not b.shape:
        return multiply(x1, x2)
    if len(a.shape) <= 2 and len(b.shape) <= 2:
        return matmul(x1, x2)
    la = _LETTERS[:len(a.shape)]
    lb = _LETTERS[len(a.shape):len(a.shape) + len(b.shape)]
    if len(b.shape) >= 2:
        lb = lb[:-2] + la[-1] + lb[-1]
    else:
        lb = la[-1]
    out = la[:-1] + "".join(c for c in lb if c != la[-1])
    return einsum(f"{la},{lb}->{out}", x1, x2)


@recordable
def tensordot(x1, x2, axes=2):
    a, b = spec_of(x1), spec_of(x2)
    if isinstance(axes, int):
        axes = (list(range(len(a.shape) - axes, len(a.shape))), list(range(axes)))
    ax_a, ax_b = ([axes[0]] if isinstance(axes[0], int) else list(axes[0]),
                  [axes[1]] if isinstance(axes[1], int) else list(axes[1]))
    la = list(_LETTERS[:len(a.shape)])
    lb = list(_LETTERS[len(a.shape):len(a.shape) + len(b.shape)])
    for i, j in zip(ax_a, ax_b):
        lb[j % len(b.shape)] = la[i % len(a.shape)]
    contracted = {la[i % len(a.shape)] for i in ax_a}
    out = [c for c in la if c not in contracted] + [c for c in lb if c not in contracted]
    return einsum(f"{''.join(la)},{''.join(lb)}->{''.join(out)}", x1, x2)
