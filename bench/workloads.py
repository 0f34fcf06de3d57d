"""The benchmark workloads, in fastcnn, Keras/TF or PyTorch; prints one JSON line.

    python bench/workloads.py --framework fastcnn --workload mnist --epochs 3 --threads 2

    python bench/workloads.py --workload mnist --graph   # the same net as a functional Model

mnist: the Keras MNIST convnet on real MNIST ($FASTCNN_DATA), batch 128, as ../shared/anchors.
vgg:   a CIFAR-10-shaped VGG-style net on synthetic data, "same" padding, ReLU, batch 64:
       Conv32 Conv32 Pool Conv64 Conv64 Pool Conv128 Pool Flatten Dense10-softmax.
resnet20: ResNet-20 for CIFAR-10 on the same synthetic data, batch 128, SGD(0.1, momentum 0.9):
       the functional net of ../shared/anchors/keras_zoo.py (Conv2D, BatchNormalization, ReLU,
       Add, 1x1 projection shortcuts, GlobalAveragePooling2D, Dense10-softmax), fastcnn and
       Keras only; PyTorch runs the anchors' torch_zoo.py (bench/compare.py does).
The reported epoch time is the median of the epochs after the first (which warms up).
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np

VGG_TRAIN, VGG_TEST = 10_000, 2_000


def mnist_data():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "shared", "anchors"))
    import mnist_data as anchor_data  # reads $FASTCNN_DATA/mnist, like the anchors
    (x, y), (xt, yt) = anchor_data.load()
    x, xt = x.astype("float32")[..., None], xt.astype("float32")[..., None]
    x /= 255  # in place, so no framework's peak RSS counts a second copy of the data
    xt /= 255
    return x, y.astype(np.int64), xt, yt.astype(np.int64)


def vgg_data():
    rng = np.random.default_rng(0)
    x = rng.random((VGG_TRAIN + VGG_TEST, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, VGG_TRAIN + VGG_TEST)
    return x[:VGG_TRAIN], y[:VGG_TRAIN], x[VGG_TRAIN:], y[VGG_TRAIN:]


def resnet20(keras, layers):
    """ResNet-20 as keras_zoo.py builds it."""
    def conv_bn(x, filters, kernel=3, strides=1, activation="relu"):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                          kernel_initializer="he_normal")(x)
        x = layers.BatchNormalization()(x)
        return layers.Activation(activation)(x) if activation else x

    inputs = keras.Input(shape=(32, 32, 3))
    x = conv_bn(inputs, 16)
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            y = conv_bn(x, filters, strides=strides)
            y = conv_bn(y, filters, activation=None)
            if strides != 1:
                x = conv_bn(x, filters, kernel=1, strides=strides, activation=None)
            x = layers.Activation("relu")(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="resnet20")


def keras_style_model(keras, layers, workload, graph=False):
    """The same architecture through the Keras API, which fastcnn and Keras share: a
    Sequential, or with ``graph`` the functional Model of the same layers (ResNet-20 is always
    functional)."""
    if workload == "resnet20":
        return resnet20(keras, layers)
    if workload == "mnist":
        stack = [keras.Input(shape=(28, 28, 1)),
                 layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
                 layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
                 layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax")]
    else:
        conv = lambda f: layers.Conv2D(f, (3, 3), padding="same", activation="relu")
        stack = [keras.Input(shape=(32, 32, 3)), conv(32), conv(32), layers.MaxPooling2D((2, 2)),
                 conv(64), conv(64), layers.MaxPooling2D((2, 2)), conv(128),
                 layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dense(10, activation="softmax")]
    if not graph:
        return keras.Sequential(stack)
    x = stack[0]
    for layer in stack[1:]:
        x = layer(x)
    return keras.Model(stack[0], x)


def run_keras_api(keras, layers, workload, data, epochs, batch, graph=False):
    x, y, xt, yt = data
    model = keras_style_model(keras, layers, workload, graph)
    optimizer = (keras.optimizers.SGD(0.1, momentum=0.9) if workload == "resnet20" else "adam")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    model.predict(xt[:1000], batch_size=1000, verbose=0)  # warm-up
    start = time.perf_counter()
    model.predict(xt, batch_size=1000, verbose=0)
    infer = time.perf_counter() - start
    acc = model.evaluate(xt, yt, batch_size=1000, verbose=0)[1]
    return times, infer, acc


def torch_net(workload):
    """The workload's net and its Adam optimizer (Keras's epsilon), in PyTorch, channels-last."""
    import torch
    from torch import nn
    if workload == "mnist":
        net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3),
                            nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(1600, 10))
    else:
        conv = lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.ReLU()]
        net = nn.Sequential(*conv(3, 32), *conv(32, 32), nn.MaxPool2d(2), *conv(32, 64), *conv(64, 64),
                            nn.MaxPool2d(2), *conv(64, 128), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(128 * 16, 10))
    net = net.to(memory_format=torch.channels_last)
    return net, torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)


def torch_images(x):
    """NHWC float32 images as a channels-last NCHW tensor."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).contiguous(
        memory_format=torch.channels_last)


def torch_step(net, opt, x, y):
    from torch import nn
    opt.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    opt.step()


def run_torch(workload, data, epochs, batch, threads):
    import torch
    torch.set_num_threads(threads)
    x, y, xt, yt = data
    net, opt = torch_net(workload)
    tx, ty, txt = torch_images(x), torch.from_numpy(y), torch_images(xt)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        net.train()
        order = torch.randperm(len(tx))
        for i in range(0, len(tx), batch):
            idx = order[i:i + batch]
            torch_step(net, opt, tx[idx], ty[idx])
        times.append(time.perf_counter() - start)
    net.eval()
    with torch.no_grad():
        start = time.perf_counter()
        logits = torch.cat([net(txt[i:i + 1000]) for i in range(0, len(txt), 1000)])
        infer = time.perf_counter() - start
    acc = float((logits.argmax(1).numpy() == yt).mean())
    return times, infer, acc


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--framework", choices=["fastcnn", "keras", "torch"], default="fastcnn")
    p.add_argument("--workload", choices=["mnist", "vgg", "resnet20"], default="mnist")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--graph", action="store_true", help="a functional Model, not a Sequential")
    a = p.parse_args()
    if a.workload == "resnet20" and a.framework == "torch":
        p.error("PyTorch's ResNet-20 is the anchors' torch_zoo.py: run that, or bench/compare.py")
    batch = 64 if a.workload == "vgg" else 128
    data = mnist_data() if a.workload == "mnist" else vgg_data()
    if a.framework == "fastcnn":
        import fastcnn
        fastcnn.set_num_threads(a.threads)
        fastcnn.utils.set_random_seed(0)
        times, infer, acc = run_keras_api(fastcnn, fastcnn.layers, a.workload, data, a.epochs, batch,
                                          a.graph)
    elif a.framework == "keras":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(a.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras
        keras.utils.set_random_seed(0)
        times, infer, acc = run_keras_api(keras, keras.layers, a.workload, data, a.epochs, batch,
                                          a.graph)
    else:
        times, infer, acc = run_torch(a.workload, data, a.epochs, batch, a.threads)
    timed = sorted(times[1:] or times)
    epoch = timed[len(timed) // 2]
    n_train, n_test = len(data[0]), len(data[2])
    print(json.dumps({"framework": a.framework, "workload": a.workload, "graph": a.graph,
                      "threads": a.threads,
                      "epoch_s": round(epoch, 3), "train_img_s": round(n_train / epoch),
                      "infer_img_s": round(n_test / infer), "test_acc": round(float(acc), 4),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))


if __name__ == "__main__":
    main()
