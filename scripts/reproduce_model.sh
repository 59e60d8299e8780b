#!/usr/bin/env bash
# Reproduces the shipped detector from scratch on a 2-core CPU (about 2 h 10 min with the cores free):
# stage 1 (5,000 steps from random weights), stage 2 (4,000 steps fine-tune at a lower peak LR),
# stage 3 (5,000 steps at a lower peak LR again, with zoom-in augmentation),
# INT8 export (trained BN statistics; mirror test-time augmentation and a 0.8x reduced pass for large
# defects in the sidecar), evaluation on the
# held-out groups, and the latency benchmark.
# Each training stage resumes from its last checkpoint when run again.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/datasets/deeppcb}
source scripts/setup-env.sh packaging/apt-test.txt "train,test"
python -m inspector.training.train --data "$DATA" --out runs/det-v1 --steps 5000 --eval-every 500
python -m inspector.training.train --data "$DATA" --out runs/det-v1-ft --steps 4000 --lr 1e-3 --warmup 100 \
  --seed 1 --init-weights runs/det-v1/last.weights.h5
python -m inspector.training.train --data "$DATA" --out runs/det-v1-sc --steps 5000 --lr 5e-4 --warmup 100 \
  --seed 3 --eval-every 2500 --scale-max 1.6 --init-weights runs/det-v1-ft/last.weights.h5
mkdir -p runs/export
python -m inspector.training.export --weights runs/det-v1-sc/last.weights.h5 --data "$DATA" \
  --out models/pcb-defect-det.tflite --float-out runs/export/pcb-defect-det-float.tflite \
  --check 16 --version 1.6.0 --tta hflip --multiscale 0.8 --multiscale-min-box 50 --label-margin 9 \
  --join-fragments 0.1
cp runs/det-v1-sc/last.weights.h5 models/pcb-defect-det.weights.h5
pcb-inspector evaluate --root "$DATA" --groups 44000,92000 --out runs/eval-int8 \
  --model models/pcb-defect-det.tflite --compare-model runs/export/pcb-defect-det-float.tflite --write-sidecar
pcb-inspector bench --model models/pcb-defect-det.tflite --frames 500
