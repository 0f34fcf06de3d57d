"""Layers with Keras's names and constructor arguments."""
from ..serialization import register_builtin
from .activation import Activation, ReLU
from .base import Layer
from .input_layer import Input, InputLayer
from .conv import Conv2D
from .core import Dense, Dropout, Flatten
from .depthwise_conv import DepthwiseConv2D, SeparableConv2D
from .normalization import BatchNormalization
from .pooling import (AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D,
                      SumPooling2D)
from .preprocessing import RandomFlip, RandomTranslation
from .merge import Add, Concatenate
from .reshaping import ZeroPadding2D

Convolution2D = Conv2D
SeparableConvolution2D = SeparableConv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

__all__ = ["Activation", "Add", "AveragePooling2D", "AvgPool2D", "BatchNormalization",
           "Concatenate", "Conv2D", "Convolution2D", "Dense", "DepthwiseConv2D", "Dropout",
           "Flatten", "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "GlobalMaxPooling2D",
           "Input", "InputLayer", "Layer", "MaxPool2D", "MaxPooling2D", "RandomFlip",
           "RandomTranslation", "ReLU", "SeparableConv2D", "SeparableConvolution2D", "SumPooling2D",
           "ZeroPadding2D"]

# Saved configs name these classes; the aliases (MaxPool2D...) save as the class they stand for.
for _cls in {globals()[name] for name in __all__ if name != "Input"} - {Layer}:
    register_builtin(_cls)
del _cls
