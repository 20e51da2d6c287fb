"""The command line: every subcommand wired to a real ``main(args)``, and the light commands load no torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from honestbench.cli import check, crosscheck, listing, report, run, speed, train
from honestbench.cli.main import build_parser

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests run in


def _python(code: str) -> subprocess.CompletedProcess:
    """``python -c CODE`` in the repository; the timeout guards against a hang, it is no speed bar."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)


def test_every_subcommand_has_its_module_main():
    parser = build_parser()
    expected = {"list": listing, "crosscheck": crosscheck, "speed": speed, "train": train, "run": run,
                "report": report, "check": check}
    argv = {"list": ["list", "models"], "train": ["train", "regular"], "report": ["report", "DIR"]}
    for name, module in expected.items():
        args = parser.parse_args(argv.get(name, [name]))
        assert args.handler is module.main, name


def test_parser_and_help_do_not_import_torch():
    proc = _python("import sys; from honestbench.cli.main import build_parser; build_parser(); "
                   "assert 'torch' not in sys.modules")
    assert proc.returncode == 0, proc.stderr
    proc = _python("import sys\nfrom honestbench.cli.main import main\ntry:\n    main(['--help'])\n"
                   "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch loaded'")
    assert proc.returncode == 0, proc.stderr
    assert "usage: bench" in proc.stdout


@pytest.mark.skipif(not (REPO_ROOT / "results" / "ci" / "records.json").is_file(), reason="no results/ci")
def test_report_redraws_without_torch(tmp_path):
    """`bench report` reads records and matrices only: the same leaderboard, and torch never loaded."""
    copy = tmp_path / "ci"
    shutil.copytree(REPO_ROOT / "results" / "ci", copy)
    proc = _python(f"import sys\nfrom honestbench.cli.main import main\nassert main(['report', {str(copy)!r}]) == 0\n"
                   "assert 'torch' not in sys.modules, 'torch loaded'")
    assert proc.returncode == 0, proc.stderr
    old = (REPO_ROOT / "results" / "ci" / "leaderboard.md").read_text()
    new = (copy / "leaderboard.md").read_text()
    assert new == old.replace("bench report results/ci", f"bench report {copy}")
