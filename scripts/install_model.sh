#!/usr/bin/env bash
# Installs a package made by scripts/reproduce_model.sh into models/ (the one shipped with the station):
# the .tflite, its sidecar, the fine-tuning weights and the model card with its generated metrics block.
# Refuses a package whose sidecar does not match its file or whose card's figures are not the sidecar's.
#   scripts/install_model.sh runs/repro/package
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=${1:?usage: scripts/install_model.sh PACKAGE_DIR}
for f in pcb-defect-det.tflite pcb-defect-det.json pcb-defect-det.weights.h5 MODEL_CARD.md; do
  [ -f "$PKG/$f" ] || { echo "install_model: $PKG/$f is missing" >&2; exit 2; }
done
PY=${PYTHON:-.venv/bin/python}
"$PY" -c "import sys; from inspector.detect.package import load_package; load_package(sys.argv[1])" "$PKG/pcb-defect-det.tflite"
"$PY" scripts/model_card_metrics.py "$PKG/pcb-defect-det.json" --card "$PKG/MODEL_CARD.md" --check
cp "$PKG/pcb-defect-det.tflite" "$PKG/pcb-defect-det.json" "$PKG/pcb-defect-det.weights.h5" models/
cp "$PKG/MODEL_CARD.md" models/MODEL_CARD.md
echo "installed $PKG into models/ ($(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["name"], m["version"])' models/pcb-defect-det.json))"
