#!/usr/bin/env bash
# Memory-safety check: build every Cython extension with AddressSanitizer in a scratch copy of
# the repository (the in-place build is left alone), then run the kernel tests and a short
# fuzz there with libasan preloaded. Any out-of-bounds access or use-after-free aborts the run
# with an AddressSanitizer report; the summary at the end says which step, if any, found one.
#
#   scripts/asan.sh                 # scratch copy in /tmp/fastcnn-asan
#   FASTCNN_ASAN_DIR=/x scripts/asan.sh
#   FASTCNN_ASAN_FUZZ_CALLS=0 scripts/asan.sh   # skip the fuzz step
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${FASTCNN_ASAN_DIR:-/tmp/fastcnn-asan}
FUZZ_CALLS=${FASTCNN_ASAN_FUZZ_CALLS:-3000}
LOGS="$WORK/logs"

echo "== copying sources to $WORK"
rm -rf "$WORK"
mkdir -p "$WORK"
tar -C "$ROOT" --exclude=.git --exclude=build --exclude='*.so' --exclude='fastcnn/_ext/*.c' \
    --exclude=.hypothesis --exclude=__pycache__ -cf - . | tar -C "$WORK" -xf -
mkdir -p "$LOGS"
cd "$WORK" || exit 2

echo "== building the extensions with -fsanitize=address"
# -O1 keeps ASan's reports readable; -g gives file:line in them.
SANITIZE="-fsanitize=address -fno-omit-frame-pointer -g"
for pyx in fastcnn/_ext/*.pyx; do
    if ! CFLAGS="-O1 $SANITIZE -fopenmp -fno-math-errno -DFASTCNN_OPENMP=1" \
         LDFLAGS="-fsanitize=address -fopenmp" \
         cythonize -i -3 -q -X boundscheck=False -X wraparound=False -X cdivision=True \
                   -X initializedcheck=False "$pyx" > "$LOGS/build.log" 2>&1; then
        cat "$LOGS/build.log"
        echo "ASan build of $pyx failed"
        exit 2
    fi
done

LIBASAN=$(gcc -print-file-name=libasan.so)
# Python's own allocator hides small objects from ASan; plain malloc exposes them. Leak checks
# are off: the interpreter keeps memory until exit by design. A vast allocation (the fuzzer
# tries some) returns NULL, which numpy turns into a MemoryError, instead of being attempted.
export LD_PRELOAD="$LIBASAN"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=6144"
export PYTHONMALLOC=malloc
export PYTHONPATH="$WORK"

python -c "
import fastcnn._ext.conv as conv
assert conv.__file__.startswith('$WORK/'), conv.__file__
assert 'libasan' in open('/proc/self/maps').read()
" || { echo "the ASan build does not load"; exit 2; }

TESTS=(tests/kernels/*.py tests/ops/test_properties_ops.py tests/ops/test_checks_ops.py
       tests/api/test_validation.py)
if python -c "import torch" > /dev/null 2>&1; then
    TESTS+=(tests/ops/test_torch_oracle_ops.py)
fi

declare -a SUMMARY
STATUS=0
run_step() {  # name, log, summary-line pattern, command...
    local name=$1 log=$2 pattern=$3
    shift 3
    local start=$SECONDS
    "$@" > "$log" 2>&1
    local rc=$?
    local asan
    asan=$(grep -c "ERROR: AddressSanitizer" "$log")
    local tail
    tail=$(grep -E "$pattern" "$log" | tail -3 | sed 's/^ *//' | paste -sd ';' -)
    if [ "$rc" -ne 0 ] || [ "$asan" -ne 0 ]; then
        STATUS=1
        SUMMARY+=("FAIL  $name: exit $rc, AddressSanitizer reports: $asan, $tail ($((SECONDS - start)) s; log $log)")
        grep -A30 "ERROR: AddressSanitizer" "$log" | head -60
    else
        SUMMARY+=("ok    $name: $tail, AddressSanitizer reports: 0 ($((SECONDS - start)) s)")
    fi
}

echo "== canary: an out-of-bounds read straight into a kernel (past the ops room's checks) must be caught"
# (abort_on_error=0: ASan exits with an error status instead of a signal the shell would report)
ASAN_OPTIONS="$ASAN_OPTIONS:abort_on_error=0" python -c "
import numpy as np
from fastcnn._ext import activation
y, dy, dx = np.ones(8192, np.float32), np.ones(4096, np.float32), np.empty(8192, np.float32)
activation.relu_backward(y, dy, dx, 1)  # reads dy past its end
" > "$LOGS/canary.log" 2>&1
if grep -q "ERROR: AddressSanitizer: heap-buffer-overflow" "$LOGS/canary.log"; then
    SUMMARY+=("ok    canary: the deliberate overflow was reported, so ASan is live")
else
    STATUS=1
    SUMMARY+=("FAIL  canary: a deliberate overflow went unreported; ASan is not active (log $LOGS/canary.log)")
fi

echo "== kernel tests under ASan: ${TESTS[*]}"
run_step "kernel tests" "$LOGS/pytest.log" "passed|failed|error" \
    python -m pytest -q -p no:cacheprovider "${TESTS[@]}"

if [ "$FUZZ_CALLS" -gt 0 ]; then
    echo "== $FUZZ_CALLS fuzzed calls (ops, layers, models) under ASan"
    # Children inherit LD_PRELOAD and ASAN_OPTIONS; an ASan abort is reported as a crash.
    run_step "fuzz" "$LOGS/fuzz.log" "calls \(seed|crashes|internal errors" \
        python tests/api/fuzz.py --calls "$FUZZ_CALLS" --seed 7
fi

echo
echo "== ASan summary (extensions built with -fsanitize=address in $WORK)"
printf '%s\n' "${SUMMARY[@]}"
[ "$STATUS" -eq 0 ] && echo "ASan: clean" || echo "ASan: FAILED"
exit "$STATUS"
