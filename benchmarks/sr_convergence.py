"""How many updates SRResNet needs before it beats bicubic on the built-in held-out photos.

Trains zoo's `SRResNet` (pixel MSE, paper stage 1) on the built-in `hr-photos` with `zoo.data.SRDataModule`
(96-px HR crops, MATLAB-bicubic LR, batch 16) and prints PSNR-Y (`sr-y` protocol, 4-px border) on the three
held-out photographs every `--every` updates, next to MATLAB bicubic on the same inputs. It is the evidence
behind the README's "the SRResNet demo does not beat bicubic": run it on a GPU to see the curve of the
paper's network, e.g.

    python benchmarks/sr_convergence.py --device cuda --steps 3000                       # paper: 64 ch, 16 blocks, lr 1e-4
    python benchmarks/sr_convergence.py --device cuda --steps 3000 --channels 32 --blocks 8 --lr 1e-3   # the demo's net

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from zoo.data import SRDataModule
from zoo.methods.srgan import SRResNet
from zoo.metrics.pixel import psnr
from zoo.metrics.resize import imresize_matlab


def held_out_psnr(g: SRResNet, val: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    g.eval()
    with torch.no_grad():
        scores = [psnr(g(lr).clamp(0, 1), hr, "sr-y", 4).item() for lr, hr in val]
    g.train()
    return sum(scores) / len(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    torch.manual_seed(0)
    dm = SRDataModule(scale=4, batch_size=args.batch, crops_per_image=10_000, num_workers=args.workers)
    dm.setup("fit")
    val = [(item["lr"][None].to(args.device), item["hr"][None].to(args.device))
           for item in (dm.val_dataset[i] for i in range(len(dm.val_dataset)))]
    bicubic = sum(psnr(imresize_matlab(lr, 4).clamp(0, 1), hr, "sr-y", 4).item() for lr, hr in val) / len(val)
    g = SRResNet(4, args.channels, args.blocks).to(args.device)
    opt = torch.optim.Adam(g.parameters(), lr=args.lr, betas=(0.9, 0.999))
    print(f"SRResNet {args.channels} ch, {args.blocks} blocks, lr {args.lr}, batch {args.batch}; "
          f"bicubic PSNR-Y {bicubic:.2f} dB on {len(val)} held-out photos", flush=True)
    step, start = 0, time.time()
    while step < args.steps:
        for batch in dm.train_dataloader():
            loss = F.mse_loss(g(batch["lr"].to(args.device)), batch["hr"].to(args.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % args.every == 0 or step == args.steps:
                p = held_out_psnr(g, val)
                print(f"update {step:6d}  PSNR-Y {p:.2f} dB  ({p - bicubic:+.2f} vs bicubic)  {time.time() - start:.0f} s",
                      flush=True)
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
