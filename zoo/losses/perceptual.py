"""A frozen VGG loss network for perceptual losses (Johnson et al. 2016, Dumoulin et al. 2017, Ledig et al.
2017): built lazily from the hparam `vgg_weights`, kept out of the module tree (not in the state dict, not in
`parameters()`, not needed at inference) and moved to the batch's device on use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.losses.style import gram_matrix
from zoo.nn.vgg import VGGFeatures

__all__ = ["LossNetMixin"]


class LossNetMixin:
    """A frozen torchvision VGG loss network (`_vgg_arch`: "vgg16" or "vgg19") kept out of the module tree,
    built on first use from hparam `vgg_weights` and moved to the batch's device. Random weights
    (VGGFeatures' seeded He-normal ones) are noted with `note_random_features`. Also caches the style Gram
    targets, computed once per style. Subclasses implement `loss_layers()`."""

    hparams: Any
    _vgg_pool: ClassVar[str] = "max"
    _vgg_arch: ClassVar[str] = "vgg16"

    def loss_layers(self) -> tuple[str, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss_net(self, device: torch.device | None = None) -> VGGFeatures:
        net = self.__dict__.get("_loss_net")
        if net is None:
            weights = self.hparams.vgg_weights
            net = VGGFeatures(self._vgg_arch, self.loss_layers(), weights, pool=self._vgg_pool)
            if net.random_weights_note:
                self.note_random_features(net.random_weights_note)  # type: ignore[attr-defined]
            object.__setattr__(self, "_loss_net", net)
            object.__setattr__(self, "_style_grams", {})
        if device is not None:
            net.to(device)
        return net

    def style_grams(self, key: int, style: Tensor, convention: str) -> dict[str, Tensor]:
        """The style layers' Gram matrices of `style` (1, 3, h, w), computed once for style `key` and
        cached (the loss net is fixed): [1, C, C] each."""
        net = self.loss_net(style.device)
        cache: dict[int, dict[str, Tensor]] = self.__dict__["_style_grams"]
        if key not in cache:
            # Normal tensors even when the first batch comes from validation (inference mode): the cached
            # targets are used by training steps later.
            with torch.inference_mode(False), torch.no_grad():
                feats = net(style[:1].clone())
                cache[key] = {name: gram_matrix(feats[name], convention) for name in self.hparams.style_layers}
        return {name: g.to(style.device) for name, g in cache[key].items()}

    def content_style_losses(self, content: Tensor, stylized: Tensor, grams: Mapping[str, Tensor],
                             convention: str) -> dict[str, Tensor]:
        """The feed-forward style losses (Johnson §3.2, Dumoulin §2): `loss_content`, the MSE of the
        `content_layer` features of `stylized` and `content` (the latter without gradients), and `loss_style`,
        the sum over `style_layers` of the MSE between the Gram matrices (`convention`) of `stylized` and the
        targets `grams` ([1, C, C] for one style, broadcast over the batch, or [B, C, C])."""
        hp = self.hparams
        net = self.loss_net(content.device)
        phi = net(stylized)
        with torch.no_grad():
            phi_content = net(content)[hp.content_layer]
        loss_content = F.mse_loss(phi[hp.content_layer], phi_content)
        loss_style = stylized.new_zeros(())
        for name in hp.style_layers:
            gram = gram_matrix(phi[name], convention)
            loss_style = loss_style + F.mse_loss(gram, grams[name].expand_as(gram))
        return {"loss_content": loss_content, "loss_style": loss_style}

    def configure_model(self) -> None:
        """Lightning calls this before fit/validate: build the loss net now, so a missing VGG file (or the
        random-weights warning) shows before the first step."""
        self.loss_net()
