"""The interop modules import their optional packages only when a function needs them: fastcnn
itself, and fastcnn.onnx / fastcnn.interop loaded, import none of them."""
import subprocess
import sys

OPTIONAL = ("onnx", "onnxruntime", "h5py", "safetensors", "torch", "keras")


def test_import_fastcnn_imports_no_optional_package():
    code = ("import sys, fastcnn, fastcnn.onnx, fastcnn.interop; "
            f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
