"""NumPy twins of ``fastcnn._ext.intensity``: per-image channel affine maps with clipping."""
import numpy as np


def _affine(x, scale, shift):
    return (np.asarray(x, np.float64) * np.asarray(scale, np.float64)[:, None, :]
            + np.asarray(shift, np.float64)[:, None, :])


def intensity_forward(x__npc, scale, shift, low, high, out__npc, n_threads):
    """out = clip(x * scale + shift, low, high), scale and shift per image and channel."""
    out__npc[...] = np.clip(_affine(x__npc, scale, shift), low, high)


def intensity_backward(dy__npc, x__npc, scale, shift, low, high, gain, dx__npc, n_threads):
    """dx = dy * gain where the forward did not clip, else 0."""
    v = _affine(x__npc, scale, shift)
    dy = np.asarray(dy__npc, np.float64) * np.asarray(gain, np.float64)[:, None, :]
    dx__npc[...] = np.where((v >= low) & (v <= high), dy, 0)


def channel_means(x__npc, out__nc, n_threads):
    """out[b, c] = mean of x[b, :, c]."""
    out__nc[...] = np.asarray(x__npc, np.float64).mean(axis=1)
