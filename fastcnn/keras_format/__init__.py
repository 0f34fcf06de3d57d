"""Keras 3's files, read and written: the ``.keras`` zip (``config.json``, ``metadata.json``,
``model.weights.h5``) and the ``.weights.h5`` HDF5 weights.

- ``layer_configs``: one layer's config, Keras's to fastcnn's and back, refusing what either
  side lacks;
- ``model_configs``: Sequential, functional and nested models, and the order Keras gives a
  functional model's layers;
- ``keras_h5``: the HDF5 layout of the weights (``layers/<class>/vars/<i>``), read under
  ``fastcnn.file_limits``;
- ``keras_zip``: the ``.keras`` zip and its compile config.

What maps, both ways: Sequential and functional models, nested in one another, with shared
layers and several inputs and outputs; the layers Activation, Add, Average, AveragePooling2D,
BatchNormalization, CenterCrop, Concatenate, Conv1D, Conv2D, Conv2DTranspose, Cropping2D, Dense,
DepthwiseConv2D, Dropout, ELU, Flatten, GaussianDropout, GaussianNoise, GlobalAveragePooling2D,
GlobalMaxPooling2D, GroupNormalization, InputLayer, LayerNormalization, LeakyReLU, MaxPooling2D,
Maximum, Minimum, Multiply, Normalization, PReLU, Permute, RandomBrightness, RandomContrast,
RandomCrop, RandomFlip, RandomRotation, RandomTranslation, RandomZoom, ReLU, Rescaling, Reshape,
Resizing, SeparableConv2D, Softmax, SpatialDropout2D, Subtract, UpSampling2D, ZeroPadding2D,
with the initializers, regularizers (L1, L2, L1L2) and constraints fastcnn has; the compile
config (optimizer with its schedule, losses, metrics) by Keras's class names. Weights files of
subclassed models match where both sides hold the same layers under the same attributes.

What is refused, by name: any other class (Lambda and every Python function or lambda,
custom and registered classes, LSTM, Embedding...); ``data_format="channels_first"``; a dtype
other than float32 (mixed precision, integer inputs); a Keras option fastcnn lacks unless it
holds its neutral value (BatchNormalization's renorm, Dropout's noise_shape, quantization,
masks...); Keras 2's layouts. Writing refuses fastcnn's SumPooling2D, subclassed models and
custom layers, and graphs that call fastcnn.ops functions; a compiled state Keras lacks (a
custom loss) is written uncompiled with a warning.

``fastcnn.saving`` dispatches here: these modules never import it, nor ``fastcnn.models``.
"""
