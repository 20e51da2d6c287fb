"""``bench run --workers N``: launch ``torchrun --standalone --nproc_per_node N -m honestbench run ...`` locally
with the same arguments, relay its output, and turn a failure into one line naming the rank."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

from honestbench.core.errors import BenchError
from honestbench.core.threads import usable_cpus
from honestbench.engine.world import LAUNCHER_ENV, is_distributed


def _strip_workers(argv: list[str]) -> list[str]:
    """``argv`` without ``--workers N`` / ``--workers=N`` (and argparse's abbreviations of it)."""
    out, skip = [], False
    for tok in argv:
        if skip:
            skip = False
            continue
        name = tok.split("=", 1)[0]
        if len(name) >= 3 and "--workers".startswith(name):
            skip = "=" not in tok
            continue
        out.append(tok)
    return out


def failure_line(tail: str, rc: int) -> str:
    """One line from torchrun's failure report (its "Root Cause" block) at the end of ``tail``."""
    root = tail.rsplit("Root Cause", 1)
    if len(root) == 2:
        text = root[1]
        rank = re.search(r"rank\s*:\s*(\d+)", text)
        code = re.search(r"exitcode\s*:\s*(-?\d+)", text)
        msg = re.search(r"traceback\s*:\s*(.*)", text)
        message = msg.group(1).strip() if msg else ""
        if message.startswith("rank "):  # our own line (honestbench.engine.shards wrote the error file)
            return message
        if rank:
            if not message or message.startswith("To enable traceback"):
                message = "see its error above"
            return (f"rank {rank.group(1)} failed (exit code {code.group(1) if code else '?'}): {message}; "
                    "finished shards are kept: rerun the same command to resume")
    return f"torchrun exited with status {rc} (see its report above)"


def launch_local(workers: int, argv: list[str] | None = None) -> int:
    """``bench run --workers N``: run ``python -m torch.distributed.run --standalone --nproc_per_node N -m
    bench run <the same arguments without --workers>``; a failure becomes one line naming the rank."""
    if is_distributed():
        raise BenchError("--workers launches torchrun itself: under torchrun, drop --workers")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["run"]:
        raise BenchError("--workers needs the `bench run ...` command line (or call launch_local with argv)")
    rest = _strip_workers(argv)
    # "--" keeps torchrun's parser off bench's options (argparse prefix matching: "--n" is ambiguous there)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(workers),
           "-m", "honestbench", "--", *rest]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, len(usable_cpus()) // workers)))
    env[LAUNCHER_ENV] = "1"
    print(f"bench run: {workers} processes, {env['OMP_NUM_THREADS']} thread(s) each: "
          f"torchrun --standalone --nproc_per_node {workers} -m honestbench -- {shlex.join(rest)}",
          file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    tail = b""
    try:
        fd = proc.stderr.fileno()
        while chunk := os.read(fd, 1 << 16):  # relay torchrun's stderr as it comes, keep its tail
            sys.stderr.buffer.write(chunk)
            sys.stderr.buffer.flush()
            tail = (tail + chunk)[-(1 << 16):]
        rc = proc.wait()
    except KeyboardInterrupt:  # torchrun got the same SIGINT and stops its ranks
        proc.wait()
        raise
    if rc:
        raise BenchError(failure_line(tail.decode(errors="replace"), rc))
    return 0
