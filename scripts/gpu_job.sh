#!/usr/bin/env bash
# The one prepared GPU job (device tool): issue 17's items 2-4 in priority order, each step resumable and under
# its own wall-clock budget, everything it makes under $JOB_DIR (default .carry/job: git-ignored, carried there
# and back; re-carry it and rerun the same command to continue where a timeout stopped it).
#   items: train (2: slwta-wrn34-1 30 epochs; smoothing-pgd-fgsm-cw and -pni 20/20; pgd-at, then its PGD-20 bar)
#          eval  (3: results/standard and results/adaptive on all 1,017 images, every model incl. the published
#                 checkpoint, AutoAttack-rand at full strength; cells already in results/ are reused)
#          speed (4: `bench speed --device cuda` on small, WRN-34-1, WRN-34-10 in fp32 and bf16; a 1-GPU
#                 torchrun (nccl) run of the ci suite compared with a plain run: one PASS/FAIL line)
#   usage: bash scripts/gpu_job.sh [ITEM...]          (default: train eval speed)
#          DRY_RUN=1 bash scripts/gpu_job.sh          (CPU, digits, a couple of batches: checks the plumbing)
#   env:   JOB_DIR, BENCH_DATA_DIR (default .carry/data, else /tmp/bench-data: see `stage`), DEVICE (cuda),
#          TRAIN_S / EVAL_S / SPEED_S (budget per step, seconds), DEADLINE_S (whole job), OUT (the device's
#          folder that comes back: $JOB_DIR is packed into it as job.tar.part* every 30 s and at the end).
#   stage: the tree (~42 MB) leaves no room for the training data (47 + 18 MB) in one call (64 MiB a call):
#          `bash scripts/gpu_job.sh split` here cuts .carry/data into .carry/stage/N/ parts; carry one part
#          per call with `bash scripts/gpu_job.sh stage` on a warm machine, which appends it to /tmp/bench-data.
# A step is done when $JOB_DIR/done/STEP exists; rc 124 (its budget ran out) leaves it to the next run.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
JOB_DIR=$(mkdir -p "${JOB_DIR:-.carry/job}" && cd "${JOB_DIR:-.carry/job}" && pwd)
mkdir -p "$JOB_DIR/logs" "$JOB_DIR/done" "$JOB_DIR/runs" "$JOB_DIR/results"
if [ -z "${BENCH_DATA_DIR:-}" ]; then
  if ls .carry/data/*.npz >/dev/null 2>&1; then BENCH_DATA_DIR=$ROOT/.carry/data; else BENCH_DATA_DIR=/tmp/bench-data; fi
fi
export BENCH_DATA_DIR BENCH_CACHE_DIR="${BENCH_CACHE_DIR:-/tmp/bench-cache}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY="${PYTHON:-python3}"; [ -x .venv/bin/python ] && PY="${PYTHON:-.venv/bin/python}"
if ls .whl/*.whl >/dev/null 2>&1; then  # wheels the device lacks (torchattacks)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$ROOT" || exit 3
fi
DRY="${DRY_RUN:-0}"
DEVICE="${DEVICE:-cuda}"; [ "$DRY" = 1 ] && DEVICE=cpu
START=$(date +%s)
DEADLINE_S="${DEADLINE_S:-570}"
log() { echo "gpu_job: $*" | tee -a "$JOB_DIR/logs/job.txt"; }

pack() {  # $JOB_DIR -> $OUT/job.tar.part00.. (the device returns files of at most 16 MiB)
  [ -n "${OUT:-}" ] || return 0
  tar cf /tmp/gpu_job.tar -C "$(dirname "$JOB_DIR")" "$(basename "$JOB_DIR")" 2>/dev/null || return 0
  rm -f /tmp/gpu_job_part.*; split -b 15M -d /tmp/gpu_job.tar /tmp/gpu_job_part.
  rm -f "$OUT"/job.tar.part*; for f in /tmp/gpu_job_part.*; do mv "$f" "$OUT/job.tar.part${f##*.}"; done
}

step() {  # step NAME BUDGET_S CMD...: run once to completion (resumable), within BUDGET_S and the deadline
  local name=$1 budget=$2; shift 2
  if [ -e "$JOB_DIR/done/$name" ]; then log "$name: done earlier, skipped"; return 0; fi
  local left=$(( DEADLINE_S - ($(date +%s) - START) ))
  [ "$left" -lt "$budget" ] && budget=$left
  if [ "$budget" -lt 10 ]; then log "$name: no time left"; return 124; fi
  log "$name: start (budget ${budget}s)"
  local t0; t0=$(date +%s)
  timeout "$budget" "$@" >> "$JOB_DIR/logs/$name.txt" 2>&1
  local rc=$?
  log "$name: rc $rc after $(( $(date +%s) - t0 ))s"
  [ "$rc" = 0 ] && touch "$JOB_DIR/done/$name"
  return "$rc"
}

train_card() {  # train_card CARD EPOCHS BATCH: fixed schedule, resumed from $JOB_DIR/runs, LR scaled to the batch
  local card=$1 epochs=$2 batch=$3 extra=()
  [ "$DRY" = 1 ] && { epochs=1; batch=32; extra=(--dataset digits --max-batches 2 --out-dir "$JOB_DIR/ckpt"); }
  local minutes; minutes=$($PY -c "print(max(0.2, (${TRAIN_S:-1800} - 30) / 60))")
  step "train-$card" "${TRAIN_S:-1800}" $PY scripts/train_zoo.py --cards "$card" --epochs "$epochs" \
    --batch-size "$batch" --scale-lr --resume --runs-dir "$JOB_DIR/runs" --device "$DEVICE" \
    --total-minutes "$minutes" --copy-to "$JOB_DIR" "${extra[@]}"
}

item_train() {  # TRAIN_CARDS: a subset of the plan (card:epochs:batch), in this order
  local plan="${TRAIN_CARDS:-slwta-wrn34-1:30:256 smoothing-pgd-fgsm-cw:20:512 smoothing-pgd-fgsm-cw-pni:20:512
    pgd-at:${PGD_AT_EPOCHS:-40}:512}" entry
  for entry in $plan; do train_card ${entry//:/ }; done
  [ "$DRY" = 1 ] && return 0  # the bar needs the CIFAR-10 checkpoint the dry run does not write
  step bar-pgd-at "${EVAL_S:-900}" $PY scripts/quality_bar.py --models pgd-at --seeds 1 --update-card \
    --out "$JOB_DIR/results/quality_bar" && cp honestbench/zoo/models/pgd-at.toml "$JOB_DIR/honestbench/zoo/models/"
}

item_eval() {
  local models suite suite_arg m pids extra n=()
  models=$($PY -c "from honestbench.zoo import list_cards; print(' '.join(c.name for c in list_cards() if c.trained))")
  [ "$DRY" = 1 ] && { models=regular; n=(--n 4); }
  for suite in standard adaptive; do
    [ -d "$JOB_DIR/results/$suite" ] || { [ "$DRY" = 1 ] || cp -r "results/$suite" "$JOB_DIR/results/"; }
    extra=(--full-matrix); [ "$suite" = adaptive ] && extra=(--diagnose)
    suite_arg=$suite; [ "$DRY" = 1 ] && suite_arg=ci
    pids=()
    for m in $models; do  # one process per model, side by side (each alone leaves an H200 mostly idle)
      step "eval-$suite-$m" "${EVAL_S:-900}" $PY -m honestbench run --device "$DEVICE" --quiet --models "$m" \
        --suite "$suite_arg" "${extra[@]}" "${n[@]}" --out "$JOB_DIR/results/$suite" &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
  done
}

item_speed() {  # item 4: PGD-10 cost (ours / limit / torchattacks / ART) on 3 archs in fp32 and bf16 + precision
  # check; then the 1-GPU nccl check: a 1-process torchrun of `bench run` (BENCH_DIST_FORCE=1: the distributed
  # path, process group nccl on cuda / gloo on cpu) against the same command without torchrun, compared by
  # scripts/compare_records.py (one PASS/FAIL line, also in logs/job.txt; a second plain run is the control that
  # tells GPU non-reproducibility from a distributed-path difference)
  local sp=(--archs small,wrn-34-1,wrn-34-10 --precision fp32,bf16 --quick)  # --quick: item 4's sections only
  [ "$DRY" = 1 ] && sp=(--archs small --precision fp32,bf16 --quick --repeats 1 --batch 2 --n 4)
  step speed "${SPEED_S:-300}" $PY -m honestbench speed --device "$DEVICE" "${sp[@]}" \
    --json "$JOB_DIR/results/speed_$DEVICE.json"
  local run=(run --device "$DEVICE" --quiet --models regular,slwta --suite ci --n 128 --no-report)
  [ "$DRY" = 1 ] && run=(run --device "$DEVICE" --quiet --models regular,slwta --suite ci --n 8 --no-report)
  local backend=nccl; [ "$DEVICE" = cpu ] && backend=gloo
  step distributed "${SPEED_S:-300}" env BENCH_DIST_FORCE=1 $PY -m torch.distributed.run --standalone \
    --nproc_per_node 1 -m honestbench -- "${run[@]}" --out "$JOB_DIR/results/distributed/torchrun-$backend"
  step distributed-plain "${SPEED_S:-300}" $PY -m honestbench "${run[@]}" --out "$JOB_DIR/results/distributed/plain"
  step distributed-plain2 "${SPEED_S:-300}" $PY -m honestbench "${run[@]}" --out "$JOB_DIR/results/distributed/plain2"
  step distributed-compare 60 $PY scripts/compare_records.py "$JOB_DIR/results/distributed/plain" \
    "$JOB_DIR/results/distributed/torchrun-$backend" --label "1-process torchrun ($backend)" \
    --control "$JOB_DIR/results/distributed/plain2"
  log "distributed-compare: $(tail -n 1 "$JOB_DIR/logs/distributed-compare.txt" 2>/dev/null)"
}

case "${1:-}" in
  split)  # here: the data files -> .carry/stage/N/data.tar.N (20 MB parts) + the number of parts
    rm -rf .carry/stage; mkdir -p .carry/stage
    tar cf - -C "${SRC_DATA:-../shared/data}" cifar10_exact.npz cifar10_train_jpeg.npz slwta_wrn34_1_panousis2021.pt \
      | split -b 20M -d - .carry/stage/data.tar.
    parts=$(ls .carry/stage/data.tar.* | wc -l)
    for f in .carry/stage/data.tar.*; do d=.carry/stage/${f##*.}; mkdir -p "$d"; mv "$f" "$d/"; echo "$parts" > "$d/parts"; done
    ls -R .carry/stage; exit 0;;
  stage)  # on a warm device: keep the carried part(s) in /tmp/bench-data; unpack once every part is there
    mkdir -p /tmp/bench-data/parts; cp .carry/stage/*/data.tar.* .carry/stage/*/parts /tmp/bench-data/parts/
    have=$(ls /tmp/bench-data/parts/data.tar.* | wc -l)
    if [ "$have" = "$(cat /tmp/bench-data/parts/parts)" ]; then
      cat /tmp/bench-data/parts/data.tar.* | tar xf - -C /tmp/bench-data && rm -rf /tmp/bench-data/parts
    fi
    ls -la /tmp/bench-data; exit 0;;
esac

ITEMS="${*:-train eval speed}"
( while sleep 30; do pack; done ) &
packer=$!
log "items: $ITEMS; device $DEVICE; data $BENCH_DATA_DIR; job dir $JOB_DIR; dry run $DRY"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null; \
  $PY -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__)'; } \
  >> "$JOB_DIR/logs/machine.txt" 2>&1
for item in $ITEMS; do "item_$item"; done
kill "$packer" 2>/dev/null
pack
log "finished in $(( $(date +%s) - START ))s; done steps: $(ls "$JOB_DIR/done" | tr '\n' ' ')"
