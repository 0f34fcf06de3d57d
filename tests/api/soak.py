"""Soak test: train the MNIST convnet for many epochs and check that memory stays flat.

    FASTCNN_DATA=/path/to/datasets python tests/api/soak.py [--epochs 20] [--samples 6000]
    python tests/api/soak.py --synthetic --samples 512 --epochs 8      # no data needed

Each epoch also writes a checkpoint (ModelCheckpoint), so saving is soaked too. Prints the
resident set size (RSS) after every epoch and exits with status 1 when RSS after any epoch past
the second exceeds RSS after epoch 2 by more than --tolerance-mb: buffers are allocated in the
first epochs (training, then validation batches) and reused from then on.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

import fastcnn
from fastcnn import callbacks


def rss_bytes():
    """Current RSS from /proc (Linux); elsewhere the peak RSS, which still shows growth."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


class RSSMonitor(callbacks.Callback):
    """Records and prints RSS at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.rss = []
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.rss.append(rss_bytes())
        print(f"epoch {epoch + 1:3d}  RSS {self.rss[-1] / 2**20:8.2f} MiB  "
              f"loss {logs['loss']:.4f}  val_loss {logs['val_loss']:.4f}  "
              f"{time.perf_counter() - self._start:6.1f} s", flush=True)


def load_data(samples, synthetic):
    if synthetic:
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 10, samples)
        x = rng.random((samples, 28, 28, 1), dtype=np.float32)
    else:
        (x, labels), _ = fastcnn.datasets.mnist.load_data()
        x = (x[:samples].astype(np.float32) / 255)[..., None]
        labels = labels[:samples]
    return x, fastcnn.utils.to_categorical(labels, 10)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--tolerance-mb", type=float, default=2.0)
    parser.add_argument("--synthetic", action="store_true", help="random images instead of MNIST")
    args = parser.parse_args(argv)
    if args.epochs < 3:
        parser.error(f"Expected --epochs >= 3 to compare against epoch 2, received {args.epochs}")

    fastcnn.utils.set_random_seed(0)
    x, y = load_data(args.samples, args.synthetic)
    model = fastcnn.applications.convnet()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    print(f"{args.epochs} epochs on {len(x)} {'synthetic' if args.synthetic else 'MNIST'} images, "
          f"{fastcnn.get_num_threads()} threads; RSS before training {rss_bytes() / 2**20:.2f} MiB")
    monitor = RSSMonitor()
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = callbacks.ModelCheckpoint(os.path.join(directory, "soak-{epoch:03d}.keras"))
        model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_split=0.1,
                  verbose=0, callbacks=[monitor, checkpoint])
    growth = max(monitor.rss[2:]) - monitor.rss[1]
    flat = growth <= args.tolerance_mb * 2**20
    print(f"RSS growth after epoch 2: {growth / 2**20:+.2f} MiB (tolerance {args.tolerance_mb} MiB): "
          f"{'flat' if flat else 'GROWING'}")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
