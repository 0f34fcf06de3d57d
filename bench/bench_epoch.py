"""One training epoch of the MNIST convnet end to end (real MNIST from $FASTCNN_DATA), at 1 and
2 threads.  The check: after the timed epochs the model classifies the test set well.

    FASTCNN_DATA=../shared/datasets pytest bench/bench_epoch.py --benchmark-only
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads  # noqa: E402


@pytest.fixture(scope="module")
def mnist():
    if not os.environ.get("FASTCNN_DATA"):
        pytest.skip("FASTCNN_DATA not set")
    return workloads.mnist_data()


def test_mnist_convnet_epoch(benchmark, threads, mnist):
    import fastcnn
    x, y, xt, yt = mnist
    fastcnn.utils.set_random_seed(0)
    model = workloads.keras_style_model(fastcnn, fastcnn.layers, "mnist")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    benchmark.pedantic(model.fit, args=(x, y), kwargs={"batch_size": 128, "epochs": 1, "verbose": 0},
                       rounds=2, iterations=1, warmup_rounds=0)
    assert model.evaluate(xt, yt, batch_size=1000, verbose=0)[1] > 0.97
