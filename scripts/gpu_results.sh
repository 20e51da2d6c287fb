#!/usr/bin/env bash
# The prepared GPU job that made the committed leaderboards (device tool; CPU users run the same
# `bench run` commands without --device): `standard` and `seed-table1` (full matrix, all 1,017 exact test
# images) and `adaptive --diagnose` (first ADAPTIVE_N images) for every model. One process per (suite, model),
# side by side on one GPU (each alone leaves it mostly idle), all writing resumable cells into the same
# results/<suite>; the last process of a suite rewrites records + leaderboard from every matrix present.
# results/<suite> is packed into $OUT every 20 s, so a timeout still brings back every finished cell.
#   carry: .carry_eval (cifar10_exact.npz) and .whl (torchattacks wheel)
#   usage: BENCH_GIT_COMMIT=$(git rev-parse HEAD) DEADLINE=270 ADAPTIVE_N=256 bash scripts/gpu_results.sh
set -u
cd "$(dirname "$0")/.."
export BENCH_DATA_DIR="$PWD/.carry_eval/data" BENCH_CACHE_DIR=/tmp/bench-cache PYTHONUNBUFFERED=1 MPLBACKEND=Agg
OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT" results/logs
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH="/tmp/site:$PWD" || exit 3
SUITES="standard seed-table1 adaptive"
pack() { for d in $SUITES logs; do [ -d "results/$d" ] && tar czf "$OUT/$d.tmp" -C results "$d" && mv "$OUT/$d.tmp" "$OUT/$d.tar.gz"; done; }
( while sleep 20; do pack; done ) &
packer=$!
start=$(date +%s)
MODELS=$(python3 -c "from bench.zoo import list_cards; print(' '.join(c.name for c in list_cards() if c.trained))")
echo "models: $MODELS"
pids=()
for m in $MODELS; do
  for s in $SUITES; do
    case $s in
      adaptive) extra=(--diagnose --n "${ADAPTIVE_N:-256}");;
      *) extra=(--full-matrix);;
    esac
    timeout "${DEADLINE:-270}" python3 -m bench run --device cuda --quiet --models "$m" --suite "$s" "${extra[@]}" \
      --out "results/$s" > "results/logs/${s}_$m.txt" 2>&1 &
    pids+=($!)
  done
done
for p in "${pids[@]}"; do wait "$p"; done
echo "gpu_results: runs done after $(( $(date +%s) - start )) s"
grep -l "Traceback\|error" results/logs/*.txt | head; tail -n 2 results/logs/*.txt | tail -80
kill "$packer" 2>/dev/null; pack
echo "gpu_results: finished in $(( $(date +%s) - start )) s"; ls -la "$OUT"
