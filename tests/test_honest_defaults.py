"""Issue 15, "honest by default": the default ``ci`` suite gives a stochastic model its surrogate-PGD column and
the record checks run on every run, so a gradient-masking toy model is flagged without ``--diagnose``; a plain
deterministic model gets no extra column and no flag. Also the leaderboard's layout (worst case last, Wilson
intervals, ``--sort``), its HTML twin, the terminal summary and the default output folder."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from torch import nn

from honestbench import report
from honestbench.cli.main import main as cli_main
from honestbench.core.errors import BenchError
from honestbench.data import load_eval, load_train
from honestbench.engine.options import EvalOptions
from honestbench.nets.layers.stochastic import StochasticLayer
from honestbench.pipeline import run as run_tool
from honestbench.report.summary import summary_text
from honestbench.results import load
from honestbench.suites import DEFAULT_SUITE, get_suite, model_suite
from honestbench.suites.model import surrogate_twin
from honestbench.zoo.source import ModelSource


class HardRandomRound(StochasticLayer):
    """A hard random activation at (near) zero temperature: every input pixel is rounded up or down to a grid
    of ``levels`` values at random (up with probability equal to its distance from the lower grid value, so
    the output's expectation is the input). Its gradient is zero almost everywhere: gradient attacks on the
    real layer cannot move, while its surrogate (the identity, its expectation) gives the true gradient."""

    def __init__(self, levels: int = 256):
        super().__init__()
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_surrogate:
            return x
        k = self.levels - 1
        return torch.floor(x * k + torch.rand_like(x)) / k  # floor has zero gradient: masked


def fragile_linear(seed: int = 0) -> nn.Module:
    """A linear classifier of the 8x8 digits (about 94 % clean, about 84 % under PGD-10 at 8/255 on the
    first 128 images): fragile enough at the ``ci`` budget that a masked copy shows a clear gap."""
    train = load_train("digits")
    x = torch.from_numpy(train.x).permute(0, 3, 1, 2).float().div_(255.0)
    y = torch.from_numpy(train.y)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):  # full batch: 1,400 images, well under a second
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval().requires_grad_(False)


def _run(tmp: Path, models: list[ModelSource], n: int = 128) -> Path:
    data = load_eval("digits", n)
    out = tmp / "run"
    run_tool.evaluate_and_diagnose(models, get_suite(DEFAULT_SUITE), data, out,
                                   EvalOptions(batch_size=64, progress=False, passes=2), command="bench run test",
                                   data_source="npz", log=lambda s: None)
    report.write_report(out)
    return out


@pytest.fixture(scope="module")
def honest_run(tmp_path_factory) -> Path:
    plain = fragile_linear()
    masked = nn.Sequential(HardRandomRound(), plain).eval()
    return _run(tmp_path_factory.mktemp("honest"), [
        ModelSource.of("masked", masked, checkpoint_sha256="m"),
        ModelSource.of("plain", plain, checkpoint_sha256="p")])


def test_masked_model_gets_surrogate_column_and_flag(honest_run):
    df = load(honest_run)
    masked = df[df["model"] == "masked"].set_index("attack")
    assert bool(masked["stochastic"].all())
    assert "surrogate-PGD" in masked.index
    # the masked layer stops PGD, the surrogate does not: the record check must say so on the PGD row
    assert masked.loc["surrogate-PGD", "accuracy"] < masked.loc["PGD", "accuracy"] - 0.05
    assert "adaptive-stronger" in str(masked.loc["PGD", "warnings"])
    assert masked.loc["worst-case", "accuracy"] <= masked.loc["surrogate-PGD", "accuracy"]


def test_plain_model_gets_nothing_extra(honest_run):
    df = load(honest_run)
    plain = df[df["model"] == "plain"]
    assert list(plain["attack"]) == ["clean", "FGSM", "PGD", "noise", "worst-case"]
    assert not plain["warnings"].fillna("").str.strip().any()
    assert model_suite(get_suite("ci"), False) is get_suite("ci")


def test_surrogate_twin_copies_the_pgd_budget():
    for name in ("ci", "platform", "seed-table1"):
        suite = get_suite(name)
        pgd = next(e for e in suite.entries if e.label == "PGD")
        twin = surrogate_twin(suite)
        assert twin.attack == "surrogate-pgd" and twin.label == "surrogate-PGD"
        for k in ("eps", "alpha", "steps", "random_start"):
            assert twin.params[k] == pgd.params[k], (name, k)
    # suites with an adaptive column already (standard, adaptive) get no twin
    std = model_suite(get_suite("standard"), True, "slwta", "cifar10")
    assert [e.label for e in std.entries].count("surrogate-PGD") == 1


def test_leaderboard_layout_worst_case_last_with_intervals(honest_run):
    md = (honest_run / "leaderboard.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Model"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells[-2:] == ["Worst case", "Warnings"]
    row = next(line for line in md.splitlines() if line.startswith("| plain"))
    worst = load(honest_run).query("model == 'plain' and attack == 'worst-case'").iloc[0]
    assert f"[{100 * worst['ci_lo']:.1f}, {100 * worst['ci_hi']:.1f}]" in row
    assert "adaptive-stronger" in md and "The record checks (FGSM vs PGD" in md


class _Tables(HTMLParser):
    """Collects every table of a page as rows of cell texts."""

    def __init__(self):
        super().__init__()
        self.tables, self.imgs, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.imgs.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None


def test_html_page_holds_the_tables_and_figures(honest_run):
    page = _Tables()
    page.feed((honest_run / "leaderboard.html").read_text())
    board, matrix = page.tables[0], page.tables[1]  # the board (verdict columns), then every column
    assert board[0][0].startswith("Rank") and board[0][-1].startswith("Flags")
    rows = {r[1].split()[0]: r for r in board[1:]}
    assert set(rows) == {"masked", "plain"} and "(stochastic)" in rows["masked"][1]
    assert "adaptive-stronger" in rows["masked"][-1] and rows["plain"][-1] == "none"
    md_row = next(line for line in (honest_run / "leaderboard.md").read_text().splitlines()
                  if line.startswith("| plain"))
    md_acc = [c.strip().split()[0] for c in md_row.strip("|").split("|")[1:-1]]
    assert [c[:len(a)] for c, a in zip(next(r for r in matrix if r[0] == "plain")[1:], md_acc, strict=True)] == md_acc
    assert "figures/examples_plain.png" in page.imgs and "figures/bars_plain.png" in page.imgs
    assert all((honest_run / src).is_file() for src in page.imgs)


def test_sort_orders_rows_and_refuses_unknown_keys(honest_run, tmp_path):
    df = load(honest_run)
    worst = df[df["attack"] == "worst-case"].set_index("model")["accuracy"]
    ranked = list(dict.fromkeys(report.sort_models(df, "worst-case")["model"]))
    assert ranked == sorted(worst.index, key=lambda m: -worst[m])
    assert list(dict.fromkeys(report.sort_models(df, "model")["model"])) == ["masked", "plain"]
    with pytest.raises(BenchError, match="--sort 'bogus'"):
        report.sort_models(df, "bogus")
    copy = tmp_path / "copy"
    shutil.copytree(honest_run, copy)
    assert cli_main(["report", str(copy), "--sort", "bogus"]) == 2
    assert cli_main(["report", str(copy), "--sort", "PGD"]) == 0
    table = [line for line in (copy / "leaderboard.md").read_text().splitlines() if line.startswith("| ")][1:]
    pgd = df[df["attack"] == "PGD"].set_index("model")["accuracy"]
    assert table[0].split("|")[1].strip().split()[0] == pgd.idxmax()


def test_summary_is_short_and_says_where_the_leaderboard_is(honest_run):
    text = summary_text(honest_run, seconds=1.5, hint="the full one: bench run --out runs/standard")
    lines = text.splitlines()
    assert lines[0].split() == ["model", "clean", "%", "worst", "case", "%", "[95", "%", "CI]", "flags"]
    masked = next(line for line in lines if line.startswith("masked"))
    assert "adaptive-stronger" in masked
    plain = next(line for line in lines if line.startswith("plain"))
    assert plain.rstrip().endswith("none")
    assert str(honest_run / "leaderboard.md") in text and "leaderboard.html" in text
    assert lines[-1].endswith("runs/standard") and "| Model" not in text  # not the markdown


def test_default_out_and_hint_never_name_committed_results():
    assert run_tool.DEFAULT_OUT.parent.name == "runs"
    assert "results/" not in run_tool.FULL_COMMAND and "--out runs/" in run_tool.FULL_COMMAND
    assert Path("runs") / "latest" == run_tool.DEFAULT_OUT  # relative to the working folder
