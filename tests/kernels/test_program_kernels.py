"""The program kernel through its checked wrapper (fastcnn._ops.program): results against the
NumPy twin, bitwise the same for 1, 2 and 3 threads, row sums as the reduce kernel sums, and the
programs and arrays it refuses."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ops import program
from fastcnn._ops import reduce as reduce_ops
from conftest import every_opcode_program, program_inputs

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("rows,cols", [(300, 40), (20, 700), (5000, 1)])
def test_results_do_not_depend_on_the_thread_count(dtype, rows, cols, rng):
    prog = every_opcode_program(dtype)
    inputs = program_inputs(rng, prog, rows, cols)
    runs = [program.run(prog, inputs, rows, cols, n_threads=t) for t in (1, 2, 3)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_opcode_matches_numpy(dtype, rng):
    prog = every_opcode_program(dtype)
    rows, cols = 9, 260  # a row longer than a block: row sums carried across blocks
    inputs = program_inputs(rng, prog, rows, cols)
    got = program.run(prog, inputs, rows, cols)
    want = [np.empty_like(g) for g in got]
    ref.program_run(prog.code, prog.constants, inputs, want, rows, cols, prog.n_registers, 1)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("rows,cols", [(13, 7), (3, 1000)])
def test_row_sums_equal_the_reduce_kernels(dtype, rows, cols, rng):
    b = program.Builder()
    x = b.input()
    b.row_sum(x)
    b.row_sum(x, cols)
    data = rng.standard_normal(rows * cols).astype(dtype)
    total, mean = program.run(b.build(dtype), [data], rows, cols)
    x2 = data.reshape(rows, cols)
    np.testing.assert_array_equal(total, reduce_ops.reduce_forward("sum", x2, (1,)))
    np.testing.assert_array_equal(mean, reduce_ops.reduce_forward("mean", x2, (1,)))


def test_numpy_semantics_at_the_edges():
    b = program.Builder()
    x, y = b.input(), b.input()
    for name in ("maximum", "minimum"):
        b.store(b.op(name, x, y))
    b.store(b.op("sign", x))
    b.store(b.op("rint", x))
    prog = b.build(np.float64)
    xs = np.array([np.nan, 1.0, -0.0, 2.5, -1.5, 0.5])
    ys = np.array([1.0, np.nan, 0.0, 3.5, -2.5, 0.0])
    got = program.run(prog, [xs, ys], 1, 6)
    for g, w in zip(got, [np.maximum(xs, ys), np.minimum(xs, ys), np.sign(xs), np.rint(xs)]):
        np.testing.assert_array_equal(g, w)


def test_unused_instructions_are_dropped():
    b = program.Builder()
    x = b.input()
    b.op("exp", x)  # read by no output
    b.store(b.op("negative", x))
    prog = b.build(np.float32)
    assert prog.code.shape[0] == 3 and prog.n_registers == 2


def test_refused_programs_and_arrays():
    code = [(program.OPCODES["negative"], 0, 0, 0, 0),
            (program.OPCODES["store"], 0, 0, 0, 0)]
    with pytest.raises(ValueError, match="read before it is written"):
        program.Program(code, [], [], ["full"], 1, np.float32)
    with pytest.raises(ValueError, match="unknown opcode"):
        program.Program([(99, 0, 0, 0, 0)], [], [], ["full"], 1, np.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        program.Program([], [], [], ["full"], 0, np.int32)
    b = program.Builder()
    b.store(b.op("exp", b.input()))
    prog = b.build(np.float32)
    with pytest.raises(ValueError, match="inputs\\[0\\]"):
        program.run(prog, [np.zeros(6, np.float64)], 2, 3)
    with pytest.raises(ValueError, match="inputs\\[0\\]"):
        program.run(prog, [np.zeros(5, np.float32)], 2, 3)
    with pytest.raises(ValueError, match="apart from the inputs"):
        x = np.zeros(6, np.float32)
        program.run(prog, [x], 2, 3, outputs=[x])
    with pytest.raises(ValueError, match="1 outputs"):
        program.run(prog, [np.zeros(6, np.float32)], 2, 3, outputs=[])


EDGES = [0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 7.0, -7.0, 0.3, -0.7, 3.0, 1e30, -1e-30, np.inf,
         -np.inf, np.nan]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_floor_divide_and_mod_are_numpys_bit_for_bit(dtype, simd_path, rng):
    # every pair of edge values (zero and negative divisors, signed zeros, inf, nan), then
    # random ones, of quotients small and beyond 2^29 (where float32's exact fmod hands over
    # to the library's), and subnormals: the values and the signs of zeros, for 1, 2 and 3
    # threads
    a, b = (v.reshape(-1).copy() for v in np.meshgrid(np.array(EDGES, dtype),
                                                      np.array(EDGES, dtype)))
    scale = np.exp(rng.uniform(-40, 40, 4739))
    a = np.concatenate([a, (rng.standard_normal(4739) * scale).astype(dtype),
                        np.array([3e-45, 1e-40, 5e29, -7.0, 16777217.0], dtype)])
    b = np.concatenate([b, (rng.standard_normal(4739) * 3).astype(dtype),
                        np.array([1e-45, 3e-41, 0.75, 1e-38, 3.0], dtype)])
    builder = program.Builder()
    x, y = builder.input(), builder.input()
    builder.store(builder.op("floor_divide", x, y))
    builder.store(builder.op("mod", x, y))
    prog = builder.build(dtype)
    with np.errstate(all="ignore"):
        want = [np.floor_divide(a, b), np.mod(a, b)]
    for threads in (1, 2, 3):
        got = program.run(prog, [a, b], 50, a.size // 50, n_threads=threads)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
            np.testing.assert_array_equal(np.signbit(g), np.signbit(w))


@pytest.mark.parametrize("name", ["exp", "log", "log1p", "expm1", "sin", "cos"])
def test_float32_functions_are_within_an_ulp(name, simd_path):
    # vecmath.h's own float32 functions against float64's: a sweep over every sign
    # and exponent (one bit pattern in 4099) and the edges: overflow, underflow into subnormals,
    # zeros, negatives, multiples of pi / 2, sin and cos beyond their reduction's limit, inf and
    # NaN (where the answer is not finite, exactly NumPy's)
    x = np.arange(0, 2 ** 32, 4099, dtype=np.uint64).astype(np.uint32).view(np.float32)
    edges = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 88.72283, 88.7228394, 89.0,
             -87.33654, -103.27893, -103.97, -104.0, -200.0, 1.17549435e-38, 1.4e-45,
             3.4028235e38, -1.4e-45, 1.5707964, 3.1415927, -4.712389, 99999.99, 999999.9,
             1000000.0, -1000000.0, 12345678.0, -0.99999994, -1.0000001, 1e-7, -1e-7,
             9.5e-7, 1e-30]
    x = np.append(x, np.array(edges, np.float32))
    b = program.Builder()
    b.store(b.op(name, b.input()))
    prog = b.build(np.float32)
    ufunc = getattr(np, name)
    with np.errstate(all="ignore"):
        got, = program.run(prog, [x], 1, x.size)
        exact = ufunc(x.astype(np.float64))
        finite = np.isfinite(exact) & np.isfinite(got)
        ulp = np.spacing(np.abs(exact[finite].astype(np.float32))).astype(np.float64)
        assert np.max(np.abs(got[finite] - exact[finite]) / ulp) < 1
        np.testing.assert_array_equal(got[~finite], exact[~finite].astype(np.float32))
        assert np.signbit(got[x == 0]).tolist() == np.signbit(ufunc(x[x == 0])).tolist()
    # and the NumPy twin's, bit for bit (NaNs alike, whatever their sign), on every 5th value
    x, got = x[::5].copy(), got[::5]
    want = np.empty_like(got)
    ref.program_run(prog.code, prog.constants, [x], [want], 1, x.size, prog.n_registers, 1)
    numbers = ~np.isnan(got)
    assert np.array_equal(numbers, ~np.isnan(want))
    np.testing.assert_array_equal(got[numbers].view(np.uint32), want[numbers].view(np.uint32))


# The opcodes whose every step is an IEEE operation, or one of vecmath.h's float32 functions:
# the same bits at every SIMD level and in the NumPy twin.
EXACT = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "greater",
         "greater_equal", "less", "less_equal", "equal", "not_equal", "negative", "sqrt",
         "square", "abs", "sign", "floor", "rint", "reciprocal"]
FLOAT32_FUNCTIONS = ["exp", "log", "log1p", "expm1", "sin", "cos"]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_simd_path_matches_the_twin_bit_for_bit(dtype, simd_path, rng):
    b = program.Builder()
    x, y = b.input(), b.input()
    positive = b.op("add", b.op("abs", y), b.constant(0.5))
    names = EXACT + (FLOAT32_FUNCTIONS if dtype == np.float32 else [])
    results = [b.op(name, x, y) if program.ARITY[name] == 2 else
               b.op(name, positive if name in ("log", "sqrt") else x) for name in names]
    results.append(b.op("where", b.op("greater", x, y), x, y))
    results.append(b.op("where", b.input("mask"), x, y))
    for r in results:
        b.store(r)
    b.store_mask(b.op("less", x, y))
    b.row_sum(results[0], 3.0)
    prog = b.build(dtype)
    rows, cols = 7, 300  # a row longer than a block
    data = [(rng.standard_normal(rows * cols) * 4).astype(dtype) for _ in range(2)]
    data[0][:8] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e7, -3e-39, 1.5707964]
    data.append(rng.random(rows * cols) < 0.5)
    got = program.run(prog, data, rows, cols)
    want = [np.empty_like(g) for g in got]
    ref.program_run(prog.code, prog.constants, data, want, rows, cols, prog.n_registers, 1)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.view(f"u{g.itemsize}"), w.view(f"u{w.itemsize}"))
