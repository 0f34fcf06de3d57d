"""The tutorials' 784-16-16-10 sigmoid network on MNIST: about 95% test accuracy.

    python examples/mnist_mlp.py

So small a network needs a larger step early and a smaller one late: Adam starts at 0.005 and
the rate decays by 0.8 each epoch.
"""
import fastcnn
from fastcnn import layers, optimizers

fastcnn.utils.set_random_seed(1)
(x_train, y_train), (x_test, y_test) = fastcnn.datasets.mnist.load_data()
x_train = x_train.reshape(-1, 784).astype("float32") / 255
x_test = x_test.reshape(-1, 784).astype("float32") / 255
y_train = fastcnn.utils.to_categorical(y_train, 10)
y_test = fastcnn.utils.to_categorical(y_test, 10)

model = fastcnn.Sequential([
    fastcnn.Input(shape=(784,)),
    layers.Dense(16, activation="sigmoid"),
    layers.Dense(16, activation="sigmoid"),
    layers.Dense(10, activation="softmax"),
])
batch_size = 32
steps_per_epoch = -(-len(x_train) // batch_size)
schedule = optimizers.schedules.ExponentialDecay(0.005, decay_steps=steps_per_epoch, decay_rate=0.8)
model.compile(loss="categorical_crossentropy", optimizer=optimizers.Adam(schedule), metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=batch_size, epochs=20, verbose=2)
loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"Test loss: {loss:.4f}")
print(f"Test accuracy: {accuracy:.4f}")
