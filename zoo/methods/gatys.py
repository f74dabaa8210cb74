"""Gatys, Ecker, Bethge — "A Neural Algorithm of Artistic Style" (arXiv:1508.06576; CVPR 2016 as "Image
Style Transfer Using Convolutional Neural Networks"): optimisation-based style transfer.

There is no trained network: the output image x is optimised, from white noise, so that its VGG-19
features match the content image's at one layer and its Gram matrices the style image's at five:

    L_content = ½ Σ_ij (F^l_ij − P^l_ij)²                                       (eq. 1, l = conv4_2)
    G^l_ij = Σ_k F^l_ik F^l_jk                                                   (eq. 3)
    E_l = 1 / (4 N_l² M_l²) Σ_ij (G^l_ij − A^l_ij)²                              (eq. 4)
    L_style = Σ_l w_l E_l,   w_l = 1/5 on conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 (eq. 5)
    L_total = α L_content + β L_style,   α/β = 10⁻³                              (eq. 7)

with L-BFGS, average pooling and the normalised VGG-19 (`vgg_conv.pth`, Caffe preprocessing) of the
paper (`../shared/reference/METHODS.md` §1). zoo's defaults are that recipe, with two readings of the
authors' own code (leongatys/PytorchNeuralStyleTransfer): the layers are tapped after the ReLU
(`relu4_2`, `relu1_1` ...; pass "conv4_2" for the pre-ReLU response), and the image is optimised in the
Caffe-range space (BGR 0-255 minus the ImageNet mean, here in RGB order) and clipped to [0, 1] only at
the end (no clamping during the optimisation unless `clamp=True`, applied after each L-BFGS step).

Beyond the paper: `multiscale` coarse-to-fine passes (the notebook's 512 px then 800 px), several style
images blended by their Gram targets (jcjohnson's `-style_blend_weights`), colour preservation (Gatys,
Bethge, Hertzmann, Shechtman 2016, arXiv:1606.05897: luminance-only transfer or colour-histogram
matching), the other Gram normalisations (`convention`), a TV^β prior, Adam, and saved intermediates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.errors import ZooError
from zoo.imageio import InputKind, from_batch, to_batch
from zoo.imageopt import (
    PerImageOptimizer, caffe_range_bounds, from_caffe_range, optimize_image, resize_shorter, to_caffe_range,
)
from zoo.losses.regularizers import total_variation
from zoo.losses.style import GRAM_CONVENTIONS, content_loss, gram_matrix, style_loss, symmetric_power
from zoo.module import ZooModule
from zoo.registry import register
from zoo.tasks import StyleMixin, blend_weights

__all__ = [
    "Gatys", "GatysResult", "rgb_to_yiq", "yiq_to_rgb", "match_color", "match_luminance",
    "CONTENT_LAYERS", "STYLE_LAYERS", "INITS", "PRESERVE_COLOR", "DEFAULT_LR",
]

log = logging.getLogger("zoo.gatys")

#: The paper's layers, tapped after the ReLU as the authors' notebook (r42; r11, r21, r31, r41, r51).
CONTENT_LAYERS: dict[str, float] = {"relu4_2": 1.0}
STYLE_LAYERS: dict[str, float] = {f"relu{b}_1": 0.2 for b in range(1, 6)}
INITS = ("noise", "content", "style")
PRESERVE_COLOR = (None, "luminance", "histogram")
#: Per-optimiser learning rates in the Caffe-range (0-255) space: L-BFGS's 1 (torch and jcjohnson's
#: optim.lbfgs), Adam's 10 (jcjohnson's `-optimizer adam`).
DEFAULT_LR = {"lbfgs": 1.0, "adam": 10.0}

#: What `stylize(..., **options)` / `optimize(..., **options)` may override per call: everything but the
#: loss network and its layers (which are built once).
OPTIONS = (
    "content_weight", "style_weight", "tv_weight", "tv_beta", "convention", "optimizer", "lr", "steps",
    "line_search_fn", "init", "image_size", "multiscale", "style_scale", "preserve_color", "clamp",
    "save_every", "save_dir", "progress", "seed",
)

# ----------------------------------------------------------------------------------------- colour


_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                     [0.595716, -0.274453, -0.321263],
                     [0.211456, -0.522591, 0.311135]], dtype=torch.float64)


def rgb_to_yiq(rgb: Tensor) -> Tensor:
    """(B, 3, H, W) RGB -> YIQ (NTSC): Y the luminance, I and Q the chroma."""
    return torch.einsum("ij,bjhw->bihw", _YIQ.to(rgb), rgb)


def yiq_to_rgb(yiq: Tensor) -> Tensor:
    """The exact inverse of `rgb_to_yiq` (no clamping)."""
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_YIQ).to(yiq), yiq)


def match_luminance(style_y: Tensor, content_y: Tensor) -> Tensor:
    """Luminance-only transfer's histogram step (Gatys et al. 2016, §2.1): the style's luminance takes
    the content's mean and standard deviation, L_s' = σ_c / σ_s (L_s − μ_s) + μ_c."""
    mu_s, sd_s = style_y.mean(), style_y.std().clamp_min(1e-8)
    return (style_y - mu_s) * (content_y.std() / sd_s) + content_y.mean()


def match_color(style: Tensor, content: Tensor, eps: float = 1e-6) -> Tensor:
    """Colour histogram matching (Gatys et al. 2016, §2.2, the Image Analogies variant): x_s' = A x_s + b
    with A = Σ_c^½ Σ_s^-½ (symmetric matrix roots) and b = μ_c − A μ_s, so the style's pixels get the
    content's RGB mean and covariance (hence its per-channel mean and std). `style` and `content` are
    (1, 3, H, W) in [0, 1] of any sizes; the result is not clipped (it only feeds the loss network)."""
    s, c = style.reshape(3, -1).double(), content.reshape(3, -1).double()
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)

    def cov(x: Tensor, mu: Tensor) -> Tensor:
        d = x - mu
        return d @ d.t() / max(1, x.shape[1] - 1) + eps * torch.eye(3, dtype=x.dtype, device=x.device)

    a = symmetric_power(cov(c, mu_c), 0.5) @ symmetric_power(cov(s, mu_s), -0.5)
    return (a @ (s - mu_s) + mu_c).to(style.dtype).reshape(style.shape)


def _grey(y: Tensor) -> Tensor:
    return y.expand(-1, 3, -1, -1)


# ---------------------------------------------------------------------------------------- results
@dataclass
class GatysResult:
    """What `Gatys.optimize` returns: `tensor` (1, 3, H, W) in [0, 1] at the optimised resolution, the
    per-iterate `history` (dicts of the weighted terms loss_content / loss_style / loss_tv, their sum
    "loss", "lr" and the pass's working "size"; every pass's iterates in order), and `random_features`
    (True when the VGG had random weights: the result is then not the method's). `image` is the PIL
    image of `tensor`."""

    tensor: Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    random_features: bool = False

    @property
    def image(self) -> Any:
        return from_batch(self.tensor.detach().clamp(0, 1), InputKind("pil"))


# ----------------------------------------------------------------------------------- the module
@register(key="gatys")
class Gatys(PerImageOptimizer, StyleMixin, ZooModule):
    """Optimisation-based style transfer. `stylize(content, style, weights=None, **options)` returns the
    content's kind at its size; `optimize(content, style, **options)` returns a `GatysResult` at the
    optimised resolution. Nothing is trained: the VGG (kept out of the state dict) is the whole model."""

    task = "style"
    paper = "arXiv:1508.06576"
    usage = ("`python -m zoo.predict gatys content.jpg --style style.jpg --out DIR`, or "
             "model.stylize(content, style)")
    default_io = {"range": [0.0, 1.0], "channels": 3, "size_multiple": 1, "directions": ["a2b"], "eval_mode": True}
    inference_modules = ()
    min_input_size = 16  # relu5_1 sits behind 4 poolings

    def __init__(
        self,
        content_layers: dict[str, float] = CONTENT_LAYERS,
        style_layers: dict[str, float] = STYLE_LAYERS,
        convention: str = "paper",
        content_weight: float = 1.0,
        style_weight: float = 1e3,
        tv_weight: float = 0.0,
        tv_beta: float = 2.0,
        optimizer: str = "lbfgs",
        lr: float | None = None,
        steps: int | list[int] = 500,
        line_search_fn: str | None = None,
        init: str = "noise",
        image_size: int | None = 512,
        multiscale: list[int] | None = None,
        style_scale: float = 1.0,
        preserve_color: str | None = None,
        clamp: bool = False,
        save_every: int = 0,
        save_dir: str | None = None,
        progress: bool = True,
        seed: int | None = 0,
        vgg_variant: str = "gatys",
        pool: str = "avg",
        vgg_weights: str | None = "default",
    ) -> None:
        """
        Args:
            content_layers, style_layers: {VGG-19 layer: weight w_l} (eq. 5); names as `zoo.nn.vgg`
                (`relu4_2`, `conv4_2`, `pool3`, ...).
            convention: the Gram/content normalisation of `zoo.losses.style`: "paper" (E_l of eq. 4 and
                ½Σ content), "hw" (the authors' notebook), "chw" (jcjohnson), "bchw"; the last three use
                a mean-squared content loss, as those references do.
            content_weight, style_weight: α and β of eq. 7 (α/β = 1e-3, the paper's Fig. 3).
            tv_weight, tv_beta: weight and β of a TV^β prior on the image (0: off; jcjohnson uses 1e-3).
            optimizer: "lbfgs" (the paper) or "adam"; lr: None = DEFAULT_LR of the optimiser (Caffe-range
                pixels); line_search_fn: None or "strong_wolfe" (L-BFGS).
            steps: L-BFGS/Adam iterations (true iterations, not closure calls); a list gives one count
                per `multiscale` pass.
            init: "noise" (the paper's white noise: N(0, 1) in the 0-255 space, as the notebook's
                randn), "content" or "style" (the first style image stretched to the content's size).
            image_size: the content's shorter side is resized to it before optimising (the notebook's
                Scale(512)); None keeps the content's size. `stylize` resizes the result back to the
                content's size, `optimize` returns it at this size.
            multiscale: shorter sides of coarse-to-fine passes, e.g. [256, 512]: each pass starts from
                the previous result upsampled; replaces `image_size` (the last size is the result's).
            style_scale: each style image's shorter side is style_scale x the working content's.
            preserve_color: None, "luminance" (transfer on luminance only, the content's YIQ chroma is
                kept) or "histogram" (the style first takes the content's RGB mean and covariance).
            clamp: keep the image in the valid pixel range after every step (never inside the closure).
            save_every, save_dir: write the image every `save_every` iterations as PNGs into `save_dir`.
            progress: a progress bar with the current terms; seed: the noise init's seed (None: the
                global RNG).
            vgg_variant: "gatys" (the paper's normalised VGG-19, vgg_conv.pth) or "torchvision";
                pool: "avg" (the paper) or "max".
            vgg_weights: "default" (looked up offline; raises WeightsNotFoundError naming the file), a
                path, "default-or-random" (demos: random weights with a loud warning) or None (random).
        """
        super().__init__()
        if vgg_variant not in ("gatys", "torchvision"):
            raise ZooError(f"gatys runs on the 'gatys' (vgg_conv.pth) or 'torchvision' VGG-19, not {vgg_variant!r}")
        self.save_hyperparameters()
        self._settings({})  # validate now, not at the first image
        layers = tuple(dict.fromkeys([*content_layers, *style_layers]))
        if not content_layers or not style_layers:
            raise ZooError("gatys needs at least one content layer and one style layer")
        self.use_vgg(vgg_variant, "vgg19", layers, vgg_weights, pool)

    # ------------------------------------------------------------------------------------ options
    def _defaults(self) -> dict[str, Any]:
        return {k: self.hparams[k] for k in OPTIONS}

    def _settings(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The hyperparameters overridden by per-call `options`, checked."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ZooError(f"gatys has no option {', '.join(map(repr, unknown))}; its options are {', '.join(OPTIONS)}")
        s = {**self._defaults(), **options}
        if s["convention"] not in GRAM_CONVENTIONS:
            raise ZooError(f"unknown convention {s['convention']!r}: choose one of {', '.join(GRAM_CONVENTIONS)}")
        if s["optimizer"] not in DEFAULT_LR:
            raise ZooError(f"gatys optimises with 'lbfgs' (the paper) or 'adam', not {s['optimizer']!r}")
        if s["init"] not in INITS:
            raise ZooError(f"unknown init {s['init']!r}: choose one of {', '.join(INITS)}")
        if s["preserve_color"] not in PRESERVE_COLOR:
            raise ZooError(f"preserve_color must be None, 'luminance' or 'histogram', got {s['preserve_color']!r}")
        sizes = list(s["multiscale"]) if s["multiscale"] else [s["image_size"]]
        if not sizes or any(v is not None and int(v) < 1 for v in sizes):
            raise ZooError(f"image sizes must be positive integers (or image_size=None), got {sizes}")
        steps = s["steps"]
        steps = [int(v) for v in steps] if isinstance(steps, (list, tuple)) else [int(steps)] * len(sizes)
        if len(steps) != len(sizes) or any(v < 0 for v in steps):
            raise ZooError(f"steps must be an integer >= 0 or one per multiscale pass ({len(sizes)}), got {s['steps']}")
        if min(s["content_weight"], s["style_weight"], s["tv_weight"]) < 0:
            raise ZooError("content_weight, style_weight and tv_weight must be >= 0")
        if s["style_scale"] <= 0:
            raise ZooError(f"style_scale must be > 0, got {s['style_scale']}")
        if int(s["save_every"]) < 0 or (int(s["save_every"]) > 0 and not s["save_dir"]):
            raise ZooError("save_every=N (> 0) needs save_dir=FOLDER for the intermediate images")
        s["sizes"], s["steps_per_pass"] = sizes, steps
        if s["lr"] is None:
            s["lr"] = DEFAULT_LR[s["optimizer"]]
        return s

    # -------------------------------------------------------------------------------- the objective
    @property
    def vgg(self) -> Any:
        return self.network

    def targets(self, content: Tensor, styles: Sequence[Tensor], weights: Sequence[float] | None = None,
                convention: str = "paper") -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(P, A): the content features at the content layers, and the style Gram targets at the style
        layers, Σ_k w_k G(s_k) over the style images (weights normalised to sum 1), for an image of the
        content's size. `content` (1, 3, H, W) and each style (1, 3, h, w) in [0, 1]. Under the paper's
        convention the raw Gram of a style image of M_s positions is rescaled to the output's M positions
        (A M / M_s), so E_l compares like with like whatever the style's size."""
        hp = self.hparams
        w = blend_weights(weights, len(styles))
        with torch.no_grad():
            feats = self.vgg(content)
            p = {name: feats[name].detach() for name in hp.content_layers}
            a: dict[str, Tensor] = {}
            normalize = "hw" if convention == "paper" else convention
            for wk, style in zip(w, styles):
                style_feats = self.vgg(style)
                for name in hp.style_layers:
                    g = gram_matrix(style_feats[name], normalize)
                    if convention == "paper":
                        g = g * (feats[name].shape[-2] * feats[name].shape[-1])
                    a[name] = a.get(name, 0) + wk * g
        return p, a

    def objective(self, p: Mapping[str, Tensor], a: Mapping[str, Tensor], settings: Mapping[str, Any],
                  alpha: float = 1.0) -> Any:
        """x (Caffe-range image) -> {"loss_content": α L_content, "loss_style": α_blend β L_style,
        "loss_tv": λ TV^β(x)} (eq. 7, plus the optional prior); `alpha` scales β (see `stylize`)."""
        hp, s = self.hparams, settings
        content_convention = "paper" if s["convention"] == "paper" else "mse"

        def terms(x: Tensor) -> dict[str, Tensor]:
            feats = self.vgg(from_caffe_range(x))
            out = {
                "loss_content": s["content_weight"] * sum(
                    w * content_loss(feats[n], p[n], content_convention) for n, w in hp.content_layers.items()),
                "loss_style": alpha * s["style_weight"] * sum(
                    w * style_loss(feats[n], a[n], s["convention"], target_is_gram=True)
                    for n, w in hp.style_layers.items()),
            }
            if s["tv_weight"] > 0:
                out["loss_tv"] = s["tv_weight"] * total_variation(x, s["tv_beta"])
            return out

        return terms

    # ------------------------------------------------------------------------------- optimisation
    def _optimize_one(self, content: Tensor, styles: Sequence[Tensor], weights: Any, s: Mapping[str, Any],
                      alpha: float, prefix: str = "") -> tuple[Tensor, list[dict[str, float]], Tensor]:
        """Run every pass for one content image (1, 3, H, W) in [0, 1]. Returns the result (RGB, not
        clipped; grey in luminance mode) at the last working size, the history, and the content at that
        size."""
        luminance = s["preserve_color"] == "luminance"
        history: list[dict[str, float]] = []
        x: Tensor | None = None
        work = content
        for index, (size, steps) in enumerate(zip(s["sizes"], s["steps_per_pass"])):
            work = resize_shorter(content, size)
            short = min(work.shape[-2:]) * float(s["style_scale"])
            used = [resize_shorter(style, short) for style in styles]
            if s["preserve_color"] == "histogram":
                used = [match_color(style, work) for style in used]
            seen = work
            if luminance:
                content_y = rgb_to_yiq(work)[:, :1]
                seen = _grey(content_y)
                used = [_grey(match_luminance(rgb_to_yiq(style)[:, :1], content_y)) for style in used]
            p, a = self.targets(seen, used, weights, s["convention"])
            if x is None:
                x0 = self._init(s, seen, used[0])
            else:  # coarse-to-fine: the previous pass's result, upsampled
                x0 = F.interpolate(x, size=seen.shape[-2:], mode="bilinear", align_corners=False)
            pass_prefix = prefix + (f"{min(seen.shape[-2:])}px_" if len(s["sizes"]) > 1 else "")
            x, pass_history = optimize_image(
                x0, self.objective(p, a, s, alpha), optimizer=s["optimizer"], steps=steps, lr=s["lr"],
                line_search_fn=s["line_search_fn"], clamp=caffe_range_bounds(x0) if s["clamp"] else None,
                callback=self._saver(s, pass_prefix), progress=bool(s["progress"]),
                description=f"gatys {seen.shape[-1]}x{seen.shape[-2]}",
            )
            history += [{**h, "size": float(min(seen.shape[-2:]))} for h in pass_history]
        assert x is not None
        return from_caffe_range(x), history, work

    def _init(self, s: Mapping[str, Any], content: Tensor, style: Tensor) -> Tensor:
        if s["init"] == "content":
            return to_caffe_range(content)
        if s["init"] == "style":
            stretched = F.interpolate(style, size=content.shape[-2:], mode="bilinear", align_corners=False,
                                      antialias=True)
            return to_caffe_range(stretched)
        generator = None
        if s["seed"] is not None:
            generator = torch.Generator().manual_seed(int(s["seed"]))
        return torch.randn(content.shape, generator=generator).to(content)  # white noise around the mean

    @staticmethod
    def _saver(s: Mapping[str, Any], prefix: str) -> Any:
        every = int(s["save_every"])
        if every <= 0:
            return None
        folder = Path(s["save_dir"]).expanduser()
        folder.mkdir(parents=True, exist_ok=True)

        def save(step: int, x: Tensor, losses: Mapping[str, float]) -> None:
            if step % every == 0:
                image = from_batch(from_caffe_range(x).clamp(0, 1), InputKind("pil"))
                image.save(folder / f"{prefix}step{step:05d}.png")

        return save

    @staticmethod
    def _finish(result: Tensor, content: Tensor, luminance: bool) -> Tensor:
        """The result at `content`'s size; in luminance mode its luminance with the content's chroma."""
        if result.shape[-2:] != content.shape[-2:]:
            result = F.interpolate(result, size=content.shape[-2:], mode="bilinear", align_corners=False)
        if luminance:
            yiq = rgb_to_yiq(content)
            result = yiq_to_rgb(torch.cat([rgb_to_yiq(result)[:, :1], yiq[:, 1:]], 1))
        return result

    def _prepare(self, content: Tensor, styles: Any) -> tuple[Tensor, list[Tensor]]:
        if not styles:
            raise ZooError("gatys needs a style image: stylize(content, style_image) (or a list of style images)")
        reference = next(self.vgg.parameters())  # the VGG's dtype: .double() does not reach a hidden net
        device, dtype = reference.device, reference.dtype
        # Cloned outside inference mode: the targets must be usable by autograd.
        return content.to(device, dtype).clone(), [s.to(device, dtype).clone() for s in styles]

    def optimize(self, content: Any, style: Any, *, alpha: float = 1.0, weights: Sequence[float] | None = None,
                 **options: Any) -> GatysResult:
        """Optimise one image: `content` an image-like (PIL, HWC uint8 array, path, CHW/1CHW tensor in
        [0, 1]), `style` one image-like or a list (blended by `weights`); `options` override the
        hyperparameters for this call (`OPTIONS`: steps, init, optimizer, image_size, ...). The result is
        at the optimised resolution (`image_size` / the last `multiscale` size)."""
        if not 0.0 <= float(alpha) <= 1.0:
            raise ZooError(f"alpha must be in [0, 1] (it scales the style weight; 1 is the recipe), got {alpha}")
        s = self._settings(options)
        batch, _ = to_batch(content)
        if batch.shape[0] != 1:
            raise ZooError(
                f"optimize takes one content image, got a batch of {batch.shape[0]}: use stylize() for batches")
        styles = self.prepare_style(style)
        with torch.inference_mode(False), torch.enable_grad():
            batch, styles = self._prepare(batch, styles)
            result, history, work = self._optimize_one(batch, styles, weights, s, alpha)
            out = self._finish(result, work, s["preserve_color"] == "luminance").clamp(0, 1)
        return GatysResult(out.detach(), history, self.random_features)

    def stylize_batch(self, content: Tensor, style: Any, *, alpha: float = 1.0,
                      weights: Sequence[float] | None = None, **options: Any) -> Tensor:
        """One optimisation per content image of the (B, 3, H, W) batch; the results come back at the
        content's size (resized from the working size; chroma from the full-size content in luminance
        mode).

        `alpha` in [0, 1] scales the style weight β (the paper's content/style trade-off, Fig. 4):
        1 is the recipe, 0 reconstructs the content only. `weights` blend the Gram targets of several
        style images. `options`: see `OPTIONS`."""
        s = self._settings(options)
        with torch.inference_mode(False), torch.enable_grad():
            content, styles = self._prepare(content, style)
            outputs = []
            for b in range(content.shape[0]):
                one = content[b:b + 1]
                prefix = f"img{b}_" if content.shape[0] > 1 else ""
                result, _, _ = self._optimize_one(one, styles, weights, s, alpha, prefix)
                outputs.append(self._finish(result, one, s["preserve_color"] == "luminance"))
        return torch.cat(outputs).detach()
