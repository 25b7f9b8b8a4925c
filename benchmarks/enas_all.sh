#!/usr/bin/env bash
# Every stage of benchmarks/enas.py: 3 strategies x 3 seeds of search, each derived arch trained alone, zoo
# models of similar size trained the same way, the ranking study, ORT latency, the report; two one-thread
# processes at a time (one per core). Resumable: finished stages are skipped, an interrupted search resumes
# from its checkpoint.
#   bash benchmarks/enas_all.sh            # about 2 h on the 2-core machine
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
R=${RESULTS:-benchmarks/results/enas}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

lane() {  # strategy:seed pairs, one after another
  for pair in "$@"; do
    s=${pair%:*}; k=${pair#*:}
    [ -f "$R/search_${s}_${k}.json" ] || $PY benchmarks/enas.py search --strategy "$s" --seed "$k"
    [ -f "$R/scratch_${s}_${k}.json" ] || $PY benchmarks/enas.py scratch --strategy "$s" --seed "$k"
  done
}
zoo() {  # model:seed pairs
  for pair in "$@"; do
    m=${pair%:*}; k=${pair#*:}
    [ -f "$R/zoo_${m}_${k}.json" ] || $PY benchmarks/enas.py zoo --model "$m" --seed "$k"
  done
}
(lane rl:0 random:1 evolution:2 rl:2; [ -f "$R/ranking.json" ] || $PY benchmarks/enas.py ranking) &
a=$!
lane random:0 evolution:0 rl:1 random:2 evolution:1 &
b=$!
wait $a $b
[ -f "$R/latency.json" ] || $PY benchmarks/enas.py latency   # alone on the machine (zoo models need no weights)
zoo resnet8:0 &
a=$!
zoo lenet5:0 lenet5:1 lenet5:2 &
b=$!
wait $a $b
$PY benchmarks/enas.py report
