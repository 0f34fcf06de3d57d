"""Image folders: decode-and-resize speed of utils.image_dataset_from_directory against Keras/TF's,
and the VGG workload (bench/workloads.py) trained from a folder of 32x32 JPEGs against the same
images held in memory. Prints one JSON line per measurement.

    python bench/image_folder.py --keras-python /work/anchors-venv/bin/python

The folders (10 classes of JPEGs, quality 90, smooth random pictures so that they compress like
photographs) are written once under --root and reused. Decoding is timed over whole passes
after a warm-up pass (the files then sit in the page cache for both frameworks); Keras runs the
same folder in a subprocess of --keras-python with the same thread count. Each decoding row
gives the wall rate, the CPU time per image of all the process's threads (what decoding takes
from training when the cores are busy) and the load average when it began, as the rate depends
on what else the machine runs. The VGG epochs are timed as in bench/workloads.py: the median of
the epochs after the first.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = 10


def make_folder(root, n, size, seed=0):
    """``n`` JPEGs of ``size`` x ``size`` in CLASSES class folders under ``root`` (kept when a
    previous run finished writing them)."""
    from PIL import Image
    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return root
    rng = np.random.default_rng(seed)
    coarse = max(size // 8, 2)
    for i in range(n):
        folder = os.path.join(root, f"class_{i % CLASSES}")
        os.makedirs(folder, exist_ok=True)
        small = rng.integers(0, 256, (coarse, coarse, 3), dtype=np.uint8)
        picture = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
        picture.save(os.path.join(folder, f"{i:06d}.jpg"), quality=90)
    open(done, "w").close()
    return root


def _timed_passes(batches_of, passes):
    """{images_s, cpu_us_per_image} over ``passes`` whole passes after a warm-up pass."""
    batches_of()
    start, cpu = time.perf_counter(), time.process_time()
    count = sum(batches_of() for _ in range(passes))
    return {"images_s": round(count / (time.perf_counter() - start)),
            "cpu_us_per_image": round((time.process_time() - cpu) / count * 1e6, 1)}


def fastcnn_decode_rate(folder, image_size, threads, passes):
    import fastcnn
    fastcnn.set_num_threads(threads)
    ds = fastcnn.utils.image_dataset_from_directory(folder, image_size=image_size, batch_size=64,
                                                    seed=0, verbose=False)
    return _timed_passes(lambda: sum(len(y) for _, y in ds), passes)


def keras_decode_rate(folder, image_size, threads, passes):
    """Run in the Keras interpreter (--keras-worker)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras
    ds = keras.utils.image_dataset_from_directory(folder, image_size=image_size, batch_size=64,
                                                  seed=0, verbose=False)
    return _timed_passes(lambda: sum(int(y.shape[0]) for _, y in ds), passes)


def keras_in_subprocess(python, folder, image_size, threads, passes):
    command = [python, os.path.abspath(__file__), "--keras-worker", folder,
               str(image_size[0]), str(image_size[1]), "--threads", str(threads),
               "--passes", str(passes)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def vgg_from_folder_and_memory(folder, threads, epochs):
    """Epoch seconds of the VGG workload on the same images: from the folder, from the folder
    through .cache() (the first epoch decodes, the timed ones do not), and from memory."""
    sys.path.insert(0, HERE)
    import fastcnn
    from workloads import keras_style_model
    fastcnn.set_num_threads(threads)

    def model():
        fastcnn.utils.set_random_seed(0)
        net = keras_style_model(fastcnn, fastcnn.layers, "vgg")
        net.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                    metrics=["accuracy"])
        return net

    def median_epoch(fit_one_epoch):
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            fit_one_epoch()
            times.append(time.perf_counter() - start)
        timed = sorted(times[1:] or times)
        return timed[len(timed) // 2]

    ds = fastcnn.utils.image_dataset_from_directory(folder, image_size=(32, 32), batch_size=64,
                                                    seed=0, verbose=False)
    scaled = ds.map(lambda x, y: (x / np.float32(255), y))
    samples = ds.unbatch().batch(len(ds.file_paths))[0]
    x, y = samples[0] / np.float32(255), samples[1]
    from_memory = model()
    memory_s = median_epoch(lambda: from_memory.fit(x, y, batch_size=64, epochs=1, verbose=0))
    from_folder = model()
    folder_s = median_epoch(lambda: from_folder.fit(scaled, epochs=1, verbose=0))
    cached = scaled.cache()
    from_cache = model()
    cached_s = median_epoch(lambda: from_cache.fit(cached, epochs=1, verbose=0))
    return folder_s, cached_s, memory_s, len(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                  "fastcnn-image-folders"))
    p.add_argument("--n32", type=int, default=10_000, help="32x32 JPEGs (the VGG folder)")
    p.add_argument("--n224", type=int, default=2_000, help="224x224 JPEGs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--passes", type=int, default=2, help="timed decoding passes")
    p.add_argument("--epochs", type=int, default=3, help="VGG epochs (the first warms up)")
    p.add_argument("--keras-python", help="a Python with Keras 3 and TensorFlow")
    p.add_argument("--skip-vgg", action="store_true")
    p.add_argument("--keras-worker", nargs=3, metavar=("FOLDER", "HEIGHT", "WIDTH"),
                   help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.keras_worker:
        folder, height, width = a.keras_worker
        print(json.dumps(keras_decode_rate(folder, (int(height), int(width)), a.threads,
                                           a.passes)))
        return

    small = make_folder(os.path.join(a.root, f"jpeg32_{a.n32}"), a.n32, 32)
    large = make_folder(os.path.join(a.root, f"jpeg224_{a.n224}"), a.n224, 224)
    # 224 -> 224 decodes only; 224 -> 180 (the Keras tutorial's size) decodes and resizes.
    for folder, source, image_size in ((small, 32, (32, 32)), (large, 224, (224, 224)),
                                       (large, 224, (180, 180))):
        row = {"measure": "decode", "jpeg": source, "image_size": list(image_size),
               "threads": a.threads, "load_average": round(os.getloadavg()[0], 2),
               "fastcnn": fastcnn_decode_rate(folder, image_size, a.threads, a.passes)}
        if a.keras_python:
            row["keras"] = keras_in_subprocess(a.keras_python, folder, image_size, a.threads,
                                               a.passes)
        print(json.dumps(row), flush=True)
    if not a.skip_vgg:
        folder_s, cached_s, memory_s, n = vgg_from_folder_and_memory(small, a.threads,
                                                                      a.epochs)
        print(json.dumps({"measure": "vgg_fit", "images": n, "threads": a.threads,
                          "folder_epoch_s": round(folder_s, 3),
                          "cached_folder_epoch_s": round(cached_s, 3),
                          "memory_epoch_s": round(memory_s, 3),
                          "folder_over_memory": round(folder_s / memory_s, 3),
                          "cached_over_memory": round(cached_s / memory_s, 3)}), flush=True)


if __name__ == "__main__":
    main()
