#!/usr/bin/env bash
# The checks that need a GPU, as one short run for a machine with CUDA and a PyTorch of its own (it
# installs nothing: the package runs from src/): the device tests, then a held-out image of the INR suite
# (chelsea, at its own 451x300) at the paper's network size (SIREN 5x256) for SECONDS_PER_TEACHER (30) s per
# teacher, targets from the runs. Logs and results go under OUT (default runs/device-check). About 4
# minutes on one GPU. DEVICE=cpu SECONDS_PER_TEACHER=2 checks the script.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/device-check}
DEVICE=${DEVICE:-cuda}
PER_TEACHER=${SECONDS_PER_TEACHER:-30}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1 NTEACH_TEST_DEVICE=$DEVICE
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/env.log"
python3 -m pytest -q -p no:cacheprovider tests/test_device.py 2>&1 | tee "$OUT/tests.log"
python3 -m nteach compare chelsea --size 0 --width 256 --depth 5 --seconds "$PER_TEACHER" \
    --teachers full,uniform,sweep,nint,paced_sweep --device "$DEVICE" --quiet --out "$OUT/compare-chelsea" \
    --overwrite 2>&1 | tee "$OUT/compare.log"
