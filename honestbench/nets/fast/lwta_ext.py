"""The optional fused CPU kernel of stochastic LWTA inference (``csrc/lwta_pair.cpp`` beside this file).

:meth:`honestbench.nets.layers.lwta.LWTA.eval_pair` builds a U = 2 LWTA layer's output from seven ATen operations
over strided views of the pre-activations. The operator ``torch.ops.bench.lwta_pair(h, u, soft, temperature)``
does the same arithmetic in one vectorised pass over memory, from the uniforms ``u`` that ``eval_pair`` draws
(``torch.rand_like`` of the pair's first unit: torch's own random stream, seeded as usual). Hard winners are
bit-identical to ``eval_pair`` seed for seed, except when a uniform lies within ~1e-7 of its threshold (the
kernel's exp is a polynomial, ATen's another); soft outputs agree to float rounding. Inference only: no
autograd.

Interface: :func:`load` compiles the kernel on first use with the machine's C++ compiler (``$CXX``, default
``c++``) against the installed torch, with ``-march=native``, and caches it in
``honestbench.core.io.cache_dir() / "ext"`` under a name that hashes the source, the torch version, the flags and
the CPU; ``BENCH_NO_EXT=1`` turns it off. Nothing in ``bench`` needs it: :func:`load` returns False (and
:func:`status` says why) where it cannot be built, and callers fall back to the ATen path. It is used only
where asked for: :func:`use_fused_kernel` (``honestbench.nets.fast.trace_for_inference(..., fused=True)`` and
``bench speed``'s ``fused`` variant).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from honestbench.core.io import cache_dir
from honestbench.nets.layers.lwta import LWTA

SOURCE = Path(__file__).with_name("csrc") / "lwta_pair.cpp"
DISABLE_ENV = "BENCH_NO_EXT"
#: compiler flags besides include/library paths: -fno-trapping-math and -fno-math-errno let the compiler
#: vectorise the loops' comparisons (torch itself is built with both); -march=native: the cache key
#: includes the CPU, so a cached build never runs on another kind of processor
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-std=c++20", "-shared", "-fPIC")
COMPILE_TIMEOUT_S = 600

_state: dict = {}


def _cpu_id() -> str:
    """The processor's model name and feature flags (what ``-march=native`` compiles for)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    keep = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return "\n".join(sorted(set(keep)))


def _command(cxx: str, out: Path) -> list[str]:
    """The compiler command line (torch's headers and libraries, as ``torch.utils.cpp_extension`` uses them,
    without importing it: that import looks for CUDA and logs a warning on CPU-only machines)."""
    root = Path(torch.__file__).resolve().parent
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    lib = root / "lib"
    return [cxx, *FLAGS, f"-D_GLIBCXX_USE_CXX11_ABI={abi}", f"-I{root / 'include'}",
            f"-I{root / 'include' / 'torch' / 'csrc' / 'api' / 'include'}", str(SOURCE), "-o", str(out),
            f"-L{lib}", "-lc10", "-ltorch_cpu", f"-Wl,-rpath,{lib}"]


def library_path(cxx: str | None = None) -> Path:
    """Where the compiled kernel for this source, torch, compiler, flags and CPU is cached."""
    cxx = cxx or os.environ.get("CXX", "c++")
    key = hashlib.sha256("\0".join([SOURCE.read_text(), torch.__version__, cxx, " ".join(FLAGS),
                                    _cpu_id()]).encode()).hexdigest()[:16]
    return cache_dir() / "ext" / f"lwta_pair-{key}.so"


def _build(path: Path, cxx: str) -> None:
    """Compile to a temporary file beside ``path``, then rename (concurrent builds cannot half-write it)."""
    if shutil.which(cxx) is None:
        raise RuntimeError(f"no C++ compiler: {cxx!r} not found (set $CXX)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        proc = subprocess.run(_command(cxx, Path(tmp)), capture_output=True, text=True,
                              timeout=COMPILE_TIMEOUT_S)
        if proc.returncode:
            last = [line for line in proc.stderr.splitlines() if "error" in line][:1] or proc.stderr.splitlines()[-1:]
            raise RuntimeError(f"{cxx} failed ({last[0].strip() if last else 'no message'})")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load() -> bool:
    """Make ``torch.ops.bench.lwta_pair`` available (compiling it once if needed); False where it cannot be
    built or loaded (:func:`status` says why). Never raises; later calls return the first answer."""
    if "ok" in _state:
        return _state["ok"]
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        _state.update(ok=False, why=f"turned off by {DISABLE_ENV}")
        return False
    cxx = os.environ.get("CXX", "c++")
    try:
        path = library_path(cxx)
        t = time.perf_counter()
        built = not path.exists()
        if built:
            _build(path, cxx)
        torch.ops.load_library(str(path))
        _state.update(ok=True, why="loaded", path=str(path), built=built,
                      build_seconds=round(time.perf_counter() - t, 1) if built else 0.0)
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        _state.update(ok=False, why=f"fused LWTA kernel unavailable: {e}")
    return _state["ok"]


def status() -> dict:
    """``{"ok": bool, "why": str, ...}`` after :func:`load` (path, whether this process built it and how long
    that took); ``{"ok": None}`` before."""
    return dict(_state) if _state else {"ok": None, "why": "not loaded yet"}


def lwta_pair(h: torch.Tensor, u: torch.Tensor, soft: bool, temperature: float) -> torch.Tensor:
    """The fused U = 2 LWTA output for pre-activations ``h`` (float32 CPU, (N, C) or (N, C, H, W)) and one
    uniform per pair ``u`` (``h``'s shape with C / 2 channels); :func:`load` must have returned True."""
    return torch.ops.bench.lwta_pair(h, u, soft, temperature)


def use_fused_kernel(model: nn.Module, on: bool = True) -> int:
    """In place: switch the fused inference kernel on or off in every U = 2 LWTA layer of ``model``; returns
    how many layers it set. Switching on compiles the kernel if needed and raises ``RuntimeError`` (saying
    why) where it cannot be built."""
    if on and not load():
        raise RuntimeError(status()["why"])
    layers = [m for m in model.modules() if isinstance(m, LWTA) and m.U == 2]
    for m in layers:
        m.fused = on
    return len(layers)
