"""LeNet-5 on Fashion-MNIST, with pictures of what it learned.

    python examples/fashion_mnist_lenet5.py

Writes the learning curves, the first layer's filters and its feature maps for one test image
(PNG files beside the script's working directory; they need matplotlib,
``pip install "fastcnn[plot]"``).
"""
import fastcnn
from fastcnn import applications
from fastcnn.extras import plot

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
          "Bag", "Ankle boot"]

fastcnn.utils.set_random_seed(1)
(x_train, y_train), (x_test, y_test) = fastcnn.datasets.fashion_mnist.load_data()
x_train = (x_train.astype("float32") / 255)[..., None]
x_test = (x_test.astype("float32") / 255)[..., None]
y_train = fastcnn.utils.to_categorical(y_train, 10)
y_test = fastcnn.utils.to_categorical(y_test, 10)

# Conv 6@5x5 (same) -> pool -> Conv 16@5x5 -> pool -> Dense 120 -> 84 -> 10 softmax
model = applications.lenet5(input_shape=(28, 28, 1), classes=10)
model.summary()
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
history = model.fit(
    x_train, y_train, batch_size=64, epochs=15, validation_split=0.1,
    callbacks=[fastcnn.callbacks.EarlyStopping(monitor="val_loss", patience=3,
                                               restore_best_weights=True)])

loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"Test accuracy: {accuracy:.4f}")
predicted = model.predict(x_test[:5], verbose=0).argmax(axis=1)
print("First test images:", [LABELS[i] for i in predicted])

try:
    plot.history(history, "fashion_mnist_curves.png")
    plot.filters(model.layers[0], "fashion_mnist_filters.png")
    plot.feature_maps(model, x_test[0], model.layers[0], "fashion_mnist_maps.png")
    print("Wrote fashion_mnist_curves.png, fashion_mnist_filters.png, fashion_mnist_maps.png")
except ImportError as err:
    print(err)
