"""Fast paths (issue 8): torch.compile, channels_last, foreach/fused Adam, machine-set DataLoader options and
bf16 autocast training. Each must give the default path's results within tolerance; speed is measured only in
the benchmarks."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

import zoo
import zoo.module as zoo_module
from zoo.data.datamodule import MAX_AUTO_WORKERS, default_num_workers, loader_options
from zoo.errors import DataError, ZooError
from zoo.fit import apply_fast_paths, prepare_argv
from zoo.module import ZooModule
from zoo.training import adam

from _helpers import tiny_trainer

pytestmark = pytest.mark.usefixtures("one_thread")


class TwoConv(ZooModule):
    """The smallest ZooModule with a network (G, in a ModuleDict as pix2pix keeps it) and a parameter-free
    child (left alone by the fast paths)."""

    inference_modules = ("G",)

    def __init__(self) -> None:
        super().__init__()
        self.G = nn.ModuleDict({"a2b": nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1))})
        self.criterion = nn.L1Loss()


def _images(n: int = 2, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------------------------- compile
def test_compile_networks_matches_eager_and_keeps_the_state_dict():
    torch.manual_seed(0)
    model = TwoConv()
    x = _images()
    eager = model.G["a2b"](x)
    keys = list(model.state_dict())
    assert model.compile_networks() == ["G.a2b"]  # the container is opened, the parameter-free loss skipped
    assert model.G["a2b"]._compiled_call_impl is not None
    compiled = model.G["a2b"](x)  # inductor: C++ on this CPU
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=0)
    assert list(model.state_dict()) == keys  # weights save and load as before


def test_compile_without_a_cxx_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(zoo_module.shutil, "which", lambda name: None)
    model = TwoConv()
    with pytest.raises(ZooError, match="C\\+\\+ compiler"):
        model.compile_networks()
    assert model.G["a2b"]._compiled_call_impl is None  # nothing changed
    model.compile_networks(backend="eager")  # backends that generate no C++ still work


def test_fit_flags_reach_the_model():
    argv, _ = prepare_argv(["--model", "pix2pix", "--model.compile", "true", "--model.init_args.channels_last=true"])
    assert "--compile" in argv and "true" in argv and "--channels_last=true" in argv
    assert not any(a.startswith(("--model.compile", "--model.init_args.channels_last")) for a in argv)
    model = TwoConv()
    apply_fast_paths(model, compile=False, channels_last=True)
    assert model.G["a2b"][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model.G["a2b"]._compiled_call_impl is None


# ----------------------------------------------------------------------------------------- channels_last
@pytest.mark.parametrize("key, hparams, network", [
    ("pix2pix", dict(ngf=8, ndf=8, netG="unet_128"), "G.a2b"),
    ("cyclegan", dict(ngf=8, ndf=8, netG="resnet_6blocks"), "G_A"),
    ("srgan", dict(channels=8, num_blocks=1, d_channels=4, vgg_weights=None), "G"),
    ("adain", dict(vgg_weights=None), "decoder"),
])
def test_channels_last_gives_the_same_outputs(key, hparams, network):
    torch.manual_seed(0)
    model = zoo.create(key, **hparams).eval()
    net = model.networks()[network]
    size = 128 if key == "pix2pix" else 32
    x = torch.rand(1, 512 if key == "adain" else 3, size // 8 if key == "adain" else size, size // 8 if key == "adain" else size)
    with torch.no_grad():
        expected = net(x)
        model.to_channels_last().to_channels_last()  # twice: one hook per network
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in net.parameters() if p.dim() == 4)
        got = net(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)  # SRResNet outputs reach |5|
    assert len(model._channels_last_hooks) == len(model.networks())


def test_channels_last_through_a_verb():
    from PIL import Image

    torch.manual_seed(0)
    model = zoo.create("pix2pix", ngf=8, ndf=8, netG="unet_128")
    photo = Image.fromarray((_images(1, 40)[0].permute(1, 2, 0).numpy() * 255).astype("uint8"))
    before = model.translate(photo)
    after = model.to_channels_last().translate(photo)
    assert after.size == before.size
    diff = torch.tensor(list(after.getdata())) - torch.tensor(list(before.getdata()))
    assert diff.abs().max() <= 1  # 8-bit rounding of outputs equal within 1e-5


# ------------------------------------------------------------------------------------------------- Adam
@pytest.mark.parametrize("implementation, fused, foreach", [
    ("auto", True, False), ("fused", True, False), ("foreach", False, True), ("for-loop", False, False)])
@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 1e-4}])
def test_adam_helper_steps_like_plain_adam(kwargs, implementation, fused, foreach):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    twin = copy.deepcopy(net)
    fast = adam(net.parameters(), 1e-2, (0.5, 0.999), implementation, **kwargs)
    plain = torch.optim.Adam(twin.parameters(), lr=1e-2, betas=(0.5, 0.999), foreach=False, fused=False, **kwargs)
    assert bool(fast.defaults["fused"]) is fused and bool(fast.defaults["foreach"]) is foreach  # CPU parameters
    x = _images()
    for _ in range(3):
        for module, opt in ((net, fast), (twin, plain)):
            opt.zero_grad()
            module(x).square().mean().backward()
            opt.step()
    for a, b in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_adam_helper_takes_param_groups_and_explicit_choices():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    opt = adam([{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.1}], 1e-3)
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["lr"] == 0.1
    assert adam(a.parameters(), 1e-3, foreach=False).defaults["foreach"] is False
    explicit = adam(a.parameters(), 1e-3, implementation="fused", foreach=True)  # an explicit flag wins
    assert explicit.defaults["foreach"] is True and not explicit.defaults["fused"]
    with pytest.raises(ZooError, match="unknown Adam implementation 'sgd'.*auto, fused, foreach, for-loop"):
        adam(a.parameters(), 1e-3, implementation="sgd")


def test_every_method_builds_adam_as_the_model_says():
    """`configure_optimizers` of every trainable method follows `adam_implementation` (zoo.fit --adam)."""
    from zoo.benchmark import speed

    tiny = {"pix2pix": dict(ngf=4, ndf=4, netG="unet_128"), "cyclegan": dict(ngf=4, ndf=4, netG="resnet_6blocks"),
            "munit": dict(dim=8, mlp_dim=16, dis_dim=8, n_res=1, val_lpips=False),
            "srgan": dict(stage="srgan", channels=4, num_blocks=1, d_channels=4, vgg_weights=None),
            "colorization": dict(width=1 / 16), "johnson": dict(width=8, vgg_weights=None),
            "cin": dict(num_styles=2, width=4, vgg_weights=None), "adain": dict(vgg_weights=None)}
    for key, hparams in tiny.items():
        for implementation, flag in (("foreach", "foreach"), ("for-loop", None), ("auto", "fused")):
            model = zoo.create(key, **hparams)
            model.adam_implementation = implementation
            with speed.plain_hooks(model) as (optimizers, _, _):
                adams = [o for o in optimizers if isinstance(o, torch.optim.Adam)]
            assert adams, key
            for opt in adams:
                on = {name for name in ("fused", "foreach") if opt.defaults.get(name)}
                assert on == ({flag} if flag else set()), (key, implementation, opt.defaults)


# ------------------------------------------------------------------------------------------- DataLoader
@pytest.mark.parametrize("cores, workers", [(1, 0), (2, 1), (4, 3), (64, MAX_AUTO_WORKERS)])
def test_workers_follow_the_cores_this_process_may_use(monkeypatch, cores, workers):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert default_num_workers() == workers
    options = loader_options()
    assert options["num_workers"] == workers and options["persistent_workers"] == (workers > 0)


def test_pinned_memory_only_with_cuda_and_user_choices_win(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert loader_options()["pin_memory"] is True
    assert loader_options(0, False, True) == {"num_workers": 0, "pin_memory": False, "persistent_workers": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loader_options()["pin_memory"] is False
    assert loader_options(2, None, False) == {"num_workers": 2, "pin_memory": False, "persistent_workers": False}
    with pytest.raises(DataError, match="num_workers"):
        loader_options(-1)


def test_datamodules_use_the_machine_defaults(monkeypatch, tmp_path):
    from zoo.data import ImageFolderDataModule

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(5)), raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = ImageFolderDataModule(root=tmp_path)
    assert (data.num_workers, data.pin_memory, data.persistent_workers) == (4, False, True)
    assert ImageFolderDataModule(root=tmp_path, num_workers=0).persistent_workers is False


# ------------------------------------------------------------------------------------------------- bf16
def _batch(kind: str, size: int) -> dict:
    g = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    if kind == "paired":
        return {"A": r(1, 3, size, size) * 2 - 1, "B": r(1, 3, size, size) * 2 - 1, "A_path": ["a"], "B_path": ["b"]}
    if kind == "style":
        return {"content": r(2, 3, size, size), "style": r(2, 3, size, size), "style_index": torch.tensor([0, 0]),
                "style_path": ["s", "s"]}
    if kind == "sr":
        return {"hr": r(2, 3, size, size), "lr": r(2, 3, size // 4, size // 4)}
    return {"image": r(2, 3, size, size)}


@pytest.mark.parametrize("key, hparams, kind, size", [
    ("pix2pix", dict(ngf=8, ndf=8, netG="unet_128"), "paired", 128),
    ("cyclegan", dict(ngf=8, ndf=8, netG="resnet_6blocks"), "paired", 32),
    ("munit", dict(dim=8, mlp_dim=16, dis_dim=8, n_res=1, val_lpips=False), "paired", 64),
    ("johnson", dict(width=8, vgg_weights=None), "style", 32),
    ("cin", dict(num_styles=2, width=4, vgg_weights=None), "style", 32),
    ("adain", dict(vgg_weights=None), "style", 32),
    ("srgan", dict(channels=8, num_blocks=1, d_channels=4, vgg_weights=None), "sr", 32),
    ("colorization", dict(width=1 / 16), "image", 32),
])
def test_bf16_mixed_training_step_on_cpu(tmp_path, key, hparams, kind, size):
    torch.manual_seed(0)
    model = zoo.create(key, **hparams)
    if key == "colorization":
        model.set_prior(torch.ones(model.bins.shape[0]))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = tiny_trainer(tmp_path, max_steps=1, limit_val_batches=0, precision="bf16-mixed")
    trainer.fit(model, DataLoader([_batch(kind, size)], batch_size=None))
    after = model.state_dict()
    assert any(not torch.equal(before[k], v) for k, v in after.items())  # a step was taken
    assert all(v.dtype == before[k].dtype for k, v in after.items())  # weights stay float32
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())


@pytest.mark.parametrize("native, precision, accelerator, warned", [
    (False, "bf16-mixed", "cpu", True),
    (False, "bf16-true", "cpu", True),
    (True, "bf16-mixed", "cpu", False),
    (False, "32-true", "cpu", False),
    (False, "bf16-mixed", "gpu", False),
])
def test_fit_warns_that_bf16_is_emulated_on_this_cpu(monkeypatch, caplog, native, precision, accelerator, warned):
    import logging

    import zoo.fit
    import zoo.module

    monkeypatch.setattr(zoo.module, "native_bf16", lambda device="cpu": native)
    with caplog.at_level(logging.WARNING, logger="zoo.fit"):
        zoo.fit._warn_emulated_bf16(precision, accelerator)
    assert ("without native bf16" in caplog.text) is warned


# ----------------------------------------------------------------------------------- bf16 inference
def _verb_call(key: str, model: ZooModule, x: torch.Tensor) -> torch.Tensor:
    """The method's public verb on `x`, as `zoo.predict` calls it (style methods with a style image)."""
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    if key == "adain":
        return model.stylize(x, style)
    if key in ("johnson", "cin"):
        return model.stylize(x, 0 if key == "cin" else None)
    if key == "srresnet":
        return model.upscale(x)
    if key == "colorization":
        return model.colorize(x)
    if key == "munit":
        return model.sample(x, n=2, seed=0)
    return model.translate(x)


@pytest.mark.parametrize("key, hparams, size", [
    ("pix2pix", dict(ngf=8, ndf=8, netG="unet_128"), 128),
    ("cyclegan", dict(ngf=8, ndf=8, netG="resnet_6blocks"), 32),
    ("munit", dict(dim=8, mlp_dim=16, dis_dim=8, n_res=1, val_lpips=False), 32),
    ("johnson", dict(width=8, vgg_weights=None), 32),
    ("cin", dict(num_styles=2, width=4, vgg_weights=None), 32),
    ("adain", dict(vgg_weights=None), 32),
    ("srresnet", dict(channels=8, num_blocks=1), 16),
    ("colorization", dict(width=1 / 16), 32),
])
def test_verbs_under_bf16_autocast_match_float32(key, hparams, size):
    """`zoo.predict --precision bf16-mixed` runs the verb under `precision_context`: the networks compute in
    bfloat16 (the output differs from float32's), the result keeps the input's dtype and range and stays
    within bf16's rounding of the float32 result."""
    from zoo.module import precision_context

    torch.manual_seed(0)
    model = zoo.create(key, **hparams).eval()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    reference = _verb_call(key, model, x)
    with precision_context("bf16-mixed", "cpu"):
        fast = _verb_call(key, model, x)
    assert fast.dtype == torch.float32 and fast.shape == reference.shape
    assert 0.0 <= float(fast.min()) and float(fast.max()) <= 1.0
    difference = (fast - reference).abs()
    assert float(difference.max()) > 0  # bf16 ran: float32 would be bit for bit the same
    assert float(difference.mean()) < 0.01, float(difference.mean())
    assert float(difference.max()) < 0.06, float(difference.max())  # measured at most 0.047 (cin)


def test_precision_context_names():
    from zoo.module import INFERENCE_PRECISIONS, precision_context

    assert INFERENCE_PRECISIONS == ("32-true", "bf16-mixed")
    with precision_context("32-true"):
        assert not torch.is_autocast_enabled("cpu")
    with precision_context("bf16-mixed", "cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with pytest.raises(ZooError, match="unknown inference precision 'fp16'.*32-true, bf16-mixed"):
        precision_context("fp16")


def _predict_pngs(folder, image, out, *extra: str) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    from zoo.predict import main as predict_main

    written = predict_main([str(folder), str(image), "--out", str(out), *extra])
    assert [p.name for p in written] == ["in.png"]
    return torch.from_numpy(np.asarray(Image.open(written[0]), dtype=np.float32))


def test_predict_precision_bf16_mixed_writes_the_float32_images_within_rounding(tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    monkeypatch.setattr(zoo_module, "native_bf16", lambda device="cpu": True)  # no warning on any CI CPU
    torch.manual_seed(0)
    folder = zoo.create("cyclegan", ngf=8, ndf=8, netG="resnet_6blocks").save_pretrained(tmp_path / "model")
    image = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)).save(image)
    reference = _predict_pngs(folder, image, tmp_path / "fp32")
    fast = _predict_pngs(folder, image, tmp_path / "bf16", "--precision", "bf16-mixed")
    assert fast.shape == reference.shape == (40, 48, 3)
    difference = (fast - reference).abs()
    assert float(difference.max()) > 0  # bf16 ran
    assert float(difference.mean()) < 1.5 and float(difference.max()) < 8  # in 8-bit levels (measured 0.65, 4)
    assert "without native bf16" not in capsys.readouterr().err


@pytest.mark.parametrize("native, precision, warned", [
    (False, "bf16-mixed", True), (True, "bf16-mixed", False), (False, "32-true", False)])
def test_predict_warns_that_bf16_is_emulated_on_this_cpu(tmp_path, monkeypatch, capsys, native, precision, warned):
    from PIL import Image

    monkeypatch.setattr(zoo_module, "native_bf16", lambda device="cpu": native)
    torch.manual_seed(0)
    folder = zoo.create("johnson", width=4, vgg_weights=None).save_pretrained(tmp_path / "model")
    Image.new("RGB", (16, 16), (10, 200, 30)).save(tmp_path / "in.png")
    _predict_pngs(folder, tmp_path / "in.png", tmp_path / "out", "--precision", precision)
    assert ("without native bf16" in capsys.readouterr().err) is warned


def test_predict_rejects_an_unknown_precision(tmp_path, capsys):
    from zoo.predict import main as predict_main

    with pytest.raises(SystemExit) as raised:
        predict_main(["johnson", str(tmp_path), "--out", str(tmp_path / "o"), "--precision", "fp16"])
    assert raised.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err


def test_compiled_network_under_bf16_autocast_matches_float32():
    """`--compile true --precision bf16-mixed` together: inductor compiles the autocast graph (bf16 convolutions),
    the result within bf16's rounding of eager float32."""
    from zoo.module import precision_context

    torch.manual_seed(0)
    model = TwoConv()
    x = _images()
    eager = model.G["a2b"](x)
    model.compile_networks()
    with torch.inference_mode(), precision_context("bf16-mixed", "cpu"):
        fast = model.G["a2b"](x)
    assert fast.dtype == torch.bfloat16  # autocast's output: the verbs turn it back into the input's dtype
    difference = (fast.float() - eager).abs()
    assert 0 < float(difference.max()) < 0.05


def test_adam_keeps_its_implementation_when_a_checkpoint_of_another_is_loaded():
    """Resuming with another `--adam` (or from a checkpoint written before the default changed): the saved
    param groups carry their fused/foreach flags, and the optimizer keeps its own; it steps like the saved one."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    twin = copy.deepcopy(net)
    saved = adam(net.parameters(), 1e-2, implementation="foreach")
    x = _images()
    net(x).square().mean().backward()
    saved.step()
    twin.load_state_dict(net.state_dict())
    for implementation, fused, foreach in (("fused", True, False), ("for-loop", False, False)):
        resumed = adam(twin.parameters(), 1e-2, implementation=implementation)
        resumed.load_state_dict(copy.deepcopy(saved.state_dict()))  # as from a file: no shared state tensors
        assert all(bool(g["fused"]) is fused and bool(g["foreach"]) is foreach for g in resumed.param_groups)
    for module, opt in ((net, saved), (twin, resumed)):
        opt.zero_grad()
        module(x).square().mean().backward()
        opt.step()
    for a, b in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
