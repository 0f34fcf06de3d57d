"""What a large batch costs in memory: the MNIST convnet's peak RSS in a fit at batch 8192 minus
that at batch 128, against the extra bytes of the activation and gradient buffers that its
execution keeps at the larger batch. Prints one JSON line per batch and a summary line.

    FASTCNN_DATA=../shared/datasets python bench/batch_memory.py --steps 3 --threads 2

Each batch size runs in a fresh process on the same data (the first ``8192 * steps`` MNIST
training images, or random images of that shape without $FASTCNN_DATA), for ``steps`` batches.
The buffers' bytes are summed from their shapes and dtypes: every distinct array that the
training execution holds after a step (the values of its slots, the buffers of each call and
of the execution, those of its buffer pool, the arrays the calls keep for their backward), each
counted once. The RSS difference over that buffer difference should stay at most 1.1: what is
above it grows with the batch outside the buffers the layer shapes call for (the kernels'
scratch, copies).
"""
import argparse
import json
import os
import resource
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL, LARGE = 128, 8192
TARGET = 1.1


def images(count):
    """(x, y): the first ``count`` MNIST training images, else random ones of their shape."""
    if os.environ.get("FASTCNN_DATA"):
        import fastcnn
        (x, y), _ = fastcnn.datasets.mnist.load_data()
        x = x[:count].astype(np.float32)[..., None]
        x /= 255
        return x, y[:count].astype(np.int64)
    rng = np.random.default_rng(0)
    return (rng.random((count, 28, 28, 1), dtype=np.float32),
            rng.integers(0, 10, count).astype(np.int64))


def held_bytes(execution):
    """Bytes of the distinct arrays (by owner) that ``execution`` holds, weights excluded."""
    from fastcnn._ops.workspace import root
    arrays = [v for v in execution.values if isinstance(v, np.ndarray)]
    arrays += execution.workspace._buffers.values()
    arrays += execution._sums._buffers.values()
    arrays += [b for free in execution._pool._free.values() for b in free]
    arrays += execution._pool._lent
    for ctx in execution.contexts:
        arrays += ctx._workspace._buffers.values()
        for v in vars(ctx).values():
            items = v if isinstance(v, (list, tuple)) else [v]
            arrays += [a for a in items if isinstance(a, np.ndarray)]
    weights = {id(root(w)) for w in execution.plan.trained}
    owners = {id(root(a)): root(a) for a in arrays}
    return sum(a.nbytes for k, a in owners.items() if k not in weights)


def child(batch, steps, threads):
    import fastcnn
    sys.path.insert(0, HERE)
    from workloads import keras_style_model

    fastcnn.set_num_threads(threads)
    fastcnn.utils.set_random_seed(0)
    x, y = images(LARGE * steps)
    model = keras_style_model(fastcnn, fastcnn.layers, "mnist")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    held = []

    class Held(fastcnn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            held.append(held_bytes(self.model._fit_state.execution))

    model.fit(x, y, batch_size=batch, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0,
              callbacks=[Held()])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"batch": batch, "peak_rss": rss, "buffers": max(held)}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.child, a.steps, a.threads)
    runs = {}
    for batch in (SMALL, LARGE):
        out = subprocess.run([sys.executable, __file__, "--child", str(batch), "--steps",
                              str(a.steps), "--threads", str(a.threads)],
                             capture_output=True, text=True, check=True)
        runs[batch] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(runs[batch]))
    rss = runs[LARGE]["peak_rss"] - runs[SMALL]["peak_rss"]
    buffers = runs[LARGE]["buffers"] - runs[SMALL]["buffers"]
    print(json.dumps({"rss_extra_mb": round(rss / 2**20, 1),
                      "buffers_extra_mb": round(buffers / 2**20, 1),
                      "ratio": round(rss / buffers, 3), "target": TARGET,
                      "threads": a.threads}))


if __name__ == "__main__":
    main()
