#!/usr/bin/env bash
# CI, the package as a user gets it: build the wheel, install it (no extras) into a fresh venv outside the
# repository, check that ART was not pulled in, then from an empty folder run `bench list models` and
# `bench run --models all --n 16` (into ./runs/latest) twice:
#   1. with BENCH_DATA_DIR naming the shipped data (cifar10_exact.npz and the published SLWTA weights);
#   2. with BENCH_DATA_DIR unset and offline, the cache holding only a CIFAR-10 folder in torchvision's own format
#      (written from the shipped file by the installed package) and the SLWTA weights as a fetch leaves them;
# and check that the two runs' records agree apart from the data source and timings.
#
#   BENCH_DATA_DIR=/path/to/shared/data bash scripts/ci_wheel.sh      (from a checkout; about 2-4 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BENCH_DATA_DIR:?set BENCH_DATA_DIR to the folder with cifar10_exact.npz and the SLWTA weights}"
DATA=$(cd "$BENCH_DATA_DIR" && pwd)
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/honestbench-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
t0=$(date +%s)
lap() { echo "   ($(( $(date +%s) - t0 )) s so far)"; }

echo "== wheel (pip wheel --no-deps)"
"$PY" -m pip wheel -q --no-deps -w "$WORK/dist" . >/dev/null
WHEEL=$(ls "$WORK"/dist/honestbench-*.whl)
"$PY" - "$WHEEL" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
cards = [n for n in names if n.startswith("honestbench/zoo/models/") and n.endswith(".toml")]
ckpts = [n for n in names if n.startswith("honestbench/zoo/models/ckpt/") and n.endswith(".pt")]
assert cards and ckpts, "the wheel has no zoo"
assert not any(n.startswith(("tests/", "results/", "scripts/")) for n in names)
print(f"   {sys.argv[1].rsplit('/', 1)[-1]}: {len(cards)} cards, {len(ckpts)} checkpoints")
EOF
lap

echo "== fresh venv outside the repository, pip install of the wheel (no extras)"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "$WHEEL"
if "$WORK/venv/bin/pip" show adversarial-robustness-toolbox >/dev/null 2>&1; then
  echo "CI: pip install of the wheel pulled in ART (adversarial-robustness-toolbox)"; exit 1
fi
echo "   no ART installed"
lap

BENCH="$WORK/venv/bin/bench"
mkdir "$WORK/empty" "$WORK/cache-a" "$WORK/cache-b"
cd "$WORK/empty"
export MPLBACKEND=Agg
where=$("$WORK/venv/bin/python" -c "import honestbench; print(honestbench.__file__)")
case "$where" in "$WORK/venv/"*) echo "   honestbench imported from $where";;
  *) echo "CI: honestbench imported from $where, not from the venv"; exit 1;; esac

echo "== 1. shipped data (BENCH_DATA_DIR)"
env BENCH_DATA_DIR="$DATA" BENCH_CACHE_DIR="$WORK/cache-a" BENCH_OFFLINE=1 "$BENCH" list models >/dev/null
env BENCH_DATA_DIR="$DATA" BENCH_CACHE_DIR="$WORK/cache-a" BENCH_OFFLINE=1 "$BENCH" run --models all --n 16 --quiet
[ -f runs/latest/records.json ] || { echo "CI: bench run did not write ./runs/latest"; exit 1; }
lap

echo "== 2. BENCH_DATA_DIR unset: torchvision-format folder and fetched weights in the cache, offline"
BENCH_DATA_DIR="$DATA" BENCH_CACHE_DIR="$WORK/cache-b" "$WORK/venv/bin/python" - <<'EOF'
import os
from pathlib import Path
import numpy as np
from honestbench.data import CIFAR10_CLASSES, EXACT_FILE, tvformat
e = np.load(Path(os.environ["BENCH_DATA_DIR"]) / EXACT_FILE)
print("   wrote", tvformat.write_folder(os.environ["BENCH_CACHE_DIR"], e["x_test"], e["y_test"], CIFAR10_CLASSES))
EOF
cp "$DATA/slwta_wrn34_1_panousis2021.pt" "$WORK/cache-b/"
env -u BENCH_DATA_DIR BENCH_CACHE_DIR="$WORK/cache-b" BENCH_OFFLINE=1 "$BENCH" list models >/dev/null
env -u BENCH_DATA_DIR BENCH_CACHE_DIR="$WORK/cache-b" BENCH_OFFLINE=1 \
  "$BENCH" run --models all --n 16 --quiet --out run-tv
lap

echo "== records of 1 and 2 agree apart from the data source and timings"
"$WORK/venv/bin/python" - <<'EOF'
import json
skip = {"data_source", "date", "seconds", "clean_seconds", "ms_per_image_b1", "ms_per_image_b256", "command",
        "commands"}
def load(d):
    r = json.load(open(f"{d}/records.json"))
    return ({k: v for k, v in r["run"].items() if k not in skip},
            [{k: v for k, v in row.items() if k not in skip} for row in r["records"]], r["run"]["data_source"])
a, b = load("runs/latest"), load("run-tv")
assert (a[2], b[2]) == ("npz", "torchvision"), (a[2], b[2])
assert json.dumps(a[0], sort_keys=True) == json.dumps(b[0], sort_keys=True), "run info differs"
assert json.dumps(a[1], sort_keys=True) == json.dumps(b[1], sort_keys=True), "records differ"
print(f"   {len(a[1])} records equal (sources: {a[2]} / {b[2]})")
EOF
echo "CI wheel check passed in $(( $(date +%s) - t0 )) s"
