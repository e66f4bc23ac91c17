#!/usr/bin/env bash
# The SSGAN rows of docs/results.md that need a GPU, packed for a machine lent for a few minutes:
# the seed's protocol and --preset paper, each for the seed's 45 epochs, trained side by side on
# one GPU with CUDA graphs (--compile --compile-mode reduce-overhead ran SSGAN 3.03x the seed's
# loop on an H200, docs/performance.md).
#
# A run that has not finished after BUDGET_S seconds gets SIGTERM, on which gentk finishes the
# step and writes a checkpoint, so each run ends on a checkpoint either way. Then SAMPLES samples
# from that checkpoint are written, and OUT_DIR/NAME.tgz packs what scoring needs and nothing
# heavy: config.json, metrics.jsonl, the checkpoint sidecars (no weights: a checkpoint is ~62 MB),
# the sample grids and the samples. On any machine, after `tar xzf NAME.tgz`:
#   python benchmarks/score_samples.py NAME NAME/scored-samples --checkpoint step-N --trained-on "..."
#
# usage: benchmarks/gpu_ssgan_rows.sh RUNS_DIR OUT_DIR [extra gentk train options]
# env:   BUDGET_S (420), EPOCHS (45), SAMPLES (10000), PYTHON (python),
#        COMPILE ("--compile --compile-mode reduce-overhead"; "" trains eager)
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 RUNS_DIR OUT_DIR [extra gentk train options]" >&2
    exit 2
fi
runs=$1 out=$2
shift 2
budget=${BUDGET_S:-420} epochs=${EPOCHS:-45} samples=${SAMPLES:-10000} py=${PYTHON:-python}
compile=${COMPILE---compile --compile-mode reduce-overhead}
declare -A preset_args=([ssgan-seed]="" [ssgan-paper]="--preset paper")
for name in ssgan-seed ssgan-paper; do
    if [ -e "$runs/$name" ]; then
        echo "$runs/$name exists: give another RUNS_DIR (nothing is overwritten)" >&2
        exit 2
    fi
done
mkdir -p "$runs" "$out"
pids=()
for name in ssgan-seed ssgan-paper; do
    # shellcheck disable=SC2086  # the preset's and compile's words are meant to split
    timeout -s TERM "$budget" "$py" -m gentk train ssgan --epochs "$epochs" --run-dir "$runs/$name" \
        ${preset_args[$name]} $compile --no-progress "$@" >"$out/$name-train.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?  # 124: stopped by the budget, with a checkpoint; anything else is logged
done
echo "training done (last exit status $status)"

for name in ssgan-seed ssgan-paper; do
    run=$runs/$name
    # gentk points checkpoints/latest at the newest checkpoint once its sidecar is written;
    # `gentk sample --checkpoint` verifies that one before using it.
    last=$(cat "$run/checkpoints/latest" 2>/dev/null || true)
    if [ -z "$last" ]; then
        echo "$name: no checkpoint, see $out/$name-train.log" >&2
        continue
    fi
    "$py" -m gentk sample "$run" --checkpoint "$last" -n "$samples" -o "$run/scored-samples" \
        --device auto >"$out/$name-sample.log" 2>&1 \
        || { echo "$name: sampling failed, see $out/$name-sample.log" >&2; continue; }
    echo "$name: samples from $last; $(tail -n 1 "$out/$name-train.log")"
    tar czf "$out/$name.tgz" -C "$runs" "$name/config.json" "$name/metrics.jsonl" "$name/checkpoints/$last.json" \
        "$name/samples" "$name/scored-samples"
done
ls -l "$out"
