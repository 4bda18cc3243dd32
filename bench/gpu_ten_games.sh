#!/usr/bin/env bash
# The ten-game student at the paper's scale, on one GPU node, in one command:
#   bash bench/gpu_ten_games.sh            (OUT=DIR to choose where; QUICK=1 checks the script in minutes)
# Ten zoo teachers' live actors (ACTORS per game, on the node's CPUs), 10 hours of replay per game
# (540,000 steps: about 3.6 GiB of host memory each, 36 GiB for the ten), the paper's `multi-10`
# student on the GPU with KL tau 0.01, both schedules, and a `net1` student per game with the same
# samples per game; writes the same table as the 2-core run from recordings (bench/ten_games.py):
# OUT/ten_games.md and OUT/ten_games.json. At about 300 multi-10 updates/s (bench/RESULTS.md, H100)
# the default 500,000 updates take about half an hour per schedule, plus evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/out/gpu_ten_games}
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU: the learner runs on the CPU"
if [[ -n "${QUICK:-}" ]]; then
    exec "$python" bench/ten_games.py --live --games freeway,pong --actors 1 --capacity-hours 0.05 --updates 400 \
        --eval-every 200 --eval-episodes 2 --select-episodes 1 --out "$out"
fi
exec "$python" bench/ten_games.py --live --actors "${ACTORS:-2}" --capacity-hours 10 --updates "${UPDATES:-500000}" \
    --eval-every "${EVAL_EVERY:-50000}" --schedules fixed,balanced --trunks multi-10 --singles net1 --out "$out"
