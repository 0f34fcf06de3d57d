#!/usr/bin/env python
"""Crash fuzzer: every public layer, op and model method, called with random valid and invalid
arguments in child processes.

    python tests/api/fuzz.py --calls 10000 [--seed 0] [--per-child 1000]
    python tests/api/fuzz.py --replay 1234 [--seed 0]     # rerun one call here, with a traceback
    python tests/api/fuzz.py --only op_call   # or layer_call, model_call, misc_call, source_call
    python tests/api/fuzz.py --only crash_call --calls 9  # check that crashes are caught
    python tests/api/fuzz.py --calls 10000 --memory-limit 2  # children under 2 GiB of memory
    python tests/api/fuzz.py --only public_call --under fastcnn.metrics  # one module's names

Call i is drawn from the RNG (seed, i) alone, so any call can be replayed. A child logs each
call's description, flushed, before making it, and its outcome after; when a child dies by a
signal (or hangs), the parent reports the last call the child started and resumes after it.

Outcomes:
- crash: the child died by a signal, or hung. Must never happen.
- internal: an exception raised inside fastcnn other than ValueError, TypeError or one of the
  library's documented errors: OSError (FileExistsError for overwrite=False among them), a
  RuntimeError or NotImplementedError with a message ("not compiled", "already training", a
  subclassed model without get_config saved whole), ImportError (a missing optional extra),
  data_adapters.StepError (a data source's own code failed while making a batch; the message
  names the step and the error), and the IndexError of Sequential.pop on an empty model (a
  list's pop). Anything else (IndexError,
  AttributeError, KeyError, ZeroDivisionError, OverflowError, RecursionError, ...) is a finding.
- kernel-level: a ValueError/TypeError that only the Cython kernel caught (Cython's own buffer
  checks, say), which means the ops room (fastcnn._ops) let it through. Safe, but worth a check
  there.
- memory: MemoryError under the child's address-space limit (a vast shape that was not refused
  before an allocation).

The calls are made by fuzz_op_calls.py (fastcnn._ops), fuzz_api_calls.py (layers, Sequential
models and utilities) and fuzz_public_calls.py (every public function, class and method, found by
enumeration, and functional and subclassed models) from the random values of fuzz_values.py; this
file runs them and reports.
"""
import argparse
import collections
import contextlib
import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np

from fuzz_api_calls import layer_call, misc_call, model_call
from fuzz_op_calls import op_call
import fuzz_public_calls
from fuzz_public_calls import graph_call, public_call, source_call
from fuzz_values import Gen

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEMORY_LIMIT = 6 * 2**30  # per child: an allocation beyond this is a MemoryError, not an OOM kill
SECONDS_PER_CALL = 20  # a child that makes no progress for this long is a hang


def crash_call(g):
    """The fuzzer's check of itself (--only crash_call): a third of these calls segfault."""
    if g.int(0, 2) == 0:
        return "ctypes.string_at(0)", lambda: ctypes.string_at(0)
    return "int(1)", lambda: int(1)


TARGETS = [(op_call, 0.3), (layer_call, 0.15), (model_call, 0.15), (misc_call, 0.03),
           (public_call, 0.22), (graph_call, 0.15), (source_call, 0.05)]
BUILDERS = {builder.__name__: builder for builder in (op_call, layer_call, model_call, misc_call,
                                                      public_call, graph_call, source_call,
                                                      crash_call)}


def make_call(seed, index, tmpdir, only=None):
    g = Gen(seed, index, tmpdir)
    if only:
        return BUILDERS[only](g)
    builders, weights = zip(*TARGETS)
    builder = builders[int(g.rng.choice(len(builders), p=np.array(weights) / sum(weights)))]
    return builder(g)


# ---- running and classifying ---------------------------------------------------------------

FASTCNN_DIR = os.path.join(ROOT, "fastcnn")


def classify(exc):
    """(outcome, where): where is the innermost frame inside fastcnn (or the fuzzer's own)."""
    frames = traceback.extract_tb(exc.__traceback__)
    # Cython frames name their .pyx relative to where it was compiled: fastcnn/_ext/conv.pyx
    inside = [f for f in frames if f.filename.startswith((FASTCNN_DIR, "fastcnn/"))]
    kernel = bool(inside) and inside[-1].filename.endswith(".pyx")
    last = inside[-1] if inside else frames[-1]
    name = os.path.relpath(last.filename, ROOT) if os.path.isabs(last.filename) else last.filename
    where = f"{name}:{last.lineno}"
    if isinstance(exc, MemoryError):
        return "memory", where
    from fastcnn.data_adapters import StepError
    acceptable = isinstance(exc, (ValueError, TypeError, OSError, ImportError, StepError)) or (
        type(exc) in (RuntimeError, NotImplementedError) and str(exc)) or (
        type(exc) is IndexError and last.filename.endswith(os.path.join("models", "sequential.py"))
        and last.name == "pop")
    if not inside:
        return ("acceptable" if acceptable else "fuzzer-bug"), where
    if acceptable:
        return ("kernel-level" if kernel else "acceptable"), where
    return "internal", where


def child(seed, start, stop, log_path, only, memory_limit, under=()):
    # Under AddressSanitizer (scripts/asan.sh) the shadow memory needs terabytes of address
    # space, so the limit is left to ASan's own max_allocation_size_mb.
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    warnings.simplefilter("ignore")
    fuzz_public_calls.UNDER[:] = under
    sys.path.insert(0, ROOT)
    import fastcnn  # noqa: F401  (imported before the first call is timed)
    with open(log_path, "a") as log, tempfile.TemporaryDirectory() as tmpdir:
        os.chdir(tmpdir)  # a relative file name among the hostile arguments lands here
        for i in range(start, stop):
            try:
                text, run = make_call(seed, i, tmpdir, only)
            except Exception as exc:  # a bug in the fuzzer's own argument making
                text, run = f"<making call {i}>", None
                outcome, where, error = "fuzzer-bug", os.path.relpath(__file__, ROOT), repr(exc)[:300]
            log.write(json.dumps({"i": i, "call": text}) + "\n")
            log.flush()
            if run is not None:
                outcome, where, error = "ok", "", ""
                try:
                    run()
                except BaseException as exc:  # noqa: B902 - every Python-level exit is an outcome
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    outcome, where = classify(exc)
                    error = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.write(json.dumps({"i": i, "outcome": outcome, "where": where, "error": error}) + "\n")
            log.flush()
            for name in os.listdir(tmpdir):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(tmpdir, name))


def read_log(path):
    calls, outcomes = {}, {}
    with open(path) as f:
        for line in f:
            with contextlib.suppress(json.JSONDecodeError):
                entry = json.loads(line)
                (outcomes if "outcome" in entry else calls)[entry["i"]] = entry
    return calls, outcomes


def run(calls, seed=0, per_child=1000, only=None, stream=None, memory_limit=MEMORY_LIMIT,
        under=()):
    """Make ``calls`` fuzz calls in child processes (all kinds, or the ``only`` builder), each
    child under an address-space limit of ``memory_limit`` bytes, public_call's sweep
    restricted to the qualified names starting with one of ``under`` when it is not empty;
    returns the report as a dict."""
    stream = stream or sys.stdout
    report = {"calls": 0, "seed": seed, "memory_limit": memory_limit,
              "counts": collections.Counter(), "crashes": [],
              "findings": collections.defaultdict(list)}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        log_path, err_path = os.path.join(tmp, "fuzz.log"), os.path.join(tmp, "stderr")
        next_call = 0
        while next_call < calls:
            stop = min(calls, next_call + per_child)
            open(log_path, "w").close()
            command = [sys.executable, os.path.abspath(__file__), "--child", "--seed", str(seed),
                       "--start", str(next_call), "--stop", str(stop), "--log", log_path,
                       "--memory-limit", str(memory_limit / 2**30)]
            command += ["--only", only] if only else []
            command += [arg for prefix in under for arg in ("--under", prefix)]
            with open(err_path, "wb") as err:  # a file, not a pipe: a chatty child never blocks
                proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err,
                                        env={**os.environ, "PYTHONPATH": ROOT})
                status = watch(proc, log_path)
            stderr = open(err_path, errors="replace").read()
            logged, outcomes = read_log(log_path)
            for i, entry in sorted(outcomes.items()):
                report["counts"][entry["outcome"]] += 1
                if entry["outcome"] not in ("ok", "acceptable"):
                    report["findings"][(entry["outcome"], entry["where"], entry["error"].split(":")[0])] \
                        .append((i, logged[i]["call"], entry["error"]))
            report["calls"] += len(outcomes)
            unfinished = sorted(set(logged) - set(outcomes))
            if status != 0 or unfinished:
                culprit = unfinished[0] if unfinished else None
                if culprit is not None:
                    call = logged[culprit]["call"]
                elif outcomes:  # e.g. heap corruption from an earlier call, caught at exit
                    call = f"<after call {max(outcomes)} returned: a delayed crash>"
                else:
                    call = "<before any call: the child did not start>"
                report["crashes"].append({"i": culprit, "status": status, "call": call,
                                          "stderr": stderr[-2000:]})
                report["calls"] += culprit is not None
                if culprit is None and not outcomes:
                    break  # restarting would only fail the same way
                next_call = stop if culprit is None else culprit + 1
            else:
                next_call = stop
            stream.write(f"  {report['calls']} calls, {len(report['crashes'])} crashes, "
                         f"{time.time() - started:.0f} s\n")
            stream.flush()
    report["seconds"] = time.time() - started
    return report


def watch(proc, log_path):
    """Wait for a child; kill it when its log makes no progress. The exit status, or 'hang'."""
    last_size, last_change = -1, time.time()
    while proc.poll() is None:
        size = os.path.getsize(log_path)
        if size != last_size:
            last_size, last_change = size, time.time()
        elif time.time() - last_change > SECONDS_PER_CALL:
            proc.kill()
            proc.wait()
            return "hang"
        time.sleep(0.05)
    return proc.returncode


def signal_name(status):
    import signal
    if isinstance(status, int) and status < 0:
        return signal.Signals(-status).name
    return str(status)


def format_report(report):
    counts = report["counts"]
    lines = [f"fuzz: {report['calls']} calls (seed {report['seed']}, address space "
             f"{report['memory_limit'] / 2**30:g} GiB) in {report['seconds']:.0f} s",
             f"  crashes (killed by a signal, or hung): {len(report['crashes'])}",
             f"  internal errors: {counts['internal']}",
             f"  kernel-level rejections (the ops room let them through): {counts['kernel-level']}",
             f"  memory errors: {counts['memory']}",
             f"  fuzzer bugs: {counts['fuzzer-bug']}",
             f"  clean results: {counts['ok']}, refused with ValueError/TypeError: "
             f"{counts['acceptable']}"]
    for crash in report["crashes"]:
        lines.append(f"CRASH ({signal_name(crash['status'])}) at call {crash['i']}: {crash['call']}")
        if crash["stderr"].strip():
            lines.append("  stderr: " + crash["stderr"].strip().splitlines()[-1])
    for (outcome, where, kind), hits in sorted(report["findings"].items()):
        i, call, error = hits[0]
        lines.append(f"{outcome.upper()} x{len(hits)} {kind} at {where}\n  e.g. call {i}: {call}\n"
                     f"  -> {error}")
    return "\n".join(lines)


def replay(seed, index, only, under=()):
    fuzz_public_calls.UNDER[:] = under
    sys.path.insert(0, ROOT)
    with tempfile.TemporaryDirectory() as tmpdir:
        text, call = make_call(seed, index, tmpdir, only)
        print(f"call {index}: {text}", flush=True)
        call()
        print("returned normally")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-child", type=int, default=1000)
    parser.add_argument("--replay", type=int)
    parser.add_argument("--only", choices=sorted(BUILDERS))
    parser.add_argument("--memory-limit", type=float, default=MEMORY_LIMIT / 2**30,
                        help="each child's address-space limit, GiB")
    parser.add_argument("--under", action="append", default=[], metavar="PREFIX",
                        help="restrict public_call to the public names starting with PREFIX "
                             "(fastcnn.metrics, say); repeatable")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.seed, args.start, args.stop, args.log, args.only,
              int(args.memory_limit * 2**30), args.under)
    elif args.replay is not None:
        replay(args.seed, args.replay, args.only, args.under)
    else:
        report = run(args.calls, args.seed, args.per_child, args.only,
                     memory_limit=int(args.memory_limit * 2**30), under=args.under)
        print(format_report(report))
        sys.exit(1 if report["crashes"] or report["counts"]["internal"] else 0)


if __name__ == "__main__":
    main()
