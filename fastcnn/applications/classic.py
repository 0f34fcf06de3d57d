"""Small Sequential models for MNIST-sized images: the Keras MNIST convnet, LeNet-5 and the
784-16-16-10 MLP.

Each builder takes the input shape (28x28x1 for MNIST and Fashion-MNIST, 32x32x3 for CIFAR-10)
and the number of classes, and returns an uncompiled model ending in a softmax.
"""
from .. import layers
from ..layers import Input
from ..models import Sequential

MNIST_SHAPE = (28, 28, 1)


def convnet(input_shape=MNIST_SHAPE, classes=10, batch_norm=False):
    """Keras's "Simple MNIST convnet": two 3x3 convolutions with max pooling, dropout, softmax.

    ``batch_norm=True`` adds a BatchNormalization after each convolution (after its relu, which
    the convolution kernel fuses).
    """
    def conv(filters):
        conv2d = layers.Conv2D(filters, kernel_size=(3, 3), activation="relu")
        return [conv2d, layers.BatchNormalization()] if batch_norm else [conv2d]

    return Sequential([
        Input(shape=input_shape),
        *conv(32),
        layers.MaxPooling2D(pool_size=(2, 2)),
        *conv(64),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(classes, activation="softmax"),
    ], name="convnet")


def lenet5(input_shape=MNIST_SHAPE, classes=10, activation="relu"):
    """LeNet-5 (LeCun et al., 1998) as it is usually rebuilt today: the first 5x5 convolution
    pads "same" so that 28x28 digits reach the 5x5x16 maps the 32x32 original had; max pooling
    and ``activation`` ("relu", or "tanh" as in the paper) replace the trainable subsampling
    and scaled tanh, and a softmax replaces the RBF output layer."""
    return Sequential([
        Input(shape=input_shape),
        layers.Conv2D(6, kernel_size=(5, 5), padding="same", activation=activation),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(16, kernel_size=(5, 5), activation=activation),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dense(120, activation=activation),
        layers.Dense(84, activation=activation),
        layers.Dense(classes, activation="softmax"),
    ], name="lenet5")


def mlp(input_shape=MNIST_SHAPE, classes=10):
    """The 784-16-16-10 network of the neural-network tutorials (3Blue1Brown, after Nielsen's
    book): two hidden layers of 16 sigmoid units. The output is a softmax for cross-entropy
    rather than the tutorials' sigmoids under a squared error: it trains faster."""
    return Sequential([
        Input(shape=input_shape),
        layers.Flatten(),
        layers.Dense(16, activation="sigmoid"),
        layers.Dense(16, activation="sigmoid"),
        layers.Dense(classes, activation="softmax"),
    ], name="mlp")

