"""Layers with Keras's names and constructor arguments."""
from ..serialization import register_builtin
from .activation import Activation, ReLU
from .base import Layer
from .input_layer import Input, InputLayer
from .conv import Conv1D, Conv2D
from .conv_transpose import Conv2DTranspose
from .core import Dense, Dropout, Flatten
from .normalization import BatchNormalization
from .pooling import (AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D,
                      SumPooling2D)
from .preprocessing import RandomFlip, RandomTranslation
from .merge import Add, Concatenate
from .reshaping import ZeroPadding2D

Convolution1D = Conv1D
Convolution2D = Conv2D
Convolution2DTranspose = Conv2DTranspose
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

__all__ = ["Activation", "Add", "AveragePooling2D", "AvgPool2D", "BatchNormalization",
           "Concatenate", "Conv1D", "Conv2D", "Conv2DTranspose", "Convolution1D",
           "Convolution2D", "Convolution2DTranspose", "Dense", "Dropout", "Flatten",
           "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "GlobalMaxPooling2D",
           "Input", "InputLayer", "Layer", "MaxPool2D", "MaxPooling2D", "RandomFlip",
           "RandomTranslation", "ReLU", "SumPooling2D", "ZeroPadding2D"]

# Saved configs name these classes; the aliases (MaxPool2D...) save as the class they stand for.
for _cls in {globals()[name] for name in __all__ if name != "Input"} - {Layer}:
    register_builtin(_cls)
del _cls
