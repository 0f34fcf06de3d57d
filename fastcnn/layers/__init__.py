"""Layers with Keras's names and constructor arguments."""
from ..serialization import register_builtin
from .activation import ELU, Activation, LeakyReLU, PReLU, ReLU, Softmax
from .base import Layer
from .input_layer import Input, InputLayer
from .conv import Conv1D, Conv2D
from .conv_transpose import Conv2DTranspose
from .core import Dense, Dropout, Flatten
from .depthwise_conv import DepthwiseConv2D, SeparableConv2D
from .feature_normalization import Normalization
from .layer_normalization import GroupNormalization, LayerNormalization
from .normalization import BatchNormalization
from .pooling import (AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D,
                      SumPooling2D)
from .merge import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, average,
                    concatenate, maximum, minimum, multiply, subtract)
from .noise import GaussianDropout, GaussianNoise, SpatialDropout2D
from .preprocessing import (CenterCrop, RandomBrightness, RandomContrast, RandomCrop, RandomFlip,
                            RandomRotation, RandomTranslation, RandomZoom, Rescaling, Resizing)
from .reshaping import Cropping2D, Permute, Reshape, ZeroPadding2D
from .upsampling import UpSampling2D

Convolution1D = Conv1D
Convolution2D = Conv2D
Convolution2DTranspose = Conv2DTranspose
SeparableConvolution2D = SeparableConv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

__all__ = ["Activation", "Add", "Average", "AveragePooling2D", "AvgPool2D", "BatchNormalization",
           "CenterCrop", "Concatenate", "Conv1D", "Conv2D", "Conv2DTranspose", "Convolution1D",
           "Convolution2D", "Convolution2DTranspose", "Cropping2D", "Dense", "DepthwiseConv2D",
           "Dropout", "ELU", "Flatten", "GaussianDropout", "GaussianNoise",
           "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "GlobalMaxPooling2D",
           "GroupNormalization", "Input", "InputLayer", "Layer", "LayerNormalization", "LeakyReLU",
           "MaxPool2D", "MaxPooling2D", "Maximum", "Minimum", "Multiply", "Normalization", "PReLU",
           "Permute", "RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip",
           "RandomRotation", "RandomTranslation", "RandomZoom", "ReLU", "Rescaling", "Reshape",
           "Resizing",
           "SeparableConv2D", "SeparableConvolution2D", "Softmax", "SpatialDropout2D", "Subtract",
           "SumPooling2D", "UpSampling2D", "ZeroPadding2D", "add", "average", "concatenate",
           "maximum", "minimum", "multiply", "subtract"]

# Saved configs name these classes; the aliases (MaxPool2D...) save as the class they stand for.
for _cls in {globals()[name] for name in __all__ if isinstance(globals()[name], type)} - {Layer}:
    register_builtin(_cls)
del _cls
