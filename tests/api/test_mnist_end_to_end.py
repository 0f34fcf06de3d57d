"""The convnet on real MNIST, exactly as DESIGN.md writes it, for one epoch: >= 97% test accuracy."""
import time

import numpy as np

from conftest import data_dir


def test_design_example_trains_mnist_to_97_percent(capsys):
    data_dir()
    import fastcnn as keras                       # the same names as keras where they exist
    from fastcnn import layers
    keras.utils.set_random_seed(0)
    (x, y), (xt, yt) = keras.datasets.mnist.load_data()
    x, xt = [(a.astype("float32") / 255)[..., None] for a in (x, xt)]
    y, yt = keras.utils.to_categorical(y, 10), keras.utils.to_categorical(yt, 10)
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.summary()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=128, epochs=1, validation_split=0.1)
    elapsed = time.perf_counter() - start
    loss, acc = model.evaluate(xt, yt, verbose=0)
    with capsys.disabled():
        print(f"\n1 MNIST epoch in {elapsed:.1f} s; test accuracy {acc:.4f}, loss {loss:.4f}")
    assert history.history["val_accuracy"][0] > 0.97
    assert acc >= 0.97
    probs = model.predict(xt[:100], verbose=0)
    assert np.mean(probs.argmax(1) == yt[:100].argmax(1)) > 0.9
