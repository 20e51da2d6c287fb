"""Files: sha256 of a file, atomic writes (a reader never sees a half-written file), the user cache directory,
and the source checkout this package runs from (when it does: an installed wheel has none)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def source_checkout() -> Path | None:
    """The git checkout this package is imported from (``pip install -e .`` or ``PYTHONPATH``), or None when it
    runs from an installed wheel: the folder above the package when it holds this project's ``pyproject.toml``
    and a ``.git``. Only provenance (the git commit a record names) asks for it; no data or model lives there."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    try:
        ours = pyproject.is_file() and 'name = "honestbench"' in pyproject.read_text()
    except OSError:
        return None
    return root if ours and (root / ".git").exists() else None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_sha_cache: dict[tuple[str, float, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """:func:`sha256_file` of ``path``, computed once per (path, mtime, size) in this process (a changed file
    is hashed again)."""
    st = os.stat(path)
    key = (str(path), st.st_mtime, st.st_size)
    if key not in _sha_cache:
        _sha_cache[key] = sha256_file(path)
    return _sha_cache[key]


@contextmanager
def atomic_path(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """Open a temp file beside ``path`` and rename it over ``path`` only if the block succeeds.

    Readers never see a half-written file; an exception (or Ctrl-C) leaves the old file untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_path(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.write("\n")


def cache_dir() -> Path:
    """The user's cache directory for bench (``$BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/bench``, else
    ``~/.cache/bench``): downloaded data and checkpoints, decoded training images, compiled kernels."""
    env = os.environ.get("BENCH_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bench"
