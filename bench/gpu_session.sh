#!/usr/bin/env bash
# The GPU measurements bench/RESULTS.md still lacks, in one device call of under 10 minutes:
# the learners' wait for batches now that every request carries several (single-game student at
# batch 32 and 256, the Nature DQN in the whole teacher pipeline, the ten-game `multi-10`), the
# threaded gather on a many-core node, and the ten-game run's CPU by role; first the CUDA-only
# tests, since the learners changed after they last ran on a GPU. Each step has its own
# time limit, so one that overruns costs its own figure, not the others'.
#
# Here, once: bash bench/device_site.sh   (Ray, ale-py and gymnasium for the GPU machine's Python)
# Then the device tool's run, carrying .dev:
#   tar -xJf .dev/site.tar.xz -C /tmp && bash bench/gpu_session.sh
# Every JSON and log lands in $OUT (4 of each, the tool brings back 8 files); 560 s of limits in all;
# QUICK=1 runs tiny sizes (a check of the script on any machine).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
out=${OUT:-bench/out/gpu}
mkdir -p "$out"
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU: the figures are CPU ones"

step() {  # name, seconds, script and its flags
    local name=$1 seconds=$2
    shift 2
    echo "== $name (at most ${seconds}s): $*"
    timeout "$seconds" "$python" "$@" --out "$out/$name.json" > "$out/$name.log" 2>&1
    echo "   exit $? in ${SECONDS}s of the session; last lines:"
    tail -n 12 "$out/$name.log"
}

echo "== the CUDA-only tests (graphed learners), printed here only"
timeout 60 "$python" -m pytest -q -p no:cacheprovider tests/test_graphs.py 2>&1 | tail -n 5

if [[ -n "${QUICK:-}" ]]; then
    step replay32 240 bench/replay_bench.py --capacity 2000 --shards 1 --seconds 1 --learner-updates 5 --batch 32
    step replay256 240 bench/replay_bench.py --capacity 2000 --shards 1 --seconds 1 --learner-updates 5 --batch 256
    step teacher_pipeline 240 bench/teacher_pipeline.py --frames 12000 --seconds 1 --log-every 25
    step multitask 240 bench/multitask_bench.py --games pong,breakout --capacity-hours 0.02 --updates 60 \
        --log-every 20 --ceiling-seconds 1
else
    step replay32 100 bench/replay_bench.py --capacity 20000 --shards 1 --seconds 3 --batch 32
    step replay256 100 bench/replay_bench.py --capacity 20000 --shards 1 --seconds 3 --batch 256
    step teacher_pipeline 140 bench/teacher_pipeline.py --preset nature --actors 13 --envs-per-actor 8 \
        --frames 400000 --seconds 3 --log-every 250
    step multitask 160 bench/multitask_bench.py --updates 1500
fi
