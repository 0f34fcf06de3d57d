"""Weights exchanged with PyTorch: a model's weights as a torch state dict, in torch's layouts
and with torch's names, and back; and the same state dict in a .safetensors file.

    from fastcnn import interop
    state = interop.to_torch_state_dict(model)        # {"conv2d.weight": (32, 1, 3, 3) array...}
    torch_module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    interop.load_torch_state_dict(model, torch_module.state_dict())
    interop.save_torch_weights(model, "weights.safetensors")
    interop.load_torch_weights(model, "weights.safetensors")

The torch module is the user's, written with the same architecture (strides, padding, groups,
each normalisation's epsilon) on channels-first tensors: these functions map the weights only,
the way torch_layouts describes. A state dict whose keys are not fastcnn's names (any torch
module's ``state_dict()``) is matched by order, one torch module per fastcnn layer with
weights, in the order of ``model.weights``.

torch is never imported; the files need the safetensors package (``pip install
fastcnn[torch]``), imported by the functions that read and write them.
"""
from .torch_safetensors import load_torch_weights, save_torch_weights
from .torch_state_dict import IncompatibleKeys, load_torch_state_dict, to_torch_state_dict

__all__ = ["IncompatibleKeys", "load_torch_state_dict", "load_torch_weights",
           "save_torch_weights", "to_torch_state_dict"]
