"""Smoke test of an installed fastcnn: it imports from outside any source tree with its compiled
kernels, trains a small convnet until it has learnt a separable toy task, and predicts the same
for any thread count. Exits non-zero on any failure; run it from a folder without fastcnn/."""
import os
import sys

import numpy as np

import fastcnn as keras


def main():
    here = os.path.abspath(os.getcwd())
    package = os.path.dirname(os.path.abspath(keras.__file__))
    if os.path.commonpath([here, package]) == here:
        sys.exit(f"fastcnn was imported from {package}, inside the current folder: run this "
                 "from a folder without the source tree")
    keras.show_config()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    x = rng.standard_normal((600, 12, 12, 1)).astype(np.float32) * 0.3
    x[np.arange(600), labels * 4 + 2, labels * 4 + 2, 0] += 3  # a bright pixel per class
    y = keras.utils.to_categorical(labels, 3)
    model = keras.Sequential([
        keras.Input(shape=(12, 12, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    accuracy = history.history["accuracy"][-1]
    if accuracy < 0.95:
        sys.exit(f"Expected the toy task learnt (accuracy >= 0.95), received {accuracy:.3f}")
    keras.set_num_threads(1)
    one = model.predict(x, verbose=0)
    keras.set_num_threads(2)
    two = model.predict(x, verbose=0)
    if not np.array_equal(one, two):
        sys.exit("Expected the same predictions for 1 and 2 threads")
    print(f"fastcnn {keras.__version__} from {package}: trained to accuracy {accuracy:.3f}; "
          "predictions bitwise equal for 1 and 2 threads")


if __name__ == "__main__":
    main()
