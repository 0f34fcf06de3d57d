"""The compiled kernels (Cython/C extension modules).

Importing this package checks that they are built here, so that a source folder without them
(after a plain ``pip install .``, Python started in the repository root imports the source
folder, not the installed copy) fails with a message that says so rather than with a missing
name somewhere inside fastcnn.
"""
import importlib
import os

try:
    importlib.import_module(".runtime", __name__)
except ModuleNotFoundError as error:
    if error.name != __name__ + ".runtime":
        raise
    _here = os.path.dirname(os.path.abspath(__file__))
    _source = os.path.dirname(os.path.dirname(_here))
    raise ImportError(
        f"fastcnn's compiled kernels are not built in {_here}, the fastcnn being imported. "
        f"If {_source} is the fastcnn source folder, build them in place with `pip install -e .` "
        f"there, or start Python outside that folder to import an installed fastcnn.") from None
