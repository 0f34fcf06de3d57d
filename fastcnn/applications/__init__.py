"""Ready-made models, uncompiled, with random weights (fastcnn ships no pretrained weights).

- ``ResNet20``, ``ResNet56`` (CIFAR), ``ResNet18``, ``MobileNetV2``: image classifiers with the
  arguments of ``keras.applications`` (``include_top``, ``weights``, ``input_tensor``,
  ``input_shape``, ``pooling``, ``classes``, ``classifier_activation``);
- ``UNet``: per-pixel classification (segmentation);
- ``convnet``, ``lenet5``, ``mlp``: small Sequential classifiers for MNIST-sized images.

``MODELS`` names the classifiers the command line trains (``python -m fastcnn --model``).
"""
from .classic import convnet, lenet5, mlp
from .mobilenet_v2 import MobileNetV2
from .resnet import ResNet18, ResNet20, ResNet56
from .unet import UNet

MODELS = {"convnet": convnet, "lenet5": lenet5, "mlp": mlp, "mobilenetv2": MobileNetV2,
          "resnet18": ResNet18, "resnet20": ResNet20, "resnet56": ResNet56}

__all__ = ["MODELS", "MobileNetV2", "ResNet18", "ResNet20", "ResNet56", "UNet", "convnet",
           "lenet5", "mlp"]
