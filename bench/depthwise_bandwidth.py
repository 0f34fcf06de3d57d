"""Depthwise convolution against memory bandwidth: GB/s of the forward kernel on the depthwise
layers of the small MobileNetV2 (../shared/anchors/keras_zoo.py), beside the machine's copy
bandwidth, at 1 and 2 threads.

    python bench/depthwise_bandwidth.py [--repeats 15] [--batch 128] [--torch]

A depthwise 3x3 layer does 18 FLOPs per output value, too few to hide its memory traffic, so the
measure is bandwidth: the bytes of x read and y written per second (the 3x3 weights stay in L1).
The reference is np.copyto of a 256 MiB array, counted the same way (bytes read + bytes written),
on one thread and on two threads each copying half. The backward passes are timed too, counted as
dy read + dx written (dX) and x + dy read (dW).

The host is shared: each measurement alternates 1 and 2 threads and is repeated; the figures are
medians, and the load average before and after is printed beside them. On one thread the bytes
per second of the calling thread's CPU time (time.thread_time) are printed too ("cpu GB/s"):
they leave out the time the thread waited for a core, which wall time on a busy host does not.
"""
import argparse
import os
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fastcnn._ext import depthwise as _depthwise  # noqa: E402
from fastcnn._ops import depthwise  # noqa: E402

# (h, w, c, stride): the depthwise layers of keras_zoo.py's mobilenetv2 (32x32x3 input), all 3x3
# "same" without bias, and 16x16x144 at stride 1, a MobileNetV2 layer at ImageNet's scale / 7.
SHAPES = [(32, 32, 32, 1), (32, 32, 96, 1), (32, 32, 144, 1), (32, 32, 144, 2),
          (16, 16, 192, 1), (16, 16, 192, 2), (8, 8, 384, 1), (16, 16, 144, 1), (32, 32, 96, 2)]
COPY_BYTES = 256 << 20


def median_time(run, repeats, clock=time.perf_counter):
    times = []
    for _ in range(repeats):
        t = clock()
        run()
        times.append(clock() - t)
    return float(np.median(times))


def copy_bandwidth(threads, repeats, clock=time.perf_counter):
    """GB/s of np.copyto on ``threads`` Python threads, each copying its share (numpy releases
    the GIL for the copy)."""
    src = np.ones(COPY_BYTES // 4, np.float32)
    dst = np.zeros_like(src)
    parts = np.array_split(np.arange(src.size), threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]

    def run():
        if threads == 1:
            np.copyto(dst, src)
            return
        workers = [threading.Thread(target=np.copyto, args=(dst[a:b], src[a:b]))
                   for a, b in bounds]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    run()
    return 2 * src.nbytes / median_time(run, repeats, clock) / 1e9


def load_average():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines()
                 if line.startswith("Model name")), "unknown")


def torch_forward(x, kernel, stride, threads):
    """PyTorch's channels_last depthwise forward of the same layer, for context."""
    import torch
    torch.set_num_threads(threads)
    c = x.shape[3]
    tx = torch.from_numpy(x).permute(0, 3, 1, 2)  # a channels_last view, no copy
    weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 3, 0, 1)))
    weight = weight.reshape(c, 1, 3, 3).contiguous(memory_format=torch.channels_last)
    pad = 1 if stride == 1 else 0
    if stride == 2:  # TensorFlow's "same" at stride 2 on an even size pads after only
        tx = torch.nn.functional.pad(tx, (0, 1, 0, 1)).contiguous(
            memory_format=torch.channels_last)

    def run():
        with torch.no_grad():
            torch.nn.functional.conv2d(tx, weight, None, stride, pad, 1, c)
    return run


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--torch", action="store_true", help="also time PyTorch's forward")
    a = p.parse_args()
    print(f"cpu: {cpu_model()}; simd path: {_depthwise.simd_path()}; "
          f"load average before: {load_average()}")
    copy = {t: copy_bandwidth(t, a.repeats) for t in (1, 2)}
    copy_cpu = copy_bandwidth(1, a.repeats, time.thread_time)
    print(f"np.copyto of {COPY_BYTES >> 20} MiB: {copy[1]:.1f} GB/s on 1 thread "
          f"({copy_cpu:.1f} per CPU second), {copy[2]:.1f} GB/s on 2")
    header = ("layer (batch %d)          threads  fwd GB/s  %%copy  fwd ms  dX GB/s  dW GB/s"
              "  cpu GB/s  %%copy" % a.batch)
    if a.torch:
        header += "  torch fwd GB/s"
    print(header)
    rng = np.random.default_rng(0)
    for h, w, c, stride in SHAPES:
        x = rng.standard_normal((a.batch, h, w, c)).astype(np.float32)
        kernel = rng.standard_normal((3, 3, c, 1)).astype(np.float32)
        geometry = dict(strides=(stride, stride), padding="same")
        y = depthwise.depthwise_forward(x, kernel, None, **geometry)
        dx, dy = np.empty_like(x), rng.standard_normal(y.shape).astype(np.float32)
        dw = np.empty_like(kernel)
        partial = np.empty(depthwise.depthwise_partial_shape(y.shape, kernel.shape), np.float32)
        moved = x.nbytes + y.nbytes
        for threads in (1, 2):
            runs = {
                "fwd": lambda: depthwise.depthwise_forward(x, kernel, None, **geometry, out=y,
                                                           n_threads=threads),
                "dx": lambda: depthwise.depthwise_backward_input(dy, kernel, x.shape, **geometry,
                                                                 out=dx, n_threads=threads),
                "dw": lambda: depthwise.depthwise_backward_weight(
                    x, dy, kernel.shape, **geometry, dw=dw, partial=partial, n_threads=threads),
            }
            if a.torch:
                runs["torch"] = torch_forward(x, kernel, stride, threads)
            for run in runs.values():
                run()  # warm up
            seconds = {name: median_time(run, a.repeats) for name, run in runs.items()}
            fwd = moved / seconds["fwd"] / 1e9
            line = (f"{h}x{w}x{c} stride {stride}".ljust(26) + f"{threads:>7}  {fwd:8.1f}  "
                    f"{100 * fwd / copy[threads]:4.0f}%  {seconds['fwd'] * 1e3:6.2f}  "
                    f"{moved / seconds['dx'] / 1e9:7.1f}  "
                    f"{(x.nbytes + dy.nbytes) / seconds['dw'] / 1e9:7.1f}")
            if threads == 1:
                cpu = moved / median_time(runs["fwd"], a.repeats, time.thread_time) / 1e9
                line += f"  {cpu:8.1f}  {100 * cpu / copy_cpu:4.0f}%"
            else:
                line += " " * 16
            if a.torch:
                line += f"  {moved / seconds['torch'] / 1e9:14.1f}"
            print(line, flush=True)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
