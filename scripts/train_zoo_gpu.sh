#!/usr/bin/env bash
# Train the whole zoo on one GPU in one job (~8 minutes): every small-CNN card, then slwta-wrn34-1 for as
# many epochs as fit, each with --update-card. Checkpoints, updated cards and a JSON log are copied to $OUT
# after every card (so a timeout keeps what is done); copy them back into models/ afterwards.
#   BENCH_DATA_DIR=.carry/data TOTAL_MINUTES=8 bash scripts/train_zoo_gpu.sh
# Robust: one card failing does not stop the others; if the Python process itself dies (e.g. a CUDA error),
# the cards not yet done are retried in a fresh process.
set -u
cd "$(dirname "$0")/.."
export BENCH_DATA_DIR="${BENCH_DATA_DIR:-.carry/data}"
export PYTHONUNBUFFERED=1
TOTAL_MINUTES="${TOTAL_MINUTES:-8}"
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && PY="${PYTHON:-.venv/bin/python}"
OUTDIR="${OUT:-runs/train_zoo_out}"
mkdir -p "$OUTDIR"
start=$(date +%s)
echo "train_zoo_gpu: python $($PY -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())')"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null || true
# decode the CIFAR-10 JPEGs once (cached) before the clock-sensitive part
$PY -c "from bench.data import load_train; t = load_train('cifar10', progress=False); print('train set', t.x.shape)" \
  || { echo "train_zoo_gpu: cannot load CIFAR-10 from $BENCH_DATA_DIR"; exit 2; }
CARDS="${CARDS:-}"
for attempt in 1 2; do
  used=$(( $(date +%s) - start ))
  left=$(python3 -c "print(max(0.0, $TOTAL_MINUTES - $used / 60))")
  echo "train_zoo_gpu: attempt $attempt, ${left} min left"
  if [ -n "$CARDS" ]; then
    $PY scripts/train_zoo.py --total-minutes "$left" --copy-to "$OUTDIR" --cards "$CARDS" 2>&1 | tee -a "$OUTDIR/train_zoo_stdout.txt"
  else
    $PY scripts/train_zoo.py --total-minutes "$left" --copy-to "$OUTDIR" 2>&1 | tee -a "$OUTDIR/train_zoo_stdout.txt"
  fi
  rc=${PIPESTATUS[0]}
  # rc 0 or 1: the driver finished (1 = some card failed, already reported); anything else: it died
  if [ "$rc" -le 1 ]; then break; fi
  # retry only the cards whose [result] sha256 is still empty
  CARDS=$($PY -c "from bench.zoo import list_cards; print(','.join(c.name for c in list_cards() if not c.trained and not c.external))")
  [ -z "$CARDS" ] && break
  echo "train_zoo_gpu: driver died (rc $rc); retrying: $CARDS"
done
echo "train_zoo_gpu: finished in $(( $(date +%s) - start )) s; results in $OUTDIR (models/, train_zoo_log.json)"
