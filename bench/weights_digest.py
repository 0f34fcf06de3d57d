"""Seeded training of a bench/workloads.py net, then the SHA-256 of its weights: one JSON line.

    FASTCNN_DATA=../shared/datasets python bench/weights_digest.py --workload mnist --epochs 2

Two builds that train bitwise alike print the same digest; run it with each build's fastcnn first
on the path (PYTHONPATH=path/to/other/checkout) to check that a restructuring changed no result.
"""
import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workload", choices=["mnist", "vgg"], default="mnist")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train", type=int, default=None, help="first N training images only")
    p.add_argument("--graph", action="store_true",
                   help="train a functional Model of the same layers, from the Sequential's "
                        "initial weights and seed: the digest must be the Sequential's")
    a = p.parse_args()
    import fastcnn
    fastcnn.set_num_threads(a.threads)
    fastcnn.utils.set_random_seed(0)
    x, y, _, _ = workloads.mnist_data() if a.workload == "mnist" else workloads.vgg_data()
    x, y = x[:a.train], y[:a.train]
    model = workloads.keras_style_model(fastcnn, fastcnn.layers, a.workload)
    if a.graph:
        graph = workloads.keras_style_model(fastcnn, fastcnn.layers, a.workload, graph=True)
        graph.set_weights(model.get_weights())
        graph.seed = model.seed
        model = graph
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=128 if a.workload == "mnist" else 64, epochs=a.epochs,
                        verbose=0)
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(w.tobytes())
    print(json.dumps({"workload": a.workload, "graph": a.graph, "epochs": a.epochs,
                      "threads": a.threads,
                      "fastcnn": os.path.dirname(fastcnn.__file__),
                      "loss": [float(v) for v in history.history["loss"]],
                      "sha256": digest.hexdigest()}))


if __name__ == "__main__":
    main()
