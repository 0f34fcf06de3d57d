"""image_dataset_from_directory: a folder of images, one subfolder per class, as a Dataset that
fit, evaluate and predict take, with Keras 3's arguments and semantics.

- The files: those with an image extension (ALLOWED_FORMATS, any case) anywhere under each
  class folder (subfolders too; folders reached through symbolic links only with
  ``follow_links``), listed folder by folder in sorted order. Classes are the sorted names of
  the top-level folders (hidden ones left out), or ``class_names`` in the order given; a class
  folder without images stays a class.
- The order: with ``shuffle``, the list is permuted once by NumPy's legacy RandomState(seed), as
  Keras does, so the same seed gives Keras's file order (``file_paths``) and the same
  training/validation split: the last ``int(validation_split * n)`` files are the validation
  subset. Each epoch then serves the files in an order drawn from (seed, epoch).
- The pixels: decoded on worker threads, each taking a run of a batch's files (JPEGs by
  simplejpeg, other formats by Pillow, both releasing the GIL while decoding; see
  image_utils.decode_file), converted to grayscale, RGB or RGBA, and resized to ``image_size``
  as Keras does (half-pixel centres, no antialiasing; see fastcnn/_ops/resize.py), as float32
  values in 0-255. PNG pixels come out as Keras's (a colour PNG in grayscale within a level:
  libpng and Pillow weigh the channels differently); JPEG decoders differ by a level or a few,
  and a JPEG in grayscale is its luma plane, as TensorFlow decodes it.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._ops import resize
from .._ops.checks import choice_arg, positive_int
from .._ops.threads import get_num_threads
from ..layers.arguments import normalize_seed
from .dataset import Dataset, _row
from .image_utils import COLOR_MODES, data_format_arg, decode_file

ALLOWED_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
LABEL_MODES = ("int", "categorical", "binary", None)
SUBSETS = ("training", "validation", "both")
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}

_pool_lock = threading.Lock()
_pool = None


def _decode_pool():
    """(pool, threads): the threads that decode image files, one per core the kernels use by
    default."""
    global _pool
    with _pool_lock:
        if _pool is None:
            threads = get_num_threads()  # not a step's cap on the thread that asks first
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="fastcnn-decode"), threads
        return _pool


def _forget_pool():
    # A forked child has none of the parent's threads: it starts a pool of its own.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _class_folders(directory, class_names):
    folders = sorted(name for name in os.listdir(directory)
                     if not name.startswith(".") and os.path.isdir(os.path.join(directory, name)))
    if class_names is None:
        return folders
    if not isinstance(class_names, (list, tuple)) or not all(isinstance(c, str)
                                                             for c in class_names):
        raise TypeError(f"Expected class_names to be a list of folder names, received "
                        f"class_names={class_names!r}")
    unknown = sorted(set(class_names) - set(folders))
    if unknown or len(set(class_names)) != len(class_names):
        raise ValueError(f"Expected class_names to name distinct subfolders of {directory!r} "
                         f"(some of {folders}), received class_names={list(class_names)}")
    return list(class_names)


def _image_files(folder, follow_links):
    """The image files under ``folder``, by sorted folder then sorted name."""
    walk = sorted(os.walk(folder, followlinks=follow_links), key=lambda entry: entry[0])
    return [os.path.join(root, name) for root, _, names in walk for name in sorted(names)
            if name.lower().endswith(ALLOWED_FORMATS)]


def index_directory(directory, labels, class_names=None, shuffle=True, seed=None,
                    follow_links=False):
    """(file_paths, labels or None, class_names or None) of the images under ``directory``;
    ``labels`` is "inferred" (the class folders), None, or one int per file in the walk's
    order."""
    if not os.path.isdir(directory):
        raise ValueError(f"Expected directory to be a folder, received {directory!r}")
    if labels == "inferred":
        classes = _class_folders(directory, class_names)
        per_class = [_image_files(os.path.join(directory, c), follow_links) for c in classes]
        paths = [path for files in per_class for path in files]
        found = np.repeat(np.arange(len(classes), dtype=np.int32),
                          [len(files) for files in per_class])
    else:
        if class_names is not None:
            raise ValueError(f"Expected class_names only with labels=\"inferred\", received "
                             f"labels={labels if labels is None else '[...]'} and "
                             f"class_names={class_names!r}")
        paths = _image_files(directory, follow_links)
        found, classes = None, None
        if labels is not None:
            found = np.asarray(labels)
            if found.ndim != 1 or (found.size and found.dtype.kind not in "iu"):
                raise ValueError(f"Expected labels to be a list of ints, one per image file, "
                                 f"received an array of shape {found.shape} and dtype "
                                 f"{found.dtype}")
            if len(found) != len(paths):
                raise ValueError(f"Expected one label per image file: {len(paths)} files in "
                                 f"{directory!r}, received {len(found)} labels")
            found = found.astype(np.int32)
            classes = [str(label) for label in sorted(set(found.tolist()))]
    if shuffle and paths:
        order = np.arange(len(paths))
        np.random.RandomState(seed).shuffle(order)
        paths = [paths[i] for i in order]
        found = None if found is None else found[order]
    return paths, found, classes


def _split(paths, labels, validation_split, subset, directory):
    """The training or validation part of a shuffled file list: the validation files are the
    last int(validation_split * n)."""
    if not validation_split:
        return paths, labels
    n_val = int(validation_split * len(paths))
    if n_val == 0 or n_val == len(paths):
        raise ValueError(f"Expected validation_split={validation_split} to leave files in both "
                         f"subsets, received {len(paths)} image files in {directory!r}")
    cut = slice(None, -n_val) if subset == "training" else slice(-n_val, None)
    return paths[cut], None if labels is None else labels[cut]


def _label_arrays(labels, label_mode, class_names):
    if label_mode == "int":
        return labels
    if label_mode == "binary":
        return labels.astype(np.float32)[:, None]
    n = len(class_names)
    if labels.size and (labels.min() < 0 or labels.max() >= n):
        raise ValueError(f"Expected labels in [0, {n}) for label_mode=\"categorical\" with "
                         f"{n} classes, received labels from {labels.min()} to {labels.max()}")
    return np.eye(n, dtype=np.float32)[labels]


def _fit_within(input_hw, size):
    """(rows, cols, top, left): tf.image.resize_with_pad's geometry, which Keras's
    image_dataset_from_directory uses for pad_to_aspect_ratio: the image resized to the largest
    size of its own aspect ratio within ``size`` (float32 arithmetic, floored), then centred in
    zeros."""
    f32 = np.float32
    (height, width), (target_h, target_w) = map(f32, input_hw), map(f32, size)
    ratio = max(width / target_w, height / target_h)
    rows_f, cols_f = height / ratio, width / ratio
    rows, cols = max(int(np.floor(rows_f)), 1), max(int(np.floor(cols_f)), 1)
    top = max(int(np.floor((target_h - rows_f) / f32(2))), 0)
    left = max(int(np.floor((target_w - cols_f) / f32(2))), 0)
    return rows, cols, top, left


class ImageFolderDataset(Dataset):
    """The images (and labels) of a list of files, one sample per element, decoded and resized
    when asked for; image_dataset_from_directory shuffles and batches it."""

    def __init__(self, paths, labels, class_names, image_size, color_mode, interpolation,
                 crop_to_aspect_ratio, pad_to_aspect_ratio, data_format):
        super().__init__()
        self._paths = list(paths)
        self._labels = labels
        self._class_names = class_names
        self._size = image_size
        self._color_mode = color_mode
        self._resize = (interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio)
        self._channels_first = data_format == "channels_first"

    @property
    def class_names(self):
        return self._class_names

    @property
    def file_paths(self):
        return list(self._paths)

    @property
    def batch_size(self):
        return None

    def __len__(self):
        return len(self._paths)

    def _load(self, index, out):
        """Decode file ``index`` into ``out``, (1, height, width, channels)."""
        image = decode_file(self._paths[index], self._color_mode)
        interpolation, crop, pad = self._resize
        if image.shape[:2] == self._size:
            out[0] = image
        elif pad:
            rows, cols, top, left = _fit_within(image.shape[:2], self._size)
            out[0] = 0
            out[0, top:top + rows, left:left + cols] = (
                image if (rows, cols) == image.shape[:2] else
                resize.resize2d_forward(image[None], (rows, cols), interpolation, n_threads=1)[0])
        else:
            resize.resize2d_forward(image[None], self._size, interpolation, crop, out=out,
                                    n_threads=1)

    def _elements(self, indices):
        indices = np.asarray(indices, np.int64)
        out = np.empty((len(indices), *self._size, CHANNELS[self._color_mode]), np.float32)

        def load(ks):
            for k in ks:
                self._load(indices[k], out[k:k + 1])

        # One run of consecutive images per decoding thread: a task per image would cost more
        # than decoding a small one.
        if len(indices) <= 1:
            load(range(len(indices)))
        else:
            pool, threads = _decode_pool()
            step = -(-len(indices) // threads)
            for _ in pool.map(load, [range(k, min(k + step, len(indices)))
                                     for k in range(0, len(indices), step)]):
                pass
        x = np.ascontiguousarray(out.transpose(0, 3, 1, 2)) if self._channels_first else out
        return x if self._labels is None else (x, self._labels[indices])

    def _element(self, index):
        return _row(self._elements([index]), 0)


def _image_size_arg(image_size):
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
        raise ValueError(f"Expected image_size to be (height, width), received "
                         f"image_size={image_size!r}")
    return (positive_int(image_size[0], "image_size[0]"),
            positive_int(image_size[1], "image_size[1]"))


def _check_split_args(validation_split, subset, shuffle, seed):
    if validation_split is not None and not (isinstance(validation_split, (float, int))
                                             and not isinstance(validation_split, bool)
                                             and (validation_split == 0
                                                  or 0 < validation_split < 1)):
        raise ValueError(f"Expected validation_split between 0 and 1, received "
                         f"validation_split={validation_split!r}")
    if bool(validation_split) != (subset is not None):
        raise ValueError(f"Expected subset and validation_split to be given together, received "
                         f"validation_split={validation_split!r} and subset={subset!r}")
    if subset is not None:
        choice_arg(subset, SUBSETS, "subset")
    if validation_split and shuffle and seed is None:
        raise ValueError("Expected a seed with validation_split and shuffle=True, so that the "
                         "training and validation subsets do not overlap")


def image_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                 class_names=None, color_mode="rgb", batch_size=32,
                                 image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear",
                                 follow_links=False, crop_to_aspect_ratio=False,
                                 pad_to_aspect_ratio=False, data_format=None, verbose=True):
    """A Dataset of the images under ``directory`` (see the module docstring), yielding
    ``(images, labels)`` batches, or images alone when ``labels`` or ``label_mode`` is None;
    ``subset="both"`` returns the (training, validation) pair.

    - ``labels``: "inferred" (from the class folders), None, or a list of ints, one per file in
      the sorted walk of ``directory``.
    - ``label_mode``: "int" (int32, (batch,)), "categorical" (float32 one-hot, (batch, classes)),
      "binary" (float32, (batch, 1); exactly two classes) or None.
    - ``color_mode``: "grayscale", "rgb" or "rgba" (1, 3 or 4 channels).
    - ``batch_size``: None serves single images.
    - ``interpolation``: "bilinear" or "nearest" (fastcnn's resize kernels).
    - ``crop_to_aspect_ratio``: resize the largest centred window of the target's aspect ratio;
      ``pad_to_aspect_ratio``: resize to the largest size of the image's aspect ratio that fits,
      centred in zeros (tf.image.resize_with_pad, as Keras's TensorFlow pipeline does).
    """
    directory = os.fspath(directory)
    if not (labels is None or isinstance(labels, (list, tuple, np.ndarray))
            or isinstance(labels, str) and labels == "inferred"):  # no elementwise ==
        raise ValueError(f"Expected labels to be \"inferred\", None or a list of ints, received "
                         f"labels={labels!r:.200}")
    choice_arg(label_mode, LABEL_MODES, "label_mode")
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    choice_arg(color_mode, tuple(COLOR_MODES), "color_mode")
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
    image_size = _image_size_arg(image_size)
    interpolation = choice_arg(interpolation.lower() if isinstance(interpolation, str)
                               else interpolation, resize.INTERPOLATIONS, "interpolation")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Expected at most one of crop_to_aspect_ratio and pad_to_aspect_ratio "
                         "to be True, received both")
    data_format = data_format_arg(data_format)
    _check_split_args(validation_split, subset, shuffle, seed)
    seed = normalize_seed(seed)
    if seed is None:
        seed = int(np.random.randint(1e6))

    paths, found, classes = index_directory(directory, labels, class_names, bool(shuffle),
                                            int(seed), bool(follow_links))
    if verbose:
        belonging = "" if found is None else f" belonging to {len(classes)} classes"
        print(f"Found {len(paths)} files{belonging}.")
    if not paths:
        raise ValueError(f"No images found in directory {directory!r}. Allowed formats: "
                         f"{ALLOWED_FORMATS}")
    if label_mode == "binary" and len(classes) != 2:
        raise ValueError(f"Expected exactly 2 classes with label_mode=\"binary\", received "
                         f"class_names={classes}")
    values = None if found is None else _label_arrays(found, label_mode, classes)

    def dataset(part, shuffled):
        part_paths, part_labels = _split(paths, values, validation_split, part, directory)
        if verbose and validation_split:
            print(f"Using {len(part_paths)} files for {part}.")
        ds = ImageFolderDataset(part_paths, part_labels, classes, image_size, color_mode,
                                interpolation, bool(crop_to_aspect_ratio),
                                bool(pad_to_aspect_ratio), data_format)
        if shuffled:
            ds = ds.shuffle(len(part_paths), seed=seed)
        return ds if batch_size is None else ds.batch(batch_size)

    if subset == "both":
        return dataset("training", bool(shuffle)), dataset("validation", False)
    return dataset(subset, bool(shuffle))
