"""Window helpers shared by the conv and pool twins."""
import numpy as np


def _canvas(x, out_h, out_w, kh, kw, sh, sw, pad_top, pad_left, fill=0.0):
    """x placed at (pad_top, pad_left) on a canvas that every output window fits in."""
    n, h, w, c = x.shape
    hp = max((out_h - 1) * sh + kh, pad_top + h)
    wp = max((out_w - 1) * sw + kw, pad_left + w)
    canvas = np.full((n, hp, wp, c), fill, dtype=np.float64)
    canvas[:, pad_top:pad_top + h, pad_left:pad_left + w] = x
    return canvas

def _windows(canvas, i, j, out_h, out_w, sh, sw):
    """The (N, OH, OW, C) slab seen by kernel tap (i, j)."""
    return canvas[:, i:i + (out_h - 1) * sh + 1:sh, j:j + (out_w - 1) * sw + 1:sw]
