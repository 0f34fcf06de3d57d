"""A short run of the crash fuzzer (tests/api/fuzz.py): random valid and invalid calls of every
public op, layer and model method, in child processes. No call may kill its process, and none may
fail with an internal error (IndexError, AttributeError, ZeroDivisionError, ...)."""
import io

import fuzz


def test_short_fuzz_run_never_crashes():
    report = fuzz.run(calls=500, seed=20240601, stream=io.StringIO())
    text = fuzz.format_report(report)
    assert report["calls"] == 500, text
    assert not report["crashes"], text
    assert report["counts"]["internal"] == 0, text
    assert report["counts"]["fuzzer-bug"] == 0, text


def test_a_crashing_call_is_reported_with_its_arguments():
    """The parent names the call a child died in, and carries on after it."""
    report = fuzz.run(calls=12, seed=1, only="crash_call", stream=io.StringIO())
    assert report["calls"] == 12
    assert report["crashes"] and report["counts"]["ok"] == 12 - len(report["crashes"])
    for crash in report["crashes"]:
        assert crash["call"] == "ctypes.string_at(0)" and crash["status"] == -11
