"""Build the Cython kernels at -O3 with OpenMP.

OpenMP is probed by compiling and running a tiny program; without it the kernels build serially
and a warning says so. SIMD code paths (AVX-512, AVX2, scalar) are chosen at run time inside the
C headers, so the distributed binary never needs -march=native. FASTCNN_NATIVE=1 opts a local
build in to -march=native; FASTCNN_DEBUG=1 turns Cython's bounds checks back on.
"""
import glob
import os
import subprocess
import sys
import tempfile
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

EXT_DIR = os.path.join("fastcnn", "_ext")
MODULES = sorted(os.path.basename(path)[:-len(".pyx")]
                 for path in glob.glob(os.path.join(EXT_DIR, "*.pyx")))
OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d\n", n);
    return n > 0 ? 0 : 1;
}
"""


def openmp_works(compiler):
    """Compile, link and run a small OpenMP program with the compiler setuptools will use."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
            exe = os.path.join(tmp, "probe")
            compiler.link_executable(objs, exe, extra_postargs=["-fopenmp"])
            subprocess.run([exe], check=True, capture_output=True, timeout=30)
            return True
        except Exception:  # any failure to build or run means no usable OpenMP
            return False


class BuildExt(build_ext):
    def build_extensions(self):
        use_openmp = openmp_works(self.compiler)
        if not use_openmp:
            warnings.warn("fastcnn: OpenMP not found; building SERIAL kernels (one thread only).")
        # -fno-trapping-math lets GCC turn a float select (x if c else y) into a vector blend;
        # it changes no result, only which floating-point exception flags may be raised
        compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-unused-function",
                        "-Wno-unreachable-code"]
        link_args = []
        if use_openmp:
            compile_args.append("-fopenmp")
            link_args.append("-fopenmp")
        if os.environ.get("FASTCNN_NATIVE") == "1":
            # No fused multiply-adds the source did not ask for: the NumPy twins round a
            # product and a sum apart, and the parity tests compare bit for bit
            compile_args += ["-march=native", "-ffp-contract=off"]
        for ext in self.extensions:
            ext.extra_compile_args = compile_args
            ext.extra_link_args = link_args
            ext.define_macros = [("FASTCNN_OPENMP", "1" if use_openmp else "0")]
        super().build_extensions()


def extensions():
    from Cython.Build import cythonize

    debug = os.environ.get("FASTCNN_DEBUG") == "1"
    headers = sorted(glob.glob(os.path.join(EXT_DIR, "*.h")))  # so that editing one rebuilds
    exts = [
        Extension(f"fastcnn._ext.{name}", [os.path.join(EXT_DIR, f"{name}.pyx")],
                  include_dirs=[EXT_DIR], depends=headers)
        for name in MODULES
    ]
    return cythonize(
        exts,
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "initializedcheck": debug,
            "cdivision": True,
            "embedsignature": True,
        },
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
