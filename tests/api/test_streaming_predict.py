"""predict on a np.memmap of a million uint8 28x28 images converts one batch at a time: the
process's anonymous memory (RssAnon; the memmap's pages are file-backed) grows by no more than
the batch buffers, predict's outputs and 100 MB. Measured in a child process, whose memory
nothing else has touched."""
import json
import os
import subprocess
import sys

N, BATCH = 10**6, 1024
SLACK = 100 * 2**20


def _rss_anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def _child(path):
    import numpy as np

    import fastcnn
    x = np.memmap(path, np.uint8, "w+", shape=(N, 28, 28))
    x[::997] = 7  # a few pages written: the rest of the file stays a hole
    x.flush()
    x = np.memmap(path, np.uint8, "r", shape=(N, 28, 28))
    model = fastcnn.Sequential([fastcnn.Input((28, 28)), fastcnn.layers.Flatten(),
                                fastcnn.layers.Dense(10, activation="softmax")])
    model.predict(x[:BATCH], batch_size=BATCH, verbose=0)  # the plan and its buffers, once
    base = _rss_anon()
    peak = [base]

    class Watch(fastcnn.callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            peak.append(_rss_anon())

    out = model.predict(x, batch_size=BATCH, verbose=0, callbacks=[Watch()])
    peak.append(_rss_anon())
    assert out.shape == (N, 10)
    print(json.dumps({"base": base, "peak": max(peak), "outputs": out.nbytes}))


def test_predict_on_a_memmap_holds_only_batches_and_outputs(tmp_path):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(here))
    from conftest import child_env
    done = subprocess.run([sys.executable, __file__, str(tmp_path / "images.u8")],
                          check=False, capture_output=True, text=True, timeout=600, env=child_env(here))
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    buffers = 3 * BATCH * 28 * 28 * 4  # the ring of float32 batches
    grown = got["peak"] - got["base"]
    assert grown <= got["outputs"] + buffers + SLACK, got
    assert grown >= got["outputs"] // 2, got  # the measure sees the outputs, at least


if __name__ == "__main__":
    _child(sys.argv[1])
