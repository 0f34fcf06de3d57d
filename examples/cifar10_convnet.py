"""A VGG-style convnet on CIFAR-10: two blocks of two 3x3 convolutions with batch
normalization, random horizontal flips for augmentation, dropout, and a learning rate halved
whenever the validation loss stalls.

    python examples/cifar10_convnet.py
"""
import fastcnn as keras
from fastcnn import layers

keras.utils.set_random_seed(1)
(x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
# Images come channels-last, (N, 32, 32, 3) uint8; labels as (N, 1).
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
y_train = keras.utils.to_categorical(y_train, 10)
y_test = keras.utils.to_categorical(y_test, 10)


def block(filters):
    return [
        layers.Conv2D(filters, kernel_size=(3, 3), padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.Conv2D(filters, kernel_size=(3, 3), padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Dropout(0.25),
    ]


model = keras.Sequential([
    keras.Input(shape=(32, 32, 3)),
    layers.RandomFlip("horizontal"),  # active in training only
    *block(32),
    *block(64),
    layers.Flatten(),
    layers.Dense(256, activation="relu"),
    layers.Dropout(0.5),
    layers.Dense(10, activation="softmax"),
])
model.summary()
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=128, epochs=20, validation_split=0.1,
          callbacks=[keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                       patience=2)])

loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"Test loss: {loss:.4f}")
print(f"Test accuracy: {accuracy:.4f}")
model.save("cifar10_convnet.keras")
