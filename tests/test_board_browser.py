"""The HTML board (``leaderboard.html``) in a real browser: headless Chromium opens a board drawn from a small run
(digits, three tiny models, the ``ci`` suite on 48 images, one row given a flag and a paper in its records) and
checks that the page is no wider than a 1,280 px window (also with every model section open), that clicking the
worst-case header reorders the rows by worst case, that ``?sort=-worst`` sorts on load, that every in-page link
(each flag, each model) resolves to an element id, and that the flagged row is highlighted. A screenshot stays
in the test's temporary folder (``board.png``, printed) as a CI artifact.

Chromium is driven with ``--dump-dom`` (the DOM after the page's scripts ran) on a copy of the page with a small
probe script appended, and ``--screenshot``: no new dependency. Skipped when no Chromium is installed
(``apt-get install chromium``; ``.ci/run`` installs it); the checks on the page's text run without it.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from honestbench import report
from honestbench.data import load_eval
from honestbench.engine import runner
from honestbench.engine.options import EvalOptions
from honestbench.suites import get_suite
from honestbench.train.tiny import TinyDigitsNet, train_tiny_digits
from honestbench.zoo.source import ModelSource

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: `apt-get install chromium` "
                                                             "(.ci/run installs it) to test the HTML board")
WIDTH = 1280
FLAG = "adaptive-stronger: surrogate-PGD 10.0 % < PGD 50.0 % (methods.md, Evaluation integrity #4)"
PAPER = "https://arxiv.org/abs/1706.06083"

PROBE = """<script>
(function () {
  function order() {
    return Array.prototype.map.call(document.querySelectorAll("#board tbody tr"),
                                    function (r) { return r.getAttribute("data-model"); });
  }
  function click(key) { document.querySelector('#board th[data-key="' + key + '"] button').click(); }
  var root = document.documentElement, out = {window: window.innerWidth};
  out.width = root.scrollWidth; out.client = root.clientWidth;
  out.initial = order(); click("model"); out.byName = order(); click("worst"); out.byWorst = order();
  Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) { d.open = true; });
  out.widthOpen = root.scrollWidth;
  var links = document.querySelectorAll('a[href^="#"]');
  out.links = links.length; out.flagLinks = document.querySelectorAll("#board a.flag").length;
  out.broken = Array.prototype.filter.call(links, function (a) {
    return !document.getElementById(decodeURIComponent(a.getAttribute("href").slice(1)));
  }).map(function (a) { return a.getAttribute("href"); });
  var colour = function (sel) { return getComputedStyle(document.querySelector(sel)).backgroundColor; };
  out.flaggedColour = colour("#board tr.flagged"); out.plainColour = colour("#board tr:not(.flagged)");
  var pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def _chromium(profile: Path, url: str, *extra: str, window: str = f"{WIDTH},900") -> str:
    """Run headless Chromium on ``url`` with a fresh profile; its stdout (the DOM with ``--dump-dom``)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--window-size={window}", *extra, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)  # a guard against a hang only
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def board(tmp_path_factory, tiny_digits_model) -> Path:
    """A results directory with its board: models 'a-untrained', 'b-2ep' and 'c-tiny' (names sorted unlike
    their robustness), 'b-2ep' flagged and given a paper and venue."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = TinyDigitsNet().eval()
    weak = train_tiny_digits(epochs=2)
    models = [ModelSource.of("a-untrained", untrained, checkpoint_sha256="a"),
              ModelSource.of("b-2ep", weak, checkpoint_sha256="b"),
              ModelSource.of("c-tiny", tiny_digits_model, checkpoint_sha256="c")]
    out = tmp_path_factory.mktemp("board")
    runner.run_models(models, get_suite("ci"), load_eval("digits", 48), out,
                      EvalOptions(batch_size=48, progress=False), command="bench run --suite ci", log=lambda s: None)
    records = json.loads((out / "records.json").read_text())
    for r in records["records"]:
        if r["model"] == "b-2ep" and r["attack"] == "PGD":
            r["warnings"] = FLAG
    (out / "records.json").write_text(json.dumps(records))
    card = out / "cells" / "b-2ep" / "model.json"
    card.write_text(json.dumps({**json.loads(card.read_text()), "paper": PAPER, "venue": "ICLR 2018"}))
    report.write_report(out)
    return out


def _probe(board: Path, tmp_path: Path) -> dict:
    page = (board / "leaderboard.html").read_text()
    probe = board / "probe.html"  # next to the board: its relative figure links resolve
    probe.write_text(page.replace("</body>", PROBE + "\n</body>"))
    dom = _chromium(tmp_path / "profile", probe.as_uri(), "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


@needs_chromium
def test_board_in_chromium(board, tmp_path):
    df = report.load(board)
    worst = df[df["attack"] == "worst-case"].set_index("model")["accuracy"]
    got = _probe(board, tmp_path)
    assert got["window"] == WIDTH and got["client"] <= WIDTH
    assert got["width"] <= got["client"] and got["widthOpen"] <= got["client"], got  # no horizontal scroll
    assert got["byName"] == ["a-untrained", "b-2ep", "c-tiny"]
    expected = sorted(got["byName"], key=lambda m: -worst[m])  # stable: ties keep the name order
    assert got["byWorst"] == expected and got["byWorst"] != got["byName"]
    assert got["initial"] == expected  # the board opens ranked by worst case
    assert got["flagLinks"] >= 1 and got["links"] > got["flagLinks"] and got["broken"] == []
    assert got["flaggedColour"] != got["plainColour"]

    dom = _chromium(tmp_path / "profile-2", (board / "leaderboard.html").as_uri() + "?sort=-worst", "--dump-dom")
    rows = re.findall(r'<tr[^>]*data-model="([^"]+)"', dom.split('id="matrix"')[0])
    assert rows == sorted(got["byName"], key=lambda m: worst[m])

    shot = tmp_path / "board.png"
    _chromium(tmp_path / "profile-3", (board / "leaderboard.html").as_uri(), f"--screenshot={shot}",
              "--hide-scrollbars", window=f"{WIDTH},1400")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"board screenshot: {shot}")


def test_board_leads_with_the_verdict(board):
    page = (board / "leaderboard.html").read_text()
    first = page.split('<table id="board"')[1].split("</thead>")[0]
    keys = re.findall(r'data-key="([^"]+)"', first)
    assert keys == ["rank", "model", "clean", "worst", "flags"]  # no AutoAttack or certified column in `ci`
    assert page.index('class="verdict"') < page.index('id="board"') < page.index('id="matrix"')
    flagged = re.search(r'<tr class="flagged" data-model="b-2ep">(.*?)</tr>', page, re.S)
    assert flagged and 'href="#flag-adaptive-stronger"' in flagged.group(1)
    assert f'<a href="{PAPER}">ICLR 2018</a>' in flagged.group(1)
    assert 'id="flag-adaptive-stronger"' in page and "http" not in page.replace(PAPER, "")  # offline: no CDN
    for model in ("a-untrained", "b-2ep", "c-tiny"):
        assert f'<details class="model" id="model-{model}">' in page
        for prefix in ("bars", "confidence", "examples"):
            assert f'src="figures/{prefix}_{model}.png"' in page and (board / f"figures/{prefix}_{model}.png").is_file()
    assert not (board / "figures" / "accuracy_vs_eps.png").exists()  # one budget per attack: no eps curve
