#!/usr/bin/env bash
# Every stage of benchmarks/ofa.py in order, two one-thread processes at a time (one per core), once
# `deepslim nas supernet --out $DIR` has finished (it waits for that). Latencies are timed with nothing else
# running. benchmarks/ofa_scratch.py and the `alone` stage train without the supernet and run before it
# (see BENCHMARKS.md).
#   bash benchmarks/ofa_all.sh runs/ofa
set -euo pipefail
DIR=${1:-runs/ofa}
R=${RESULTS:-benchmarks/results}
WORK=${WORK:-runs/ofa-bench}
PY=${PYTHON:-.venv/bin/python}
EXTRA=${EXTRA:-}   # e.g. "--val-images 300" for a smoke run
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT   # a failed stage stops the other lane too
# finished: the supernet is saved and the training checkpoint removed
until [ -d "$DIR/supernet" ] && [ ! -f "$DIR/checkpoint.pt" ]; do sleep 30; done
[ -f "$DIR/latency.json" ] || $PY -m deepslim nas latency-table "$DIR" --threads 1 --quiet
# Resumable: a stage whose JSON exists is done (stages write it once, at their end); fine-tunes skip the
# subnets already in theirs. Delete a stage's JSON to run it again.
stage() {  # stage NAME ARGS...: benchmarks/ofa.py NAME unless $R/ofa_NAME.json exists
  local name=$1; shift
  [ -f "$R/ofa_$name.json" ] || $PY benchmarks/ofa.py "$name" "$DIR" --json "$R/ofa_$name.json" --work $WORK "$@"
}

# core 1: the subnets to report, half of their fine-tunes, then the ranking study (once `alone` is done)
( stage pareto --budget ${PARETO_BUDGET:-40} $EXTRA &&
  $PY benchmarks/ofa.py finetune "$DIR" --shard 0/2 --json $R/ofa_finetune_0.json --work $WORK --pareto $R/ofa_pareto.json &&
  while pgrep -f "benchmarks/ofa.py alone" > /dev/null; do sleep 20; done &&
  { [ ! -f $R/ofa_alone.json ] || stage ranking; } ) &
first=$!
# core 2: the strategies at equal budget, then the other half of the fine-tunes (once pareto wrote its list)
( stage search --budget ${SEARCH_BUDGET:-50} --seeds 0,1,2 $EXTRA &&
  until [ -f $R/ofa_pareto.json ]; do kill -0 $first 2>/dev/null || exit 1; sleep 10; done &&
  $PY benchmarks/ofa.py finetune "$DIR" --shard 1/2 --json $R/ofa_finetune_1.json --work $WORK --pareto $R/ofa_pareto.json ) &
second=$!
wait $first
wait $second
stage timing --pareto $R/ofa_pareto.json
stage predictor $EXTRA
stage goal --pareto $R/ofa_pareto.json
$PY benchmarks/ofa_report.py --latency "$DIR/latency.json" --results $R --chart ${CHART:-docs/ofa-pareto.png}
