#!/usr/bin/env bash
# Download the peer libraries that benchmarks/gpu_throughput.py compares against into .whl/ (git-ignored),
# as wheels for the lent GPU machine (x86-64, Python 3.12). They are NOT project dependencies.
#
#   bash benchmarks/fetch_peer_wheels.sh          # here, where pip can reach a package index
#
# The device image already holds torch, torchvision, accelerate, einops, scipy, numpy, pillow, tqdm,
# filelock, huggingface-hub (1.33), regex, requests, safetensors (0.8) and zipp
# (the device machines' notes), so only what it lacks is fetched: diffusers and its importlib_metadata;
# denoising-diffusion-pytorch and its ema-pytorch and pytorch-fid (imported by its package __init__).
# Pin versions so two sessions measure the same code; override with e.g. DIFFUSERS=0.35.1.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${DEST:-.whl}"
PY="${PYTHON:-python3}"
WHEELS=(
  "diffusers==${DIFFUSERS:-0.42.1}"
  "importlib_metadata==${IMPORTLIB_METADATA:-8.7.1}"
  "denoising-diffusion-pytorch==${DDPM_PYTORCH:-2.3.4}"
  "ema-pytorch==${EMA_PYTORCH:-0.8.3}"
  "pytorch-fid==${PYTORCH_FID:-0.3.0}"
)
mkdir -p "$DEST"
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${WHEELS[@]}"
# keep one version of each distribution: two versions stop the whole `pip install --target` on the device
for name in diffusers importlib_metadata denoising_diffusion_pytorch ema_pytorch pytorch_fid; do
  count=$(find "$DEST" -maxdepth 1 -name "${name}-*.whl" | wc -l)
  if [ "$count" -gt 1 ]; then
    echo "error: $DEST holds $count versions of $name; delete all but one" >&2
    exit 1
  fi
done
ls -l "$DEST"
echo "next: see the docstring of benchmarks/gpu_throughput.py for the device command"
