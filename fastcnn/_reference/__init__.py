"""NumPy twins of every kernel in ``fastcnn._ext``: slow, obvious, used by the tests.

One module per kernel module, with the same name (``conv``, ``dense``, ``pool``...); this
package also exports every twin by name. Each twin has the name and exactly the
signature of its kernel: it reads the ``# IN`` arrays and writes the ``# OUT`` arrays in place.
``n_threads`` is accepted and ignored. Names starting with ``_`` are the twins' own helpers.
Layouts: activations NHWC, conv weights HWIO ``(kh, kw, c_in, c_out)``, dense weights ``(in, out)``.

Padding is given as ``pad_top``/``pad_left``; the output's shape fixes the rest. Cells that the
window reaches past the input on the bottom/right count as zeros (conv) or are ignored (pooling).
"""
from .activation import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .dense import *  # noqa: F401,F403
from .depthwise import *  # noqa: F401,F403
from .distance import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .intensity import *  # noqa: F401,F403
from .layer_norm import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
from .merge import *  # noqa: F401,F403
from .noise import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .optim import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .program import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .regularization import *  # noqa: F401,F403
from .remap import *  # noqa: F401,F403
from .resize import *  # noqa: F401,F403
