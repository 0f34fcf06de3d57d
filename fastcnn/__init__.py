"""fastcnn: convolutional networks on the CPU, with Cython/OpenMP kernels and Keras's API.

    import fastcnn as keras
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), keras.layers.Conv2D(32, 3), ...])
"""
from . import (activations, callbacks, config, constraints, datasets, initializers, layers, losses,
               metrics, ops, optimizers, regularizers, saving, utils)
from ._ops.threads import get_num_threads, set_num_threads, show_config
from .layers import Input
from .models import Model, Sequential
from . import applications, interop, models, onnx

__version__ = "0.1.0"

__all__ = ["Input", "Model", "Sequential", "activations", "applications", "callbacks", "config",
           "constraints", "datasets", "get_num_threads", "initializers", "interop", "layers",
           "losses", "metrics", "models", "onnx", "ops", "optimizers", "regularizers", "saving",
           "set_num_threads", "show_config", "utils"]
