"""The history buffer of generated images (Shrivastava et al. 2017), as CycleGAN uses it (§4, "we update
the discriminators using a history of generated images rather than the ones produced by the latest
generators"; junyanz `util/image_pool.py`)."""

from __future__ import annotations

import torch

__all__ = ["ImagePool"]


class ImagePool:
    """Holds up to `pool_size` generated images, detached. `query(images)` returns a batch of the same
    size: while the pool fills, each image is stored and returned as is; once full, each image is, with
    probability 1/2, swapped for a random stored one (returned, and replaced by the new image), else
    returned as is. Decisions are per image and draw from torch's global RNG, so `seed_everything` and
    zoo's checkpointed RNG state make them reproducible. `pool_size` 0 disables the pool."""

    def __init__(self, pool_size: int = 50) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}")
        self.pool_size = int(pool_size)
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool_size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) > 0.5:
                i = int(torch.randint(0, self.pool_size, ()))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, object]:
        """The stored images (for exact resumption from a checkpoint)."""
        return {"pool_size": self.pool_size, "images": [t.cpu() for t in self.images]}

    def load_state_dict(self, state: dict[str, object], device: torch.device | str | None = None) -> None:
        images = list(state.get("images") or [])  # type: ignore[arg-type]
        self.images = [t.to(device) if device is not None else t for t in images][: self.pool_size]
