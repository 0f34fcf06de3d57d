"""Build the Cython kernels at -O3 with OpenMP.

OpenMP is probed by compiling and running a tiny program; without it the kernels build serially
and a warning says so. SIMD code paths (AVX-512, AVX2, scalar) are chosen at run time inside the
C headers, so the distributed binary never needs -march=native. FASTCNN_NATIVE=1 opts a local
build in to -march=native; FASTCNN_DEBUG=1 turns Cython's bounds checks back on.

OpenMP takes different flags by compiler family: -fopenmp for GCC and LLVM clang; for Apple's
clang, -Xpreprocessor -fopenmp and libomp (from Homebrew, conda-forge or $LIBOMP_PREFIX); on
Windows, clang-cl with /openmp, because the kernels use GNU C vector extensions that MSVC's own
cl.exe does not compile. The extensions compile in parallel, one job per CPU.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

EXT_DIR = os.path.join("fastcnn", "_ext")
MODULES = sorted(os.path.basename(path)[:-len(".pyx")]
                 for path in glob.glob(os.path.join(EXT_DIR, "*.pyx")))
if not MODULES:  # an sdist without its sources would otherwise build a wheel without kernels
    raise RuntimeError(f"No Cython sources in {EXT_DIR}: the source tree or sdist is incomplete")
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


def libomp_prefix():
    """Where Apple clang finds libomp: $LIBOMP_PREFIX, Homebrew's or conda-forge's, or None."""
    candidates = [os.environ.get("LIBOMP_PREFIX"), os.environ.get("CONDA_PREFIX")]
    if shutil.which("brew"):
        done = subprocess.run(["brew", "--prefix", "libomp"], capture_output=True, text=True)
        candidates.append(done.stdout.strip() if done.returncode == 0 else None)
    candidates += ["/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
    return next((c for c in candidates
                 if c and os.path.exists(os.path.join(c, "include", "omp.h"))), None)


def compiler_flags(compiler):
    """(optimisation flags, OpenMP compile flags, OpenMP link flags) for ``compiler``."""
    if compiler.compiler_type == "msvc":
        return ["/O2"], ["/openmp"], []
    # -fno-trapping-math lets GCC turn a float select (x if c else y) into a vector blend;
    # it changes no result, only which floating-point exception flags may be raised
    base = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-unused-function",
            "-Wno-unreachable-code"]
    if sys.platform == "darwin":
        prefix = libomp_prefix()
        if prefix is None:
            return base, ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
        return (base, ["-Xpreprocessor", "-fopenmp", "-I" + os.path.join(prefix, "include")],
                ["-L" + os.path.join(prefix, "lib"), "-lomp",
                 "-Wl,-rpath," + os.path.join(prefix, "lib")])
    return base, ["-fopenmp"], ["-fopenmp"]


def openmp_works(compiler, compile_flags, link_flags):
    """Compile, link and run a small OpenMP program with the compiler setuptools will use."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=compile_flags)
            compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=link_flags)
            subprocess.run([compiler.executable_filename("probe", output_dir=tmp)],
                           check=True, capture_output=True, timeout=30)
            return True
        except Exception:  # any failure to build or run means no usable OpenMP
            return False


def use_clang_cl(compiler):
    """On Windows, compile with LLVM's clang-cl in place of cl.exe (same flags, same linker)."""
    clang_cl = os.environ.get("FASTCNN_CLANG_CL") or shutil.which("clang-cl")
    if clang_cl is None:
        raise RuntimeError("fastcnn's kernels need clang-cl on Windows (LLVM, e.g. "
                           "'choco install llvm' or Visual Studio's Clang component)")
    if not compiler.initialized:
        compiler.initialize()
    compiler.cc = clang_cl


class BuildExt(build_ext):
    def finalize_options(self):
        if self.parallel is None:  # pip gives no -j: one compile job per CPU
            self.parallel = True
        super().finalize_options()

    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":
            use_clang_cl(self.compiler)
        base, omp_compile, omp_link = compiler_flags(self.compiler)
        use_openmp = openmp_works(self.compiler, omp_compile, omp_link)
        if not use_openmp:
            warnings.warn("fastcnn: OpenMP not found; building SERIAL kernels (one thread only).")
        compile_args = base + (omp_compile if use_openmp else [])
        link_args = omp_link if use_openmp else []
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
