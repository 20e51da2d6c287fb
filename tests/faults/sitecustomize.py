"""Test-only fault injection for the torchrun tests (tests/test_distributed.py), outside the package: the tests
put this folder on the ranks' ``PYTHONPATH``, so Python imports this module at the start of every process.
``BENCH_FAIL_RANK=R`` makes torchrun rank R fail after writing ``BENCH_FAIL_AFTER`` (default 1) shard cells,
raising an error (``BENCH_FAIL_MODE=raise``, default) or killing itself with SIGKILL (``BENCH_FAIL_MODE=kill``).
Any other process (the launcher, torchrun itself, other ranks) is left alone."""

from __future__ import annotations

import os
import signal


def _install() -> None:
    rank = os.environ.get("BENCH_FAIL_RANK")
    if rank is None or rank != os.environ.get("RANK"):
        return
    from honestbench.engine import shards

    after = int(os.environ.get("BENCH_FAIL_AFTER", "1"))
    put = shards.ShardCache.put
    written = [0]

    def failing_put(self, label, key, cell):
        put(self, label, key, cell)
        written[0] += 1
        if written[0] < after:
            return
        if os.environ.get("BENCH_FAIL_MODE", "raise") == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"injected fault after {written[0]} cell(s) (BENCH_FAIL_RANK={rank})")

    shards.ShardCache.put = failing_put


_install()
