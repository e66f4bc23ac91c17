#!/usr/bin/env bash
# The screenshots of docs/watching.md: a 300-step GAN run on MNIST logged with --logger tensorboard,
# TensorBoard on localhost, headless Chromium (apt-get install chromium) with software GL.
#   bash scripts/tensorboard_screenshot.sh OUT_DIR
set -euo pipefail
out=${1:?usage: tensorboard_screenshot.sh OUT_DIR}
work=$(mktemp -d)
trap 'kill "${tb:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
gentk train gan --max-steps 300 --logger tensorboard --sample-every 100 --run-dir "$work/gan-mnist" --no-progress
tensorboard --logdir "$work" --port 6006 --host 127.0.0.1 >/dev/null 2>&1 &
tb=$!
sleep 8
shot() {  # URL fragment, file, height
  chromium --headless --no-sandbox --use-angle=swiftshader --enable-unsafe-swiftshader --hide-scrollbars \
    --window-size=1400,"$3" --virtual-time-budget=20000 --screenshot="$out/$2" \
    "http://127.0.0.1:6006/?darkMode=false#$1" 2>/dev/null
}
mkdir -p "$out"
shot "scalars&_smoothingWeight=0" tensorboard-gan.png 1000
shot images tensorboard-gan-samples.png 800
