"""A fit of a small conv net with batch normalisation, for the synchronized batch normalisation
tests: started by them as ``[mpiexec -n N] python syncbn_worker.py MODE OUT [options]``. Each
rank writes its weights (moving statistics included) to OUT.rankR.npz."""
import argparse

import numpy as np

import fastcnn
from fastcnn import layers, optimizers
from conftest import toy_data

SAMPLES, BATCH = 300, 128  # batches of 128, 128 and 44: on 4 ranks the last leaves two empty


def make_model(synchronized):
    fastcnn.utils.set_random_seed(1)
    return fastcnn.Sequential([
        fastcnn.Input(shape=(8, 8, 1)),
        layers.Conv2D(4, 3),
        layers.BatchNormalization(synchronized=synchronized),  # fused with the relu after it
        layers.Activation("relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(16),
        layers.BatchNormalization(synchronized=synchronized, momentum=0.9),  # on (batch, 16)
        layers.Dense(3, activation="softmax"),
    ])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["single", "distributed"])
    parser.add_argument("out")
    parser.add_argument("--unsynchronized", action="store_true")
    parser.add_argument("--plain", action="store_true", help="deterministic=False")
    args = parser.parse_args()
    x, y = toy_data(SAMPLES)
    model = make_model(not args.unsynchronized)
    optimizer = optimizers.Adam(0.01)
    rank = 0
    if args.mode == "distributed":
        from fastcnn import distributed as dist
        dist.init()
        rank = dist.rank()
        optimizer = dist.DistributedOptimizer(optimizer, deterministic=not args.plain)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    np.savez(f"{args.out}.rank{rank}.npz", *model.get_weights())


if __name__ == "__main__":
    main()
