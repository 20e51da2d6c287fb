"""`bench report`: leaderboard tables, the HTML board and figures redrawn from records alone (no attack, no model);
the board in a browser is tests/test_board_browser.py."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest

from honestbench import report
from honestbench.attacks.base import Attack
from honestbench.data import load_eval
from honestbench.engine import cascade as engine
from honestbench.engine import runner
from honestbench.engine.options import EvalOptions
from honestbench.suites import Entry, Suite, get_suite
from honestbench.train.tiny import train_tiny_digits
from honestbench.zoo.source import ModelSource

PLATFORM_SMALL = Suite("platform-small", "test: L2 and L-inf PGD", (
    Entry("PGD-L2", "pgd-l2", {"eps": 1.0, "steps": 5}),
    Entry("PGD", "pgd-linf", {"eps": 0.15, "alpha": 0.04, "steps": 5}),
), aggregates={"PGD-L2+Linf": ["PGD-L2", "PGD"]}, full_matrix=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_digits_model):
    tiny = tiny_digits_model
    other = train_tiny_digits(epochs=2)  # a weaker second row
    data = load_eval("digits", 48)
    models = [ModelSource.of("tiny", tiny, checkpoint_sha256="a"),
              ModelSource.of("tiny-2ep", other, checkpoint_sha256="b")]
    dirs = {}
    for suite in (get_suite("seed-table1"), PLATFORM_SMALL):
        out = tmp_path_factory.mktemp(suite.name)
        runner.run_models(models, suite, data, out, EvalOptions(batch_size=32, progress=False),
                          command=f"bench run {suite.name}", log=lambda s: None)
        report.write_report(out)
        dirs[suite.name] = out
    return dirs


def test_table1_and_budget_note(runs):
    text = (runs["seed-table1"] / "leaderboard.md").read_text()
    assert "# Leaderboard: suite `seed-table1`" in text and "`bench run seed-table1`" in text
    header = next(line for line in text.splitlines() if line.startswith("| Model"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[:6] == ["Model", "Natural", "PGD", "FGSM", "CW", "Worst case"] and cols[-1] == "Warnings"
    # the report's PGD: 3 steps of 0.01 cannot leave a 0.03 box
    assert "3 steps of 0.01 from the clean image (no random start) cannot leave a 0.03 box" in text
    assert "effectively 0.03" in text
    assert "Table 2" not in text  # no L2 + L-inf PGD pair in this suite
    assert "early exit" in text
    # early exit: a bounded column is no number in Table 1, the worst case is, and one line explains it
    df = report.load(runs["seed-table1"])
    table = [line for line in text.split("## Robust accuracy")[1].split("\n\n")[2].splitlines()][2:]
    bounded = df[~df["exact"].astype(bool)]
    assert len(bounded) > 0 and all(line.count("bounded *") <= len(cols) for line in table)
    assert sum(line.count("bounded *") for line in table) == len(bounded)
    assert "<=" not in "\n".join(table) and "\\* bounded (early exit)" in text
    for line in table:
        worst = line.strip("|").split("|")[cols.index("Worst case")].strip()
        assert worst[0].isdigit() and "[" in worst  # a number with its 95 % interval


def test_table2_is_intersection_not_sum(runs):
    df = report.load(runs["platform-small"])
    text = (runs["platform-small"] / "leaderboard.md").read_text()
    assert "(Table 2)" in text and "per sample" in text
    for _, g in df.groupby("model"):
        by = g.set_index("attack")["accuracy"]
        assert by["PGD-L2+Linf"] <= min(by["PGD-L2"], by["PGD"])
        assert by["worst-case"] <= by["PGD-L2+Linf"]


def test_figures_are_pngs(runs):
    figs = runs["seed-table1"] / "figures"
    names = sorted(p.name for p in figs.iterdir())
    # one budget per attack: per-model bars, no accuracy-against-eps curve
    assert names == ["bars_tiny-2ep.png", "bars_tiny.png", "confidence.png", "confidence_tiny-2ep.png",
                     "confidence_tiny.png", "examples_tiny-2ep.png", "examples_tiny.png"]
    for p in figs.iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000


def test_report_redraws_without_running_anything(runs, monkeypatch, tmp_path):
    import honestbench.zoo as zoo
    from honestbench.cli.main import main

    src = runs["seed-table1"]
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    before = (src / "leaderboard.md").read_text().replace(str(src), str(out))
    shutil.rmtree(out / "figures")
    (out / "leaderboard.md").unlink()

    def forbidden(*a, **k):
        raise AssertionError("bench report must not run an attack or load a model")

    monkeypatch.setattr(Attack, "__call__", forbidden)
    monkeypatch.setattr(engine, "evaluate", forbidden)
    monkeypatch.setattr(runner, "evaluate", forbidden)
    monkeypatch.setattr(zoo, "load_card_model", forbidden)
    monkeypatch.setattr(zoo, "evaluation_model", forbidden)
    board = (src / "leaderboard.html").read_text().replace(str(src), str(out))
    (out / "leaderboard.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "leaderboard.md").read_text() == before
    assert (out / "leaderboard.html").read_text() == board  # byte for byte: nothing drawn from the clock
    assert len(list((out / "figures").glob("*.png"))) == 7


def _add_column(records: list[dict], like: str, label: str, kernel: str, accuracy: float) -> list[dict]:
    """``records`` with a copy of every ``like`` row as column ``label`` (kernel ``kernel``, accuracy set)."""
    extra = [{**r, "attack": label, "kernel": kernel, "accuracy": accuracy} for r in records if r["attack"] == like]
    return records + extra


def test_board_finds_autoattack_and_certified_columns_by_role(runs, tmp_path):
    out = tmp_path / "roles"
    shutil.copytree(runs["seed-table1"], out)
    data = json.loads((out / "records.json").read_text())
    data["records"] = _add_column(_add_column(data["records"], "PGD", "AutoAttack", "autoattack", 0.25),
                                  "PGD", "certified", "crown", 0.125)
    (out / "records.json").write_text(json.dumps(data))
    report.write_report(out)
    page = (out / "leaderboard.html").read_text()
    head = page.split('<table id="board"')[1].split("</thead>")[0]
    assert re.findall(r'data-key="([^"]+)"', head) == ["rank", "model", "clean", "worst", "autoattack", "certified",
                                                       "flags"]
    row = page.split('<table id="board"')[1].split("</table>")[0].split("<tbody>")[1].split("</tr>")[0]
    assert row.count('data-v="25.000000"') == 1 and row.count('data-v="12.500000"') == 1


def test_eps_curve_only_for_several_budgets_of_one_attack(runs, tmp_path):
    from honestbench.report import figures

    df = report.load(runs["seed-table1"])
    assert figures.eps_figure(df, tmp_path / "one.png")[0] is None
    pgd = df[df["attack"] == "PGD"].copy()
    pgd["attack"], pgd["eps_effective"] = "PGD@16", 2 * pgd["eps_effective"]
    path, _ = figures.eps_figure(pd.concat([df, pgd], ignore_index=True), tmp_path / "sweep.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
