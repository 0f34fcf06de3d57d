"""A short run of the crash fuzzer (tests/api/fuzz.py): random valid and invalid calls of every
public op, layer, function, class and method, and of functional, subclassed and Sequential
models, in child processes. No call may kill its process, and none may fail with an internal
error (IndexError, AttributeError, ZeroDivisionError, ...). The long runs (>= 20,000 calls, at
6 GiB and at 2 GiB of address space) are the fuzzer's command line."""
import io

import fuzz
import fuzz_public_calls


def check_clean(report, calls):
    text = fuzz.format_report(report)
    assert report["calls"] == calls, text
    assert not report["crashes"], text
    assert report["counts"]["internal"] == 0, text
    assert report["counts"]["fuzzer-bug"] == 0, text


def test_short_fuzz_run_never_crashes():
    check_clean(fuzz.run(calls=400, seed=20240601, stream=io.StringIO()), 400)


def test_short_run_under_two_gib_of_address_space():
    """MemoryError is an acceptable outcome there; a crash or a raw exception is not."""
    report = fuzz.run(calls=200, seed=20240602, stream=io.StringIO(), memory_limit=2 * 2**30)
    check_clean(report, 200)


def test_the_sweep_finds_the_public_api_by_enumeration():
    """New public names are swept without a change to the fuzzer (an alias once)."""
    import fastcnn
    from fastcnn import layers, saving
    found = {id(target) for _, target in fuzz_public_calls.public_callables()}
    for expected in (fastcnn.Model, fastcnn.Input, fastcnn.Sequential, layers.Add,
                     layers.Concatenate, saving.load_model, saving.register_keras_serializable,
                     fastcnn.metrics.binary_accuracy, fastcnn.losses.CategoricalCrossentropy,
                     fastcnn.utils.to_categorical, fastcnn.optimizers.get,
                     fastcnn.callbacks.EarlyStopping,
                     fastcnn.optimizers.schedules.ExponentialDecay):
        assert id(expected) in found, expected
    methods = fuzz_public_calls.public_methods(fastcnn.Sequential)
    for expected in ("pop", "get_layer", "summary", "compile", "fit", "evaluate", "predict",
                     "set_weights", "save", "trainable", "output_names"):
        assert expected in methods


def test_a_crashing_call_is_reported_with_its_arguments():
    """The parent names the call a child died in, and carries on after it."""
    report = fuzz.run(calls=12, seed=1, only="crash_call", stream=io.StringIO())
    assert report["calls"] == 12
    assert report["crashes"] and report["counts"]["ok"] == 12 - len(report["crashes"])
    for crash in report["crashes"]:
        assert crash["call"] == "ctypes.string_at(0)" and crash["status"] == -11
