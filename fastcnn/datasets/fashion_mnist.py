"""Fashion-MNIST (Zalando Research), read from the four published IDX files.

Same layout and file names as MNIST. See ``fastcnn.datasets._files`` for where the files are
looked for and how they are checked.
"""
from ._files import DOWNLOAD_TIMEOUT, FileSpec, idx_files, load_idx_dataset

DEFAULT_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# Zalando's README publishes md5 only. These sha256 digests and sizes are the ones TensorFlow
# Datasets pins for the same URLs (tensorflow_datasets/url_checksums/fashion_mnist.txt), and
# other projects list them beside Zalando's md5 values (train-images 8d4fb7e6..., train-labels
# 25c81989..., t10k-images bef4ecab..., t10k-labels bb300cfd...).
FILES = idx_files(
    train_images=FileSpec(26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    train_labels=FileSpec(29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    test_images=FileSpec(4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    test_labels=FileSpec(5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
)


def load_data(*, cache_dir=None, mirror=None, timeout=DOWNLOAD_TIMEOUT):
    """Load Fashion-MNIST as Keras does: ``((x_train, y_train), (x_test, y_test))``.

    Shapes, dtypes, arguments and errors are those of ``fastcnn.datasets.mnist.load_data``; the
    cache folder is ``fashion_mnist/``, the default mirror Zalando's published location.
    """
    return load_idx_dataset("fashion_mnist", FILES, DEFAULT_MIRROR,
                            cache_dir=cache_dir, mirror=mirror, timeout=timeout)
