#!/usr/bin/env bash
# The one prepared GPU job of a session (device tool): train the zoo in parallel processes on one GPU,
# then time the kernels on CUDA. Everything it makes is packed into $OUT/gpu_session.tar.part* (the device
# returns at most 8 files; see pack), packed again every 30 s so a timeout still brings back what is done.
#   carry: .carry (data: the two shipped npz files) and .whl (torchattacks wheel)
#   usage: TRAIN_MINUTES=6 bash scripts/gpu_session.sh
set -u
cd "$(dirname "$0")/.."
export BENCH_DATA_DIR="$PWD/.carry/data" BENCH_CACHE_DIR=/tmp/bench-cache PYTHONUNBUFFERED=1 MPLBACKEND=Agg
OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT" runs/gpu
TRAIN_MINUTES="${TRAIN_MINUTES:-6}"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PWD" || exit 3
else
  export PYTHONPATH="$PWD"
fi
PY=python3
# checkpoints (~1.7 MB each) can pass the 16 MiB-per-file limit together: split the archive into 15 MB parts
pack() {
  tar cf /tmp/gpu_session.tar models runs/gpu 2>/dev/null || return
  rm -f /tmp/gpu_part.*; split -b 15M -d /tmp/gpu_session.tar /tmp/gpu_part.
  rm -f "$OUT"/gpu_session.tar.part*; for f in /tmp/gpu_part.*; do mv "$f" "$OUT/gpu_session.tar.part${f##*.}"; done
}
( while sleep 30; do pack; done ) &
packer=$!
start=$(date +%s)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; $PY -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, torch.cuda.get_device_name(0))'; nproc; } 2>&1 | tee runs/gpu/machine.txt
$PY -c "from bench.data import load_train; print('train set', load_train('cifar10', progress=False).x.shape)" || exit 2
# one process per card: small CNNs leave most of an H200 idle, so the zoo trains side by side
CARDS="${CARDS:-regular pni smoothing gaussian-smoothing smoothing-pgd smoothing-pgd-fgsm smoothing-pgd-fgsm-cw smoothing-pgd-fgsm-cw-pni pgd-at slwta slwta-wrn34-1}"
pids=()
for c in $CARDS; do
  $PY scripts/train_zoo.py --cards "$c" --total-minutes "$TRAIN_MINUTES" > "runs/gpu/train_$c.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
echo "gpu_session: training done after $(( $(date +%s) - start )) s"
grep -h "train_zoo: done\|FAILED\|epochs" runs/gpu/train_*.log | tail -40
if [ "${SPEED:-1}" = 1 ]; then
  timeout "${SPEED_SECONDS:-100}" $PY -m bench speed --device cuda --json runs/gpu/speed_cuda.json > runs/gpu/speed_cuda.txt 2>&1
  echo "gpu_session: speed rc $?"; tail -30 runs/gpu/speed_cuda.txt
fi
kill "$packer" 2>/dev/null
pack
echo "gpu_session: finished in $(( $(date +%s) - start )) s"; ls -la "$OUT"
