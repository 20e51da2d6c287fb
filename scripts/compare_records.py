"""Compare the records of two ``bench run`` folders: a plain run and a torchrun (distributed) run of the same
command. They must be identical apart from timing, date and command fields (:data:`IGNORED`; a device ``cuda:N``
counts as ``cuda``), and the distributed folder must show that its matrices went through the distributed merge
(``world_size`` in every matrix's meta): otherwise a torchrun that silently ran the plain path would pass.

Prints ONE line, ``PASS: ...`` (exit 0) or ``FAIL: ...`` (exit 1); unreadable input is one ``error:`` line
(exit 2). Used by scripts/gpu_job.sh (item speed: the 1-GPU nccl check).

    python scripts/compare_records.py PLAIN_DIR DIST_DIR [--label nccl] [--control PLAIN2_DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

#: keys whose values differ between two runs of the same evaluation (wall times, dates, the command line)
IGNORED = frozenset({"date", "seconds", "clean_seconds", "ms_per_image_b1", "ms_per_image_b256", "command",
                     "commands"})
MAX_SHOWN = 3  # differences named in the FAIL line


def _norm(key: str, value: object) -> object:
    if key == "device" and isinstance(value, str):
        return re.sub(r"^cuda:\d+$", "cuda", value)
    return value


def differences(a: object, b: object, path: str = "") -> list[str]:
    """Paths (``.records[3].accuracy``) where ``a`` and ``b`` differ, :data:`IGNORED` keys skipped."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            if k in IGNORED:
                continue
            if k not in a or k not in b:
                out.append(f"{path}.{k} only in {'the distributed' if k in b else 'the plain'} run")
            else:
                out += differences(_norm(k, a[k]), _norm(k, b[k]), f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} entries"]
        return [d for i, (u, v) in enumerate(zip(a, b, strict=True)) for d in differences(u, v, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def _records(folder: Path) -> dict:
    path = folder / "records.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path} ({e.__class__.__name__}): run `bench run ... --out {folder}` "
                         "first") from None


def world_sizes(folder: Path) -> dict[str, int | None]:
    """``world_size`` of each model's matrix meta in ``folder/matrices`` (None: the plain path wrote it)."""
    out: dict[str, int | None] = {}
    for f in sorted((folder / "matrices").glob("*.npz")):
        with np.load(f, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
        out[f.stem] = meta.get("world_size")
    return out


def compare(plain: Path, dist: Path, label: str = "distributed", control: Path | None = None) -> tuple[bool, str]:
    """(passed, the one line) for the two folders; ``control``: a second plain run, whose differences from the
    first (GPU kernels that are not bit-reproducible) the FAIL line then reports beside the distributed ones."""
    a, b = _records(plain), _records(dist)
    noise = differences(a, _records(control)) if control is not None else None
    sizes = world_sizes(dist)
    if not sizes:
        return False, f"FAIL: {dist}/matrices holds no matrix"
    plain_path = sorted(m for m, w in sizes.items() if w is None)
    if plain_path:
        return False, (f"FAIL: {label} run of {', '.join(plain_path)} did not take the distributed path (no "
                       "world_size in its matrix meta: torchrun with 1 process needs BENCH_DIST_FORCE=1)")
    diffs = differences(a, b)
    n = len(a.get("records", []))
    if diffs:
        shown = "; ".join(diffs[:MAX_SHOWN]) + (f"; ... ({len(diffs)} in all)" if len(diffs) > MAX_SHOWN else "")
        why = "" if noise is None else (
            f" (two plain runs differ too, in {len(noise)} place(s): not bit-reproducible here)" if noise
            else " (two plain runs are identical)")
        return False, f"FAIL: {label} run differs from the plain run{why}: {shown}"
    worlds = sorted(set(sizes.values()))
    return True, (f"PASS: {label} run (world size {', '.join(map(str, worlds))}) equals the plain run: {n} records "
                  f"of {len(sizes)} model(s) identical apart from {', '.join(sorted(IGNORED))}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("plain", type=Path, help="folder of the plain `bench run`")
    ap.add_argument("dist", type=Path, help="folder of the torchrun run of the same command")
    ap.add_argument("--label", default="distributed", help="name of the distributed run in the line (e.g. nccl)")
    ap.add_argument("--control", type=Path, default=None, help="a second plain run: is the plain run reproducible?")
    args = ap.parse_args(argv)
    try:
        ok, line = compare(args.plain, args.dist, args.label, args.control)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
