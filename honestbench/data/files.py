"""Where data and larger checkpoint files come from: ``$BENCH_DATA_DIR`` (a folder the user names; unset in a
source checkout: the project's ``../shared/data`` beside it, when there is one), then the user's cache
(:func:`honestbench.core.io.cache_dir`: ``$BENCH_CACHE_DIR``, default ``~/.cache/bench``), else a download by
URL into the cache (when the network allows and ``$BENCH_OFFLINE`` is not set). Nothing is used before its
sha256 is checked against a pinned value (by the loaders: :mod:`honestbench.data`, :mod:`honestbench.zoo`).
Torch-free.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from honestbench.core.errors import DataError
from honestbench.core.io import cache_dir, source_checkout

DATA_ENV = "BENCH_DATA_DIR"
OFFLINE_ENV = "BENCH_OFFLINE"
#: seconds a download may wait for the server before it counts as offline
TIMEOUT_S = 30.0


def _checkout_data() -> Path | None:
    """``../shared/data`` beside the source checkout this package runs from, when both exist (never for a wheel)."""
    root = source_checkout()
    folder = root.parent / "shared" / "data" if root is not None else None
    return folder.resolve() if folder is not None and folder.is_dir() else None


def data_dir() -> Path:
    """The folder data files are looked up in first: ``$BENCH_DATA_DIR``; unset, a source checkout's
    ``../shared/data`` (when there is one), else the cache folder."""
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return _checkout_data() or cache_dir().expanduser().resolve()


def search_dirs() -> list[Path]:
    """The folders searched for a data or checkpoint file, in order: ``$BENCH_DATA_DIR`` (when set), the cache."""
    dirs = [data_dir(), cache_dir().expanduser().resolve()]
    return list(dict.fromkeys(dirs))


def find_file(name: str) -> Path | None:
    """The first ``DIR/name`` of :func:`search_dirs` that is a file, or None."""
    return next((d / name for d in search_dirs() if (d / name).is_file()), None)


def cache_path(name: str) -> Path:
    """Where the cache holds (or will hold, once fetched) the file ``name``."""
    return cache_dir().expanduser().resolve() / name


def where_searched() -> str:
    """The searched folders in words, for error messages."""
    env = os.environ.get(DATA_ENV, "").strip()
    cache = cache_dir().expanduser().resolve()
    if env or data_dir() != cache:
        return f"{DATA_ENV} ({data_dir()}) or the cache ({cache})"
    return f"the cache ({cache}; {DATA_ENV} unset)"



def offline() -> bool:
    """True when ``$BENCH_OFFLINE`` is set (to anything but '', '0' or 'false'): no download is tried."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


#: the opener downloads go through (``urllib.request.urlopen``; tests replace it)
_open = urllib.request.urlopen


def download(url: str, dest: Path) -> Path:
    """Stream ``url`` into ``dest`` (written beside it under a temporary name, renamed when complete: an
    interrupted download leaves nothing behind). One-line :class:`DataError` saying why when it fails."""
    if offline():
        raise DataError(f"not downloading {url}: {OFFLINE_ENV} is set")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise DataError(f"cannot write into {dest.parent} ({e.strerror}): set BENCH_CACHE_DIR to a writable folder"
                        ) from None
    try:
        with os.fdopen(fd, "wb") as out, _open(url, timeout=TIMEOUT_S) as response:
            shutil.copyfileobj(response, out, 1 << 20)
        os.replace(tmp, dest)
    except (OSError, urllib.error.URLError, ValueError) as e:
        Path(tmp).unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise DataError(f"download of {url} failed ({type(e).__name__}: {' '.join(str(reason).split())[:160]})"
                        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
