"""A training run for the distributed tests: started by them as ``[mpiexec -n N] python
worker.py MODE OUT [options]``. Rank 0 writes what the test checks under OUT."""
import argparse
import sys

import numpy as np

import fastcnn
from fastcnn import callbacks, layers, optimizers
from conftest import toy_data

SAMPLES, BATCH = 300, 128  # batches of 128, 128 and 44: a last batch smaller than the others


def make_model(seed):
    fastcnn.utils.set_random_seed(seed)
    return fastcnn.Sequential([
        fastcnn.Input(shape=(8, 8, 1)),
        layers.Conv2D(4, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(16, activation="relu"),  # the general dense kernels (narrow: <= 14 outputs)
        layers.Dropout(0.25),
        layers.Dense(3, activation="softmax"),
    ])


class Batches(fastcnn.utils.PyDataset):
    """(x, y, sample_weight) in batches of BATCH, in order: the same global batches on every
    process."""

    def __init__(self, x, y, weights):
        super().__init__()
        self.x, self.y, self.weights = x, y, weights

    def __len__(self):
        return -(-len(self.x) // BATCH)

    def __getitem__(self, i):
        rows = slice(i * BATCH, (i + 1) * BATCH)
        return self.x[rows], self.y[rows], self.weights[rows]


def fit(model, x, y, args, **kwargs):
    """model.fit on the data that ``--data`` names; with a PyDataset, sample weights too."""
    if args.data == "pydataset":
        weights = 1 + np.arange(len(x), dtype=np.float32) % 3
        return model.fit(Batches(x, y, weights), epochs=args.epochs, shuffle=False, **kwargs)
    return model.fit(x, y, batch_size=BATCH, epochs=args.epochs, **kwargs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["single", "distributed", "fail", "metrics"])
    parser.add_argument("out")
    parser.add_argument("--plain", action="store_true", help="deterministic=False")
    parser.add_argument("--seed-by-rank", action="store_true")
    parser.add_argument("--fail-step", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data", choices=["arrays", "pydataset"], default="arrays")
    parser.add_argument("--backup", help="a BackupAndRestore folder per rank under this one")
    args = parser.parse_args()
    x, y = toy_data(SAMPLES)
    if args.mode == "single":
        model = make_model(1)
        model.compile(optimizer=optimizers.Adam(0.01), loss="categorical_crossentropy",
                      metrics=["accuracy"])
        history = fit(model, x, y, args, verbose=0)
        np.savez(args.out, *model.get_weights())
        np.savez(args.out + ".history.npz", **{k: np.array(v) for k, v in history.history.items()})
        return

    from fastcnn import distributed as dist
    dist.init()
    rank = dist.rank()
    model = make_model(1 + rank if args.seed_by_rank else 1)
    optimizer = dist.DistributedOptimizer(optimizers.Adam(0.01), deterministic=not args.plain)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    extra = []
    if args.mode == "fail":  # rank 1 raises in the second epoch, after one checkpoint
        epoch_now = [0]

        def fail(batch, logs):
            if rank == 1 and epoch_now[0] == 1 and batch == args.fail_step:
                raise RuntimeError(f"planned failure at step {batch}")
        extra.append(callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: epoch_now.__setitem__(0, epoch),
            on_train_batch_end=fail))
    if args.mode == "metrics":
        # Each rank's logs replaced by known values: the average is then known too.
        def known(epoch, logs):
            logs.update(loss=float(rank + 1), accuracy=float(10 * rank))
        extra.append(callbacks.LambdaCallback(on_epoch_end=known))
    cbs = [dist.BroadcastGlobalVariablesCallback(0), *extra, dist.MetricAverageCallback()]
    if args.backup:
        cbs.append(callbacks.BackupAndRestore(f"{args.backup}/rank{rank}"))
    if rank == 0:
        cbs.append(callbacks.ModelCheckpoint(args.out + ".ckpt.weights.h5",
                                             save_weights_only=True))
    history = fit(model, x, y, args, callbacks=cbs, verbose=2 if rank == 0 else 0)
    np.savez(f"{args.out}.rank{rank}.npz", *model.get_weights())
    if rank == 0:
        np.savez(args.out, *model.get_weights())
        np.savez(args.out + ".history.npz", **{k: np.array(v) for k, v in history.history.items()})
    sys.stdout.flush()


if __name__ == "__main__":
    main()
