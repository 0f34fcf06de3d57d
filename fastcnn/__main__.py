"""python -m fastcnn: train the Keras MNIST convnet and print its test accuracy."""
import argparse
import time


def mnist_convnet():
    from fastcnn import Input, Sequential, layers
    return Sequential([
        Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastcnn", description=__doc__)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None,
                        help="kernel threads (default: physical cores, or OMP_NUM_THREADS)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    import fastcnn
    if args.threads is not None:
        fastcnn.set_num_threads(args.threads)
    if args.seed is not None:
        fastcnn.utils.set_random_seed(args.seed)
    fastcnn.show_config()
    (x, y), (xt, yt) = fastcnn.datasets.mnist.load_data()
    x, xt = [(a.astype("float32") / 255)[..., None] for a in (x, xt)]
    y, yt = fastcnn.utils.to_categorical(y, 10), fastcnn.utils.to_categorical(yt, 10)

    model = mnist_convnet()
    model.summary()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_split=0.1)
    elapsed = time.perf_counter() - start
    loss, accuracy = model.evaluate(xt, yt, verbose=0)
    print(f"Trained {args.epochs} epochs in {elapsed:.1f} s ({elapsed / args.epochs:.2f} s/epoch)")
    print(f"Test loss: {loss:.4f}")
    print(f"Test accuracy: {accuracy:.4f}")


if __name__ == "__main__":
    main()
