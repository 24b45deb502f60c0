#!/bin/sh
# A command trainer command for a torchvision detector (docs/torchvision.md): train on
# DATASET_DIR (dataset_format: coco), export ONNX, pack it into OUTPUT_DIR as MODEL_NAME@MODEL_VERSION.
# PYTHON (default /usr/bin/python3, Debian's torch) and EDGELOOP (default `edgeloop`) may be set.
set -eu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${PYTHON:-/usr/bin/python3}" "$(dirname "$0")/train_detector.py" "$work/model.onnx"
# SSDlite320 takes [3, H, W] RGB in 0..1 (it normalises and resizes inside the graph); labels count from 1.
${EDGELOOP:-edgeloop} pack "$work/model.onnx" --task detection --decoder boxes-scores --class-offset=-1 \
  --labels "$DATASET_DIR/labels.txt" --width 320 --height 320 \
  --name "$MODEL_NAME" --version "$MODEL_VERSION" --out "$OUTPUT_DIR"
