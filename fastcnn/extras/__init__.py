"""Extras outside the CNN core, imported on their own (``import fastcnn`` does not load them).

    from fastcnn.extras import neighbors, plot

``neighbors``: a k-nearest-neighbour classifier, a baseline to compare a network with.
``plot``: learning curves, convolution filters and feature maps (needs matplotlib).
"""
