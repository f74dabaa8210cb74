#!/usr/bin/env bash
# The GPU checks of issue 8, item 5, as one script (run from the repository root on a machine with one GPU):
#   bash benchmarks/gpu_speed.sh            # about 10 minutes on one H100
# 1. the speed suite on the GPU for pix2pix, CycleGAN, AdaIN and Johnson at the recipe's training batch, with
#    channels_last, bf16 autocast and compile measured against the default path (AdaIN at 512² and Johnson at
#    1024² must reach 30 images/s), and the training step with bf16, channels_last and fused Adam;
# 2. pix2pix trained by `python -m zoo.fit` with bf16-mixed, channels_last and DDP on one device;
# 3. the README table of the run.
set -euo pipefail
out=${OUT:-benchmarks}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python -m zoo.bench --suite speed --device cuda --models 'pix2pix,cyclegan,adain,johnson' \
    --sizes 256,512,1024 --batches 1,8 --fast channels_last,bf16,compile --train-fast bf16,channels_last,adam \
    --out "$out"
python -m zoo.fit --model pix2pix --trainer.accelerator gpu --trainer.devices 1 --trainer.strategy ddp \
    --trainer.precision bf16-mixed --model.channels_last true --trainer.max_epochs 1 \
    --trainer.default_root_dir "$out/gpu-ddp-run"
python -m zoo.bench --suite speed --table --out "$out"
