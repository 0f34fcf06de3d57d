"""python -m fastcnn: train a model on a dataset and print its test accuracy.

With no options it trains Keras's MNIST convnet for 15 epochs with Adam, as Keras's example does.
With --distributed, started as ``mpiexec -n N python -m fastcnn --distributed``, the N processes
train it data-parallel (fastcnn.distributed): each takes its share of every batch of
--batch-size samples, and rank 0 alone reports and saves.
"""
import argparse
import os
import time

import fastcnn
from fastcnn import applications, optimizers
from fastcnn._ops.threads import max_threads
from fastcnn.extras import plot

DATASETS = ("mnist", "fashion_mnist", "cifar10")


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, received {text}")
    return value


def _thread_count(text):
    value, bound = int(text), max_threads()
    if value == 0 or abs(value) > bound:
        raise argparse.ArgumentTypeError(f"expected a non-zero int in [-{bound}, {bound}] "
                                         f"(n < 0: all cores but |n| - 1), received {text}")
    return value


def _non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, received {text}")
    return value


def _output_path(text):
    """A file path whose folder exists and is writable, checked before any training."""
    folder = os.path.dirname(os.path.abspath(text))
    if not text or os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"expected a file path, received the folder {text}")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"expected a path in an existing folder, received {text} "
                                         f"({folder} does not exist)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"expected a path in a writable folder, received {text} "
                                         f"({folder} is not writable)")
    return text


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastcnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS, default="mnist", help="default: mnist")
    parser.add_argument("--model", choices=sorted(applications.MODELS), default="convnet",
                        help="convnet: Keras's MNIST convnet; lenet5: LeNet-5; mlp: the "
                             "784-16-16-10 sigmoid network (default: convnet)")
    parser.add_argument("--epochs", type=_positive, default=15, help="default: 15")
    parser.add_argument("--batch-size", type=_positive, default=128, help="default: 128")
    parser.add_argument("--optimizer", choices=sorted(optimizers.OPTIMIZERS), default="adam",
                        help="default: adam")
    parser.add_argument("--learning-rate", type=_positive_float, default=None,
                        help="default: the optimizer's own (Keras's defaults)")
    parser.add_argument("--threads", type=_thread_count, default=None,
                        help="kernel threads (default: physical cores, or OMP_NUM_THREADS)")
    parser.add_argument("--seed", type=_non_negative, default=None,
                        help="seeds weights, shuffling and dropout, for a repeatable run")
    parser.add_argument("--save", metavar="PATH", type=_output_path,
                        help="save the trained model (model.save)")
    parser.add_argument("--plot", metavar="PATH", type=_output_path,
                        help="draw the learning curves to PATH (needs matplotlib)")
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel over MPI: start under mpiexec -n N (needs "
                             "pip install fastcnn[mpi]); --batch-size is the global batch, and "
                             "each process runs cores / processes per host threads unless "
                             "--threads or OMP_NUM_THREADS says otherwise")
    # For the tests: train and test on the first N samples of each split only.
    parser.add_argument("--limit", type=_positive, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def load(dataset, limit=None):
    """((x, y), (x_test, y_test)): float32 images in [0, 1] with a channel axis, one-hot labels."""
    splits = getattr(fastcnn.datasets, dataset).load_data()
    prepared = []
    for x, y in splits:
        x, y = x[:limit], y[:limit]
        x = x.astype("float32")
        x /= 255  # in place: a second float32 copy of the training set would double peak memory
        if x.ndim == 3:
            x = x[..., None]
        prepared.append((x, fastcnn.utils.to_categorical(y, 10)))
    return tuple(prepared)


def _distributed(args):
    """fastcnn.distributed, joined, with this process's thread count set: (module, whether this
    process reports)."""
    from fastcnn import distributed
    distributed.init()
    if args.threads is None and "OMP_NUM_THREADS" not in os.environ:
        fastcnn.set_num_threads(max(1, max_threads() // distributed.local_size()))
    return distributed, distributed.rank() == 0


def main(argv=None):
    args = parse_args(argv)
    if args.threads is not None:
        fastcnn.set_num_threads(args.threads)
    dist, reports = _distributed(args) if args.distributed else (None, True)
    if args.seed is not None:
        fastcnn.utils.set_random_seed(args.seed)
    if reports:
        fastcnn.show_config()
    (x, y), (xt, yt) = load(args.dataset, args.limit)

    model = applications.MODELS[args.model](input_shape=x.shape[1:], classes=10)
    if reports:
        model.summary()
    optimizer = optimizers.OPTIMIZERS[args.optimizer]
    optimizer = optimizer() if args.learning_rate is None else optimizer(args.learning_rate)
    callbacks = []
    if dist:
        optimizer = dist.DistributedOptimizer(optimizer)
        callbacks = [dist.BroadcastGlobalVariablesCallback(0), dist.MetricAverageCallback()]
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
                        validation_split=0.1, callbacks=callbacks, verbose=1 if reports else 0)
    elapsed = time.perf_counter() - start
    if not reports:
        return
    loss, accuracy = model.evaluate(xt, yt, verbose=0)
    where = f" on {dist.size()} processes" if dist else ""
    print(f"Trained {args.model} on {args.dataset}{where} for {args.epochs} epochs in "
          f"{elapsed:.1f} s ({elapsed / args.epochs:.2f} s/epoch)")
    print(f"Test loss: {loss:.4f}")
    print(f"Test accuracy: {accuracy:.4f}")
    if args.save:
        model.save(args.save)
        print(f"Saved the model to {args.save}")
    if args.plot:
        plot.history(history, args.plot)
        print(f"Drew the learning curves to {args.plot}")


if __name__ == "__main__":
    main()
