"""What writing a model with fastcnn.ops costs: training time of

- a custom ``Linear`` layer (``ops.matmul(x, w) + b``) against the built-in ``Dense`` on the
  same shapes (target: within 1.2x), and
- a loss written with ops against the built-in loss: per call of the loss (its forward and
  gradient on a batch of outputs; target: within 1.5x), and on a whole training step of an MLP.

    python bench/custom_ops.py --rounds 5 --epochs 2 --threads 2

Each round trains every variant from the same seed, alternating their order so that a slow
phase of a shared machine hits them alike; the medians of the epoch times and their ratios are
printed (one JSON line last).
"""
import argparse
import json
import statistics
import time

import numpy as np

import fastcnn
from fastcnn import layers, ops


class Linear(layers.Layer):
    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.activation = units, activation

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units))
        self.b = self.add_weight(shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        y = ops.matmul(inputs, self.w) + self.b
        return ops.relu(y) if self.activation == "relu" else y


def ops_crossentropy(y_true, y_pred):
    return ops.categorical_crossentropy(y_true, y_pred, from_logits=True)


def ops_mse(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def mlp(dense, features, hidden, classes):
    inputs = fastcnn.Input((features,))
    x = dense(hidden, activation="relu")(inputs)
    x = dense(hidden, activation="relu")(x)
    return fastcnn.Model(inputs, dense(classes)(x))


VARIANTS = {
    "dense": (layers.Dense, "categorical_crossentropy_logits"),
    "linear": (Linear, "categorical_crossentropy_logits"),
    "builtin_loss": (layers.Dense, "mse"),
    "ops_loss": (layers.Dense, ops_mse),
    "ops_crossentropy": (layers.Dense, ops_crossentropy),
}


def epoch_time(variant, x, y, epochs, batch_size):
    dense, loss = VARIANTS[variant]
    fastcnn.utils.set_random_seed(0)
    model = mlp(dense, x.shape[1], 512, y.shape[1])
    if loss == "categorical_crossentropy_logits":
        loss = fastcnn.losses.CategoricalCrossentropy(from_logits=True)
    model.compile(fastcnn.optimizers.SGD(0.01), loss)
    model.fit(x[:batch_size * 2], y[:batch_size * 2], batch_size=batch_size, verbose=0)  # warm
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return (time.perf_counter() - start) / epochs, (time.process_time() - cpu) / epochs


def loss_call_ratios(batch_size, rounds, calls=200):
    """Per call of forward_backward on (batch, 10) outputs: the ops-written loss over the
    built-in one, for mse and cross-entropy on logits."""
    rng = np.random.default_rng(1)
    y_pred = rng.normal(size=(batch_size, 10)).astype(np.float32)
    y_true = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch_size)]
    grad, loss = np.empty_like(y_pred), np.empty(batch_size, np.float32)
    pairs = {"mse": ("mse", ops_mse),
             "crossentropy": (fastcnn.losses.CategoricalCrossentropy(from_logits=True),
                              ops_crossentropy)}
    ratios = {}
    for name, pair in pairs.items():
        seconds = [[], []]
        for _ in range(rounds):
            for k, identifier in enumerate(pair):
                fn = fastcnn.losses.get(identifier)
                targets = fn.check_targets(y_true, y_pred.shape[1:])
                fn.forward_backward(y_pred, targets, False, grad, loss)  # traced once
                start = time.perf_counter()
                for _ in range(calls):
                    fn.forward_backward(y_pred, targets, False, grad, loss)
                seconds[k].append((time.perf_counter() - start) / calls)
        ratios[f"{name} loss call ops/builtin"] = (statistics.median(seconds[1])
                                                   / statistics.median(seconds[0]))
    return ratios


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--samples", type=int, default=8192)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    if a.threads:
        fastcnn.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(a.samples, 784)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, a.samples)]
    times = {v: [] for v in VARIANTS}
    cpu = {v: [] for v in VARIANTS}  # CPU seconds of all threads: steadier on a busy machine
    for r in range(a.rounds):
        order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
        for variant in order:
            wall, used = epoch_time(variant, x, y, a.epochs, a.batch_size)
            times[variant].append(wall)
            cpu[variant].append(used)
        print(f"round {r + 1}: " + ", ".join(f"{v} {times[v][-1]:.3f}s" for v in VARIANTS),
              flush=True)
    median = {v: statistics.median(t) for v, t in times.items()}
    median_cpu = {v: statistics.median(t) for v, t in cpu.items()}
    ratios = {}
    for what, m in (("", median), (" (cpu)", median_cpu)):
        ratios.update({f"linear/dense{what}": m["linear"] / m["dense"],
                       f"ops_loss/builtin_loss{what}": m["ops_loss"] / m["builtin_loss"],
                       f"ops_crossentropy/dense{what}": m["ops_crossentropy"] / m["dense"]})
    ratios.update(loss_call_ratios(a.batch_size, a.rounds))
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.3f}")
    print(json.dumps({"epoch_s": median, "epoch_cpu_s": median_cpu, "ratios": ratios}))


if __name__ == "__main__":
    main()
