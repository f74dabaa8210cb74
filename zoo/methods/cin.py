"""Conditional instance normalisation — Dumoulin, Shlens, Kudlur, "A Learned Representation for Artistic
Style", ICLR 2017 (arXiv:1610.07629): one feed-forward network for N styles, which share every
convolution and differ only in the scale γ_s and shift β_s of each normalisation layer (§2):

    CIN(x, s) = γ_s (x − μ(x)) / σ(x) + β_s
    T(c, s) = transformer(c, one_hot(s))
    L(s, c) = λ_c Σ_{i∈C} ‖φ_i(T(c, s)) − φ_i(c)‖² + λ_s Σ_{i∈S} ‖G(φ_i(T(c, s))) − G(φ_i(s))‖²

Network: magenta's `image_stylization` `model.transform` (METHODS.md §4), layer for layer: every conv
is reflection-padded, bias-free and followed by CIN (the output conv too, then a sigmoid, so pixels
are [0, 1] in and out), ReLU, five residual blocks, nearest ×2 resize then conv to upsample; convs
initialised N(0, 0.01); γ = 1, β = 0. 1,674,432 conv weights, 3,206 CIN parameters per style. Module
names follow the TF variable scopes (`contract.conv1`, `residual.residual1.conv1`, `expand.conv3`),
so `from_official` is a table (`official_name`).

Style mixing (the paper's convex combinations of styles): `stylize(content, style=weights)` uses γ = Σ_i w_i γ_i, β = Σ_i w_i β_i with
the weights as given (magenta's `weighted_instance_norm`). New styles (the paper's fine-tuning of γ, β alone):
`add_styles(k)` appends k styles and freezes the convolutions and the old styles, so training updates
only the new styles' γ, β.

Recipe (magenta `image_stylization_train.py`): content relu3_3 weight 1.0; style relu1_2, relu2_2,
relu3_3, relu4_3 weight 1e-4 each; Gram = FᵀF / (H·W), losses = means of squared differences; Adam
1e-3, batch 16, 40k steps, ImageNet content images resized to 258 and centre-cropped to 256.

What differs: magenta's loss net is TF-slim's VGG-16 (`vgg_16_2016_08_28`, Caffe-trained) fed with
RGB pixels ×255 minus the ImageNet mean, with average pooling. Its weights 1.0 / 1e-4 belong to that
feature scale (~60-250× torchvision's; content terms scale with its square, style terms with its
fourth power). Here the loss net is torchvision's VGG-16 (RGB [0, 1], ImageNet mean/std), with average
pooling as magenta's, and the defaults are content 1.0, style 3.0 per layer: pytorch/examples' working
Johnson weights for the same torchvision VGG (1e5 content, 1e10 style with Gram / (C·H·W)) give
style/content ratios of 24, 6, 1.5 and 0.4 per layer in this Gram convention (1e10 / C² / 1e5), ≈3 on
average, and magenta's 1e-4 times the squared feature-scale ratio gives 0.3-6. They are not tuned on
pretrained features (none are available offline): tune `style_weight` for your styles.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import CheckpointError, DataError, ZooError
from zoo.losses import LossNetMixin
from zoo.module import ZooModule
from zoo.nn.style_blocks import ConditionalInstanceNorm2d, ReflectConv2d, style_weights
from zoo.registry import register, register_converter
from zoo.tasks import StyleMixin, inference_mode_of
from zoo.training import EvaluationSteps, adam
from zoo.visual import GridCollector

__all__ = ["CIN", "CINTransformer", "CINConv", "CINResidualBlock", "from_official", "official_name",
           "CONTENT_LAYER", "STYLE_LAYERS"]

log = logging.getLogger("zoo.cin")

CONTENT_LAYER = "relu3_3"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")

# ------------------------------------------------------------------------------------------- networks


class CINConv(ReflectConv2d):
    """magenta's `ops.conv2d` / `ops.upsampling`: [nearest ×upsample], reflection pad, bias-free conv
    (`conv2d.weight`), conditional instance norm (`norm.beta`, `norm.gamma`), then `activation`
    ("relu", "sigmoid" or None)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_styles: int, *, stride: int = 1,
                 upsample: int = 1, activation: str | None = "relu") -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, upsample, bias=False)
        self.norm = ConditionalInstanceNorm2d(out_channels, num_styles)
        self.activation = activation

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:  # type: ignore[override]
        h = self.norm(super().forward(x), weights)
        if self.activation == "relu":
            return F.relu(h)
        return torch.sigmoid(h) if self.activation == "sigmoid" else h


class CINResidualBlock(nn.Module):
    """x + conv2(conv1(x)): conv1 with CIN and ReLU, conv2 with CIN and no activation (`ops.residual_block`)."""

    def __init__(self, channels: int, num_styles: int) -> None:
        super().__init__()
        self.conv1 = CINConv(channels, channels, 3, num_styles)
        self.conv2 = CINConv(channels, channels, 3, num_styles, activation=None)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x, weights), weights)


class CINTransformer(nn.Module):
    """magenta's `model.transform` (alpha = 1, i.e. `width` 32): contract (9x9 s1, 3x3 s2, 3x3 s2), five
    residual blocks, expand (×2 + 3x3, ×2 + 3x3, 9x9 + sigmoid). `forward(x, weights)`: x RGB in [0, 1],
    weights [B, num_styles] or [1, num_styles] (one-hot for one style); output in [0, 1]."""

    def __init__(self, num_styles: int, width: int = 32) -> None:
        super().__init__()
        w, n = int(width), int(num_styles)
        self.contract = nn.ModuleDict({
            "conv1": CINConv(3, w, 9, n),
            "conv2": CINConv(w, 2 * w, 3, n, stride=2),
            "conv3": CINConv(2 * w, 4 * w, 3, n, stride=2),
        })
        self.residual = nn.ModuleDict({f"residual{i}": CINResidualBlock(4 * w, n) for i in range(1, 6)})
        self.expand = nn.ModuleDict({
            "conv1": CINConv(4 * w, 2 * w, 3, n, upsample=2),
            "conv2": CINConv(2 * w, w, 3, n, upsample=2),
            "conv3": CINConv(w, 3, 9, n, activation="sigmoid"),
        })
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.01)  # magenta: tf.random_normal_initializer(0, 0.01)

    @property
    def num_styles(self) -> int:
        return self.contract["conv1"].norm.num_styles

    def norms(self) -> Iterator[ConditionalInstanceNorm2d]:
        return (m for m in self.modules() if isinstance(m, ConditionalInstanceNorm2d))

    def add_styles(self, k: int) -> None:
        for norm in self.norms():
            norm.add_styles(k)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        for layer in self.contract.values():
            x = layer(x, weights)
        for block in self.residual.values():
            x = block(x, weights)
        for layer in self.expand.values():
            x = layer(x, weights)
        return x


# ----------------------------------------------------------------------------------- the LightningModule
@register(key="cin")
class CIN(EvaluationSteps, LossNetMixin, StyleMixin, ZooModule):
    """N-style fast style transfer as a LightningModule. Training batches are dicts with "content",
    "style" (images in [0, 1]) and "style_index" (`zoo.data.ContentStyleDataModule` over a folder of
    `num_styles` style images). `stylize(content, style=...)` takes a style index (or name), N weights,
    {index: weight}, or indices with `weights=[...]`; `alpha` blends linearly between the content (0)
    and the stylised image (1) in pixel space (magenta's `alpha` is a width multiplier: see `width`)."""

    task = "style"
    paper = "arXiv:1610.07629"
    default_io = {"range": [0.0, 1.0], "channels": 3, "size_multiple": 4, "directions": ["a2b"], "eval_mode": True}
    inference_modules = ("transformer",)
    monitor = ("val/loss", "min")
    min_input_size = 8  # the 1/4-resolution residual blocks reflect-pad by 1: they need 2 pixels
    datamodule = "zoo.data.style.ContentStyleDataModule"
    data_defaults: ClassVar[dict[str, Any]] = {
        "content_size": 258, "crop_size": 256, "crop": "center", "style_size": 256, "batch_size": 16,
    }
    _vgg_pool = "avg"  # magenta's vgg_16(pooling="avg")

    def __init__(
        self,
        num_styles: int = 32,
        content_weight: float = 1.0,
        style_weight: float = 3.0,
        lr: float = 1e-3,
        content_layer: str = CONTENT_LAYER,
        style_layers: Sequence[str] = STYLE_LAYERS,
        width: int = 32,
        frozen_styles: int = 0,
        style_names: Sequence[str] | None = None,
        vgg_weights: str | None = "default",
        val_grid_size: int = 4,
    ) -> None:
        """
        Args:
            num_styles: N, the styles the network holds (magenta's releases: 10 "monet", 32 "varied"). The
                training data must have N − frozen_styles style images; a mismatch is a DataError.
            content_weight: λ_c (magenta 1.0 with its Caffe-range VGG; see the module doc).
            style_weight: λ_s of each style layer (magenta 1e-4 with its VGG; 3.0 for torchvision's).
            lr: Adam's learning rate.
            content_layer, style_layers: VGG-16 layers of the content and style terms.
            width: channels of the first conv (32; magenta's `alpha` multiplier times 32).
            frozen_styles: the first `frozen_styles` styles and every convolution stay fixed and only the
                γ, β of the styles after them train; data style i is network style frozen_styles + i (set
                by `add_styles`; 0 trains everything).
            style_names: a name per style (filled from the data's file names at fit time), accepted by
                stylize(style="name").
            vgg_weights: the torchvision VGG-16 loss net: "default", a path, "default-or-random" (demo) or
                None (random; tests).
            val_grid_size: validation samples in the logged content | style | output grid.
        """
        super().__init__()
        if num_styles < 1:
            raise ZooError(f"num_styles must be >= 1, got {num_styles}")
        if not 0 <= frozen_styles < num_styles:
            raise ZooError(f"frozen_styles must be in 0..num_styles-1 ({num_styles - 1}), got {frozen_styles}: "
                           f"at least one style must train")
        if min(content_weight, style_weight) < 0 or lr <= 0:
            raise ZooError("content_weight and style_weight must be >= 0 and lr > 0")
        if width < 1:
            raise ZooError(f"width must be >= 1, got {width}")
        style_layers = tuple(style_layers)
        if not style_layers:
            raise ZooError("style_layers is empty: name at least one VGG-16 layer, e.g. relu2_2")
        if style_names is not None and len(style_names) != num_styles:
            raise ZooError(f"{len(style_names)} style_names for num_styles={num_styles}: give one name per style")
        self.save_hyperparameters()
        self.hparams.style_layers = style_layers
        self.hparams.style_names = None if style_names is None else [str(s) for s in style_names]
        self.transformer = CINTransformer(num_styles, width)
        self._grid = GridCollector(val_grid_size)

    def loss_layers(self) -> tuple[str, ...]:
        hp = self.hparams
        return tuple(dict.fromkeys((hp.content_layer, *hp.style_layers)))

    @property
    def num_styles(self) -> int:
        return self.transformer.num_styles

    # ---------------------------------------------------------------------------------- the model
    def forward(self, content: Tensor, weights: Tensor) -> Tensor:
        """T(c, w) for content in [0, 1] and style weights [B or 1, N] (one-hot for one style)."""
        return self.transformer(content, weights)

    def add_styles(self, k: int = 1, names: Sequence[str] | None = None) -> list[int]:
        """Append `k` new styles (γ = 1, β = 0) and freeze everything else: the convolutions and the
        existing styles' γ, β (a new style costs 3,206 parameters and trains alone).
        Returns the new styles' indices. Train on a data set of exactly the k new style images (data
        style i becomes network style `index[i]`); build the Trainer after calling this."""
        if k < 1:
            raise ZooError(f"add_styles needs k >= 1, got {k}")
        if names is not None and len(names) != k:
            raise ZooError(f"{len(names)} names for {k} new styles: give one name per new style")
        old = self.num_styles
        self.transformer.add_styles(k)
        hp = self.hparams
        hp.num_styles, hp.frozen_styles = old + k, old
        if hp.style_names is not None or names is not None:
            known = list(hp.style_names or (f"style-{i}" for i in range(old)))
            hp.style_names = known + [str(n) for n in (names or (f"style-{i}" for i in range(old, old + k)))]
        return list(range(old, old + k))

    def setup(self, stage: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        n = getattr(datamodule, "num_styles", None)
        if n is None:
            return
        hp = self.hparams
        trained = self.num_styles - hp.frozen_styles
        if n != trained:
            what = (f"{trained} new style(s) after the {hp.frozen_styles} frozen ones" if hp.frozen_styles
                    else f"num_styles={self.num_styles}")
            raise DataError(
                f"cin was built for {what}, but the data has {n} style image(s): pass "
                f"--model.init_args.num_styles {n + hp.frozen_styles} (or --data.max_styles / --data.style to a folder "
                f"of {trained} style images)"
            )
        names = list(getattr(datamodule, "style_names", []) or [])
        if stage == "fit" and len(names) == n:
            known = list(hp.style_names or (f"style-{i}" for i in range(self.num_styles)))
            hp.style_names = known[: hp.frozen_styles] + names

    def style_indices(self, batch: Mapping[str, Any]) -> Tensor:
        """The network's style index of each sample: the data's `style_index` + `frozen_styles`."""
        index = torch.as_tensor(batch["style_index"], device=batch["content"].device).long()
        trained = self.num_styles - self.hparams.frozen_styles
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= trained):
            raise DataError(
                f"style_index {int(index.max())} is out of range: this cin model trains {trained} style(s) (data "
                f"indices 0..{trained - 1}); set num_styles to the number of style images"
            )
        return index + self.hparams.frozen_styles

    def style_targets(self, batch: Mapping[str, Any], index: Tensor) -> dict[str, Tensor]:
        """G(φ_i(s)) of each sample's style [B, C, C], from Gram matrices computed once per style."""
        style = batch["style"]
        first = {}
        for j, s in enumerate(index.tolist()):
            first.setdefault(s, j)
        grams = {s: self.style_grams(s, style[j:j + 1], "hw") for s, j in first.items()}
        return {name: torch.cat([grams[s][name] for s in index.tolist()]) for name in self.hparams.style_layers}

    def losses(self, content: Tensor, stylized: Tensor, targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The content and style terms of L(s, c) as magenta computes them: means of squared differences
        (summed over the style layers, unweighted), Gram matrices / (H·W)."""
        return self.content_style_losses(content, stylized, targets, "hw")

    def total(self, parts: Mapping[str, Tensor]) -> Tensor:
        return self.hparams.content_weight * parts["loss_content"] + self.hparams.style_weight * parts["loss_style"]

    # ------------------------------------------------------------------------------- training
    def size_probes(self, batch: dict[str, Any]) -> list[tuple[Tensor, list[Any], int]]:
        # T(c, s) must have c's size for L_c: the transformer's two stride-2 stages need multiples of 4.
        return [(batch["content"], [lambda x: self(x, x.new_zeros(1, self.num_styles))], int(self.io["size_multiple"]))]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        c = batch["content"]
        s = self.style_indices(batch)
        stylized = self(c, style_weights(s, self.num_styles, device=c.device, dtype=c.dtype))  # T(c, s)
        parts = self.losses(c, stylized, self.style_targets(batch, s))
        loss = self.total(parts)  # λ_c L_c + λ_s L_s
        n = len(c)
        self.log_dict({f"train/{k}": v.detach() for k, v in parts.items()}, batch_size=n)
        self.log("train/loss", loss.detach(), batch_size=n, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam on the whole transformer; with `frozen_styles`, on the CIN parameters only, whose frozen
        rows get zero gradients (`on_after_backward`), so Adam leaves them exactly unchanged."""
        frozen = self.hparams.frozen_styles
        norm_params = [p for norm in self.transformer.norms() for p in (norm.beta, norm.gamma)]
        for p in self.transformer.parameters():
            p.requires_grad_(not frozen)
        for p in norm_params:
            p.requires_grad_(True)
        params = norm_params if frozen else list(self.transformer.parameters())
        return adam(params, self.hparams.lr, implementation=self.adam_implementation)

    def on_after_backward(self) -> None:
        frozen = self.hparams.frozen_styles
        if frozen:
            for norm in self.transformer.norms():
                for p in (norm.beta, norm.gamma):
                    if p.grad is not None:
                        p.grad[:frozen] = 0

    # ----------------------------------------------------------------------------- evaluation
    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        c = batch["content"]
        with torch.no_grad():
            s = self.style_indices(batch)
            stylized = self(c, style_weights(s, self.num_styles, device=c.device, dtype=c.dtype))
            parts = self.losses(c, stylized, self.style_targets(batch, s))
        n = len(c)
        for key, value in parts.items():
            self.log(f"{stage}/{key}", value, batch_size=n)
        self.log(f"{stage}/loss", self.total(parts), batch_size=n)
        if stage == "val" and self._grid.wants_more():
            shown = F.interpolate(batch["style"], size=c.shape[-2:], mode="bilinear", align_corners=False,
                                  antialias=True)
            self._grid.add(c, shown.clamp(0, 1), stylized)

    # ------------------------------------------------------------------------------ inference
    def prepare_style(self, style: Any) -> Any:
        """Styles are chosen by index, name or weights, not by image: passed through to `style_vector`."""
        if style is None:
            raise ZooError(f"cin needs a style: stylize(content, style=INDEX) with INDEX in 0..{self.num_styles - 1}, "
                           f"N weights, or {{index: weight}}")
        return style

    def _index(self, value: Any) -> int:
        names = self.hparams.style_names or []
        if isinstance(value, str):
            if value in names:
                return names.index(value)
            raise ZooError(f"unknown style name {value!r}: this model's styles are "
                           f"{', '.join(names) if names else f'unnamed (use an index 0..{self.num_styles - 1})'}")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ZooError(f"a style index must be an int (or a style name), got {value!r}")
        if not 0 <= int(value) < self.num_styles:
            raise ZooError(f"style index {int(value)} is out of range: this model has {self.num_styles} styles "
                           f"(0..{self.num_styles - 1})")
        return int(value)

    def style_vector(self, style: Any, weights: Sequence[float] | None = None) -> Tensor:
        """The style weights [N] that `stylize` uses (float32, CPU):

        - an index (or a style name): one-hot;
        - N numbers (list, tuple, array or tensor): the blend weights themselves, used unnormalised as
          magenta's `weighted_instance_norm` (convex weights interpolate between styles);
        - {index or name: weight}: those weights, 0 elsewhere;
        - indices (or names) with `weights=[w_1, ...]`: Σ w_k onehot(index_k).
        """
        n = self.num_styles
        vector = torch.zeros(n, dtype=torch.float64)
        if isinstance(style, Mapping):
            if weights is not None:
                raise ZooError("style={index: weight} carries its weights already: pass weights=None")
            for key, w in style.items():
                vector[self._index(key)] += float(w)
        elif isinstance(style, (str, int, np.integer)):
            indices = [self._index(style)]
            ws = [1.0] if weights is None else [float(w) for w in weights]
            if len(ws) != 1:
                raise ZooError(f"{len(ws)} weights for one style index: pass one weight per index")
            vector[indices[0]] += ws[0]
        else:
            if isinstance(style, Tensor):
                items = style.detach().cpu().flatten().tolist()
            elif isinstance(style, (list, tuple, np.ndarray)):
                items = list(style.reshape(-1)) if isinstance(style, np.ndarray) else list(style)
            else:
                raise ZooError(
                    f"cin takes a style index, a name, {n} weights or {{index: weight}}, not {type(style).__name__} "
                    f"(style images are for adain; a cin model only knows the styles it was trained on)"
                )
            if weights is not None:
                ws = [float(w) for w in (weights.tolist() if isinstance(weights, Tensor) else weights)]
                if len(ws) != len(items):
                    raise ZooError(f"{len(ws)} weights for {len(items)} style indices: pass one weight per index")
                for key, w in zip(items, ws):
                    vector[self._index(key.item() if isinstance(key, np.generic) else key)] += w
            elif len(items) == n and not any(isinstance(v, str) for v in items):
                vector = torch.tensor([float(v) for v in items], dtype=torch.float64)
            else:
                raise ZooError(
                    f"style has {len(items)} entries but this model has {n} styles: pass {n} blend weights, or style "
                    f"indices with weights=[...] (one per index)"
                )
        if not torch.isfinite(vector).all() or not vector.abs().sum() > 0:
            raise ZooError(f"the style weights must be finite and not all zero, got {vector.tolist()}")
        return vector.float()

    def stylize_batch(self, content: Tensor, style: Any, *, alpha: float = 1.0,
                      weights: Sequence[float] | None = None, **options: Any) -> Tensor:
        """(1 − α) c + α T(c, w) for a padded content batch in [0, 1], w = `style_vector(style, weights)`."""
        if options:
            raise ZooError(f"cin takes no option {', '.join(map(repr, options))}: only alpha and weights")
        w = self.style_vector(style, weights).to(device=content.device, dtype=content.dtype)[None]
        # inference_mode, not no_grad: no autograd bookkeeping at all (issue 8); the output is a plain result.
        with torch.inference_mode(), inference_mode_of(self.transformer, True):
            out = self(content, w)
            return alpha * out + (1.0 - alpha) * content


# ------------------------------------------------------------------------------------- the converter
def official_name(key: str) -> str:
    """The magenta TF variable of a `CINTransformer` state-dict key:

    | PyTorch                               | TF checkpoint                                            |
    |---------------------------------------|----------------------------------------------------------|
    | contract.convK.conv2d.weight          | transformer/contract/convK/weights (HWIO)                |
    | contract.convK.norm.{beta,gamma}      | transformer/contract/convK/InstanceNorm/{beta,gamma}     |
    | residual.residualK.convJ.…            | transformer/residual/residualK/convJ/…                   |
    | expand.convK.conv2d.weight            | transformer/expand/convK/conv/weights                    |
    | expand.convK.norm.{beta,gamma}        | transformer/expand/convK/conv/InstanceNorm/{beta,gamma}  |
    """
    module, _, param = key.rpartition(".")
    layer, _, kind = module.rpartition(".")
    scope = "transformer/" + layer.replace(".", "/") + ("/conv" if layer.startswith("expand.") else "")
    if kind == "conv2d" and param == "weight":
        return f"{scope}/weights"
    if kind == "norm" and param in ("beta", "gamma"):
        return f"{scope}/InstanceNorm/{param}"
    raise ValueError(f"{key!r} is not a CINTransformer parameter")


#: Variables a TF training checkpoint holds besides the transformer's weights: skipped (and logged).
_BOOKKEEPING_SUFFIXES = ("/Adam", "/Adam_1", "/ExponentialMovingAverage", "/Momentum")


def _is_bookkeeping(name: str) -> bool:
    return not name.startswith("transformer/") or name.endswith(_BOOKKEEPING_SUFFIXES)


@register_converter("cin")
def from_official(variables: Mapping[str, Any], **hparams: Any) -> CIN:
    """A magenta `image_stylization` checkpoint (`multistyle-pastiche-generator-monet.ckpt`: 10 styles,
    `-varied.ckpt`: 32) as a CIN model. `variables` maps TF variable names to arrays (numpy or tensors),
    as `zoo.tfcheckpoint.read_tf_checkpoint(path)` returns them (no TensorFlow needed). Conv weights are
    transposed HWIO -> OIHW; `num_styles` and `width` are read from the shapes (a `num_styles` hparam
    that disagrees is an error: the wrong count gives black images, magenta #782). Every parameter
    must be filled and every `transformer/` variable used (optimizer slots, `global_step` and other
    scopes are skipped); otherwise a CheckpointError names the variables."""
    if not isinstance(variables, Mapping):
        raise CheckpointError(f"cin's converter takes {{TF variable name: array}}, got {type(variables).__name__}")
    found = {str(k).removesuffix(":0"): v for k, v in variables.items()}
    gamma_name = "transformer/contract/conv1/InstanceNorm/gamma"
    conv_name = "transformer/contract/conv1/weights"
    if gamma_name not in found or conv_name not in found:
        raise CheckpointError(
            f"this is not a magenta image_stylization checkpoint: "
            f"{gamma_name if gamma_name not in found else conv_name} is missing ({len(found)} variables, e.g. {', '.join(sorted(found)[:3]) or 'none'})"
        )
    num_styles = int(np.asarray(found[gamma_name]).shape[0])
    width = int(np.asarray(found[conv_name]).shape[-1])
    for key, value in (("num_styles", num_styles), ("width", width)):
        if key in hparams and int(hparams[key]) != value:
            raise CheckpointError(f"{key}={hparams[key]} was asked for, but the checkpoint has {key}={value}")
    model = CIN(**{**hparams, "num_styles": num_styles, "width": width})
    expected = model.transformer.state_dict()
    state, missing, mismatched = {}, [], []
    for key, target in expected.items():
        name = official_name(key)
        if name not in found:
            missing.append(name)
            continue
        value = torch.as_tensor(np.asarray(found[name])).to(target.dtype)
        if key.endswith("conv2d.weight") and value.ndim == 4:
            value = value.permute(3, 2, 0, 1)  # HWIO -> OIHW
        elif value.ndim > 2:
            value = value.reshape(value.shape[0], -1)  # [N, 1, 1, C] -> [N, C]
        if tuple(value.shape) != tuple(target.shape):
            mismatched.append(f"{name} {tuple(np.asarray(found[name]).shape)} (expected {tuple(target.shape)} "
                              f"after transposing)")
            continue
        state[key] = value.contiguous()
    used = {official_name(k) for k in expected}
    unexpected = sorted(k for k in found if k not in used and not _is_bookkeeping(k))
    skipped = [k for k in found if k not in used and _is_bookkeeping(k)]
    problems = [f"{label} ({len(names)}): {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}"
                for label, names in (("missing variables", missing), ("unexpected variables", unexpected),
                                     ("shape mismatches", mismatched)) if names]
    if problems:
        raise CheckpointError("the magenta checkpoint does not fit the CIN transformer: " + "; ".join(problems))
    if skipped:
        log.info("cin converter: skipped %d non-transformer / optimizer variables (%s, ...)", len(skipped), skipped[0])
    model.transformer.load_state_dict(state, strict=True)
    return model
