"""Layers with Keras's names and constructor arguments."""
from .activation import Activation, ReLU
from .base import Input, InputLayer, Layer
from .conv import Conv2D
from .core import Dense, Dropout, Flatten
from .pooling import AveragePooling2D, MaxPooling2D

Convolution2D = Conv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D

__all__ = ["Activation", "AveragePooling2D", "AvgPool2D", "Conv2D", "Convolution2D", "Dense",
           "Dropout", "Flatten", "Input", "InputLayer", "Layer", "MaxPool2D", "MaxPooling2D", "ReLU"]


def get(class_name):
    """The layer class called ``class_name``; used to rebuild models from their config."""
    cls = globals().get(class_name)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"Unknown layer class {class_name!r}")
    return cls
