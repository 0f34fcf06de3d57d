"""Layers with Keras's names and constructor arguments."""
from .activation import Activation, ReLU
from .base import Input, InputLayer, Layer
from .conv import Conv2D
from .core import Dense, Dropout, Flatten
from .normalization import BatchNormalization
from .pooling import (AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D,
                      SumPooling2D)
from .preprocessing import RandomFlip, RandomTranslation
from .reshaping import ZeroPadding2D

Convolution2D = Conv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

__all__ = ["Activation", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Conv2D",
           "Convolution2D", "Dense", "Dropout", "Flatten", "GlobalAveragePooling2D",
           "GlobalAvgPool2D", "GlobalMaxPool2D", "GlobalMaxPooling2D", "Input", "InputLayer",
           "Layer", "MaxPool2D", "MaxPooling2D", "RandomFlip", "RandomTranslation", "ReLU",
           "SumPooling2D", "ZeroPadding2D"]


def get(class_name):
    """The layer class called ``class_name``; used to rebuild models from their config."""
    cls = globals().get(class_name) if class_name in __all__ else None
    # Layer and InputLayer are exported but are not layers a model config can contain.
    if not (isinstance(cls, type) and issubclass(cls, Layer)) or cls in (Layer, InputLayer):
        raise ValueError(f"Unknown layer class {class_name!r}")
    return cls
