"""CycleGAN: the reference architecture, the recipe (losses, pool, update order, schedule), inference at
any size, weights I/O, exact resumption and the CLI."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import zoo
from zoo.data import ImageFolderDataModule
from zoo.fit import main as fit_main
from zoo.methods.cyclegan import CycleGAN, from_official
from zoo.nn import ImagePool, PatchDiscriminator, ResnetGenerator

from _helpers import assert_same_state, n_params, run_cli, tiny_trainer
from _synthetic import make_unpaired




def tiny(**hparams) -> CycleGAN:
    """resnet_6blocks at width 8: the reference's code paths at a fraction of the cost."""
    return CycleGAN(**{"ngf": 8, "ndf": 8, "netG": "resnet_6blocks", **hparams})




def tiny_data(root, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(root=root, layout="unpaired",
                                 **{"load_size": 36, "crop_size": 32, "num_workers": 0, **kwargs})


# ------------------------------------------------------------------------------------- architecture
def test_reference_parameter_counts_and_keys():
    g9, g6 = ResnetGenerator(n_blocks=9), ResnetGenerator(n_blocks=6)
    assert n_params(g9) == 11_378_179 and n_params(g6) == 7_837_699
    keys = list(g9.state_dict())
    assert len(keys) == 48  # no InstanceNorm parameters or running statistics
    assert keys[:2] == ["model.1.weight", "model.1.bias"] and keys[-2:] == ["model.26.weight", "model.26.bias"]
    expected = {f"model.{i}.{p}" for i in (1, 4, 7, 19, 22, 26) for p in ("weight", "bias")}
    expected |= {f"model.{i}.conv_block.{j}.{p}" for i in range(10, 19) for j in (1, 5) for p in ("weight", "bias")}
    assert set(keys) == expected
    assert set(g6.state_dict()) >= {"model.16.weight", "model.19.weight", "model.23.weight"}
    d = PatchDiscriminator(3, 64, 3, "instance")
    assert n_params(d) == 2_764_737
    assert set(d.state_dict()) == {f"model.{i}.{p}" for i in (0, 2, 5, 8, 11) for p in ("weight", "bias")}
    model = CycleGAN()
    assert {k.split(".")[0] for k in model.state_dict()} == {"G_A", "G_B", "D_A", "D_B"}
    # with dropout the second conv of each block moves to index 6, as in the reference
    assert "model.10.conv_block.6.weight" in ResnetGenerator(n_blocks=1, use_dropout=True).state_dict()


def _functional_resnet(sd: dict, x: torch.Tensor, n_blocks: int) -> torch.Tensor:
    """The ResNet generator written out with torch.nn.functional, from the state dict alone."""

    def conv(i, h, stride=1, padding=0):
        return F.conv2d(h, sd[f"model.{i}.weight"], sd[f"model.{i}.bias"], stride=stride, padding=padding)

    h = F.relu(F.instance_norm(conv(1, F.pad(x, (3,) * 4, mode="reflect"))))
    h = F.relu(F.instance_norm(conv(4, h, 2, 1)))
    h = F.relu(F.instance_norm(conv(7, h, 2, 1)))
    for i in range(10, 10 + n_blocks):
        w = {j: (sd[f"model.{i}.conv_block.{j}.weight"], sd[f"model.{i}.conv_block.{j}.bias"]) for j in (1, 5)}
        r = F.relu(F.instance_norm(F.conv2d(F.pad(h, (1,) * 4, mode="reflect"), *w[1])))
        h = h + F.instance_norm(F.conv2d(F.pad(r, (1,) * 4, mode="reflect"), *w[5]))
    up = 10 + n_blocks
    for i in (up, up + 3):
        h = F.relu(F.instance_norm(F.conv_transpose2d(h, sd[f"model.{i}.weight"], sd[f"model.{i}.bias"], stride=2,
                                                      padding=1, output_padding=1)))
    return torch.tanh(conv(up + 7, F.pad(h, (3,) * 4, mode="reflect")))


def test_generator_matches_an_independent_functional_forward():
    torch.manual_seed(0)
    g = ResnetGenerator(3, 3, ngf=8, n_blocks=2)
    x = torch.rand(2, 3, 20, 28) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(g(x), _functional_resnet(g.state_dict(), x, 2), atol=1e-5)


def test_translate_rejects_no_size_and_crops_back():
    model = tiny().eval()
    for h, w in [(1, 1), (3, 5), (7, 9), (37, 53), (64, 64)]:
        x = torch.rand(1, 3, h, w)
        for direction in ("a2b", "b2a"):
            y = model.translate(x, direction=direction)
            assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    # the padding is invisible to the covered pixels' neighbourhood only through the crop: a size that is
    # already a multiple of 4 is not padded at all
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        direct = (model.G_A(x * 2 - 1) + 1) / 2
    assert torch.allclose(model.translate(x), direct.clamp(0, 1), atol=1e-6)
    array = np.random.default_rng(0).integers(0, 256, (41, 29, 3), dtype=np.uint8)
    out = model.translate(Image.fromarray(array), direction="b2a")
    assert isinstance(out, Image.Image) and out.size == (29, 41)


# ------------------------------------------------------------------------------------------ recipe
def test_image_pool_semantics():
    torch.manual_seed(0)
    pool = ImagePool(3)
    first = torch.arange(3, dtype=torch.float).view(3, 1, 1, 1).requires_grad_()
    out = pool.query(first)  # filling: returned as is, stored detached
    assert torch.equal(out, first.detach()) and not out.requires_grad and len(pool) == 3
    assert all(not t.requires_grad for t in pool.images)
    seen_swap = seen_keep = False
    stored_before = {float(t) for t in pool.images}
    for step in range(200):
        current = torch.full((2, 1, 1, 1), 100.0 + step)
        before = {float(t) for t in pool.images}
        out = pool.query(current)
        assert len(pool) == 3 and out.shape == current.shape
        for value in out.flatten().tolist():
            # each sample is either the current image or one that was in the pool before this query
            assert value == 100.0 + step or value in before
        kinds = {value == 100.0 + step for value in out.flatten().tolist()}
        seen_swap |= False in kinds
        seen_keep |= True in kinds
    assert seen_swap and seen_keep
    assert not stored_before & {float(t) for t in pool.images}  # the first images were swapped out
    # with probability 1/2 per image
    pool = ImagePool(1)
    pool.query(torch.zeros(1, 1, 1, 1))
    swapped = sum(float(pool.query(torch.ones(1, 1, 1, 1) * (i + 1))) != i + 1 for i in range(2000))
    assert 900 < swapped < 1100
    assert torch.equal(ImagePool(0).query(first), first.detach()) and len(ImagePool(0)) == 0
    copy = ImagePool(1)
    copy.load_state_dict(pool.state_dict())
    assert torch.equal(copy.images[0], pool.images[0])


def test_losses_are_the_papers_equation_and_updates_reach_only_their_networks(tmp_path, monkeypatch):
    data = tiny_data(make_unpaired(tmp_path / "d", n_train=1, n_val=1))
    model = tiny(pool_size=0)
    order: list[tuple[bool, bool]] = []
    losses: dict[str, float] = {}
    original = model.manual_backward

    def snapshot(*nets):
        return [None if p.grad is None else p.grad.clone() for n in nets for p in n.parameters()]

    def changed(old, *nets):
        now = [p.grad for n in nets for p in n.parameters()]
        return any((g is None) != (p is None) or (g is not None and not torch.equal(g, p)) for g, p in zip(old, now))

    def recording_backward(loss, *args, **kwargs):
        g, d = snapshot(model.G_A, model.G_B), snapshot(model.D_A, model.D_B)
        original(loss, *args, **kwargs)
        order.append((changed(g, model.G_A, model.G_B), changed(d, model.D_A, model.D_B)))

    monkeypatch.setattr(model, "manual_backward", recording_backward)
    monkeypatch.setattr(model, "log_dict", lambda d, **kw: losses.update({k: float(v) for k, v in d.items()}))
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = next(iter(data.train_dataloader()))
    tiny_trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(model, datamodule=data)
    # G step first (D frozen), then D step (fakes detached): the reference's order
    assert order == [(True, False), (False, True)]
    assert {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])} == {
        "G_A", "G_B", "D_A", "D_B"}
    # the logged terms are eq. 3's, with the reference's weights, recomputed from the initial weights
    start = tiny(pool_size=0)
    start.load_state_dict(before)
    a, b = batch["A"], batch["B"]
    with torch.no_grad():
        fake_b, fake_a = start.G_A(a), start.G_B(b)
        expected = {
            "train/loss_G_A": F.mse_loss(start.D_A(fake_b), torch.ones_like(start.D_A(fake_b))),
            "train/loss_cycle_A": 10 * F.l1_loss(start.G_B(fake_b), a),
            "train/loss_cycle_B": 10 * F.l1_loss(start.G_A(fake_a), b),
            "train/loss_idt_A": 5 * F.l1_loss(start.G_A(b), b),
            "train/loss_idt_B": 5 * F.l1_loss(start.G_B(a), a),
        }
    for key, value in expected.items():
        assert losses[key] == pytest.approx(float(value), rel=1e-4), key
    assert set(losses) == {f"train/loss_{n}_{d}" for n in ("D", "G", "cycle", "idt") for d in "AB"}


def test_schedule_is_constant_then_linear_per_epoch(tmp_path):
    data = tiny_data(make_unpaired(tmp_path / "d", n_train=2, n_val=1))
    model = tiny(n_epochs=2, n_epochs_decay=2, lr=1e-3)
    seen = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen.append((trainer.current_epoch, [o.param_groups[0]["lr"] for o in module.optimizers()]))

    tiny_trainer(tmp_path, max_epochs=4, limit_val_batches=0, callbacks=[Record()]).fit(model, datamodule=data)
    per_epoch = {}
    for epoch, lrs in seen:
        assert lrs[0] == lrs[1]  # G and D share the schedule
        per_epoch.setdefault(epoch, set()).add(lrs[0])
    assert all(len(v) == 1 for v in per_epoch.values())  # never changes inside an epoch
    assert [per_epoch[e].pop() for e in range(4)] == pytest.approx([1e-3, 1e-3, 1e-3 * 2 / 3, 1e-3 / 3])
    opt = model.optimizers()[0]
    assert opt.param_groups[0]["betas"] == (0.5, 0.999)


def test_overfit_cycle_losses_fall_and_outputs_approach_the_target_domain(tmp_path):
    torch.manual_seed(0)
    data = tiny_data(make_unpaired(tmp_path / "d", n_train=2, n_val=2, same_val=True), flip=False)
    model = tiny(lr=2e-3, pool_size=4)
    trainer = tiny_trainer(tmp_path, max_epochs=40, check_val_every_n_epoch=40)
    trainer.validate(model, datamodule=data, verbose=False)
    start = {k: float(v) for k, v in trainer.callback_metrics.items()}
    trainer.fit(model, datamodule=data)
    end = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert end["val/cycle_A"] < 0.5 * start["val/cycle_A"]
    assert end["val/cycle_B"] < 0.5 * start["val/cycle_B"]
    assert end["val/swd"] < 0.7 * start["val/swd"]
    assert end["val/swd_input"] == pytest.approx(start["val/swd_input"])  # the untranslated baseline


def test_validation_logs_both_directions_as_image_grids(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    data = tiny_data(make_unpaired(tmp_path / "d", n_train=1, n_val=3))
    logger = CSVLogger(tmp_path / "logs", name="cg")
    trainer = tiny_trainer(tmp_path, max_steps=2, logger=logger)
    trainer.fit(tiny(val_grid_size=2), datamodule=data)
    images = sorted(p.name for p in (tmp_path / "logs" / "cg" / "version_0" / "images").iterdir())
    assert any(n.startswith("val_grid_a2b_step") for n in images)
    assert any(n.startswith("val_grid_b2a_step") for n in images)
    grid = np.asarray(Image.open(next((tmp_path / "logs" / "cg" / "version_0" / "images").glob("val_grid_a2b*"))))
    assert grid.shape[1] == 3 * 32 + 4 * 2 and grid.shape[0] == 2 * 32 + 3 * 2  # 2 rows of A | G_A(A) | rec


# --------------------------------------------------------------------------------------- weights I/O
def test_save_pretrained_round_trip_for_all_components(tmp_path):
    torch.manual_seed(0)
    model = tiny()
    folder = model.save_pretrained(tmp_path / "full")
    loaded = zoo.load(folder)
    assert isinstance(loaded, CycleGAN)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    x = torch.rand(1, 3, 30, 45)
    for d in ("a2b", "b2a"):
        assert torch.equal(model.translate(x, d), loaded.translate(x, d))
    gens = zoo.load(model.save_pretrained(tmp_path / "gens", components=model.inference_modules))
    from safetensors.torch import load_file

    assert {k.split(".")[0] for k in load_file(str(tmp_path / "gens" / "model.safetensors"))} == {"G_A", "G_B"}
    assert torch.equal(gens.translate(x, "b2a"), model.translate(x, "b2a"))


def _old_style_state(g: torch.nn.Module) -> dict:
    """As PyTorch < 0.4 wrote an InstanceNorm generator through DataParallel: `module.` prefix and IN
    running statistics that today's InstanceNorm2d does not have."""
    state = {f"module.{k}": v.clone() for k, v in g.state_dict().items()}
    state["module.model.2.running_mean"] = torch.zeros(8)
    state["module.model.2.running_var"] = torch.ones(8)
    return state


def test_official_converter_loads_one_direction_and_checks_keys():
    torch.manual_seed(1)
    ref = ResnetGenerator(ngf=8, n_blocks=6)
    model = from_official(_old_style_state(ref), ngf=8, netG="resnet_6blocks")
    assert model.io["directions"] == ["a2b"] and model.inference_modules == ("G_A",)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.translate(x), ((ref(x * 2 - 1) + 1) / 2).clamp(0, 1), atol=1e-6)
    with pytest.raises(zoo.ZooError, match="a2b"):
        model.translate(x, direction="b2a")
    broken = {k: v for k, v in _old_style_state(ref).items() if k != "module.model.23.bias"}
    with pytest.raises(zoo.CheckpointError, match="model.23.bias"):
        from_official(broken, ngf=8, netG="resnet_6blocks")
    both = from_official({"a2b": ref.state_dict(), "b2a": ref.state_dict()}, ngf=8, netG="resnet_6blocks")
    assert both.io["directions"] == ["a2b", "b2a"]


def test_registry_name_loads_a_release_through_the_converter(tmp_path, monkeypatch):
    """`zoo.load("cyclegan-horse2zebra")` with the released file in place (here a full-size generator with
    random weights in the release's format): converted, cached with the generator only, loaded again."""
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(zoo.WeightsNotFoundError, match="horse2zebra.pth"):
        zoo.load("cyclegan-horse2zebra")
    torch.manual_seed(2)
    ref = ResnetGenerator(n_blocks=9)
    (tmp_path / "official").mkdir()
    state = _old_style_state(ref)
    state["module.model.2.running_mean"] = torch.zeros(64)
    state["module.model.2.running_var"] = torch.ones(64)
    torch.save(state, tmp_path / "official" / "horse2zebra.pth")
    model = zoo.load("cyclegan-horse2zebra")
    assert model.io["directions"] == ["a2b"] and model.io["domains"] == {"a": "horse", "b": "zebra"}
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert torch.allclose(model.translate(x), ((ref(x * 2 - 1) + 1) / 2).clamp(0, 1), atol=1e-5)
    from safetensors.torch import load_file

    cached = load_file(str(tmp_path / "converted" / "cyclegan-horse2zebra" / "model.safetensors"))
    assert {k.split(".")[0] for k in cached} == {"G_A"}
    again = zoo.load("cyclegan-horse2zebra")
    assert torch.equal(again.translate(x), model.translate(x))


def test_registry_lists_the_official_releases():
    names = zoo.list_models("cyclegan-*")
    assert len(names) == 18 and "cyclegan-horse2zebra" in names and "cyclegan-style_vangogh" in names
    info = zoo.info("cyclegan-zebra2horse")
    assert info["weights"]["official"]["url"].endswith("/zebra2horse.pth")
    assert info["io"]["directions"] == ["a2b"] and info["dataset"]["direction"] == "BtoA"


# ------------------------------------------------------------------------------------ resume and CLI
TINY = ["--model.init_args.ngf=8", "--model.init_args.ndf=8", "--model.init_args.netG=resnet_6blocks",
        "--data.load_size=36", "--data.crop_size=32", "--data.num_workers=0",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def _fit(data, root, epochs: int, resume: bool = False) -> CycleGAN:
    args = ["--model", "cyclegan", f"--data.root={data}", "--data.layout=unpaired", *TINY,
            f"--trainer.max_epochs={epochs}", f"--trainer.default_root_dir={root}", "--model.init_args.n_epochs=1",
            "--model.init_args.n_epochs_decay=2", "--model.init_args.pool_size=2", "--trainer.deterministic=true",
            "--baseline=false"]
    return fit_main([*args, "--ckpt_path=last"] if resume else args).model


def test_resume_is_exact_including_the_image_pools(tmp_path):
    data = make_unpaired(tmp_path / "data", n_train=3, n_val=1)
    straight = _fit(data, tmp_path / "straight", epochs=2)
    _fit(data, tmp_path / "resumed", epochs=1)
    resumed = _fit(data, tmp_path / "resumed", epochs=2, resume=True)
    assert_same_state(straight, resumed)
    a = straight.state_dict()
    for pool in ("fake_A_pool", "fake_B_pool"):
        x, y = getattr(straight, pool).images, getattr(resumed, pool).images
        assert len(x) == len(y) == 2 and all(torch.equal(p, q) for p, q in zip(x, y))
    longer = _fit(data, tmp_path / "longer", epochs=3).state_dict()
    assert not all(torch.equal(a[k], longer[k]) for k in a)


def test_cli_runs_on_the_builtin_unpaired_data(tmp_path):
    result = run_cli(["--model", "cyclegan", *TINY, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
                      "--trainer.limit_val_batches=1", f"--trainer.default_root_dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "built-in dataset" in result.stderr and "val/swd" in result.stdout
    model = zoo.load(tmp_path / "run" / "pretrained")
    assert isinstance(model, CycleGAN) and model.card["dataset"] == "zoo-builtin-edges2photo-unpaired"
    assert model.translate(torch.rand(1, 3, 20, 20), direction="b2a").shape == (1, 3, 20, 20)


def test_training_crops_that_the_networks_cannot_take_are_data_errors(tmp_path):
    data_root = make_unpaired(tmp_path / "d", n_train=1, n_val=1)
    for crop, match in ((30, "multiples of 4"), (16, "at least 24 pixels")):
        data = tiny_data(data_root, load_size=crop, crop_size=crop)
        with pytest.raises(zoo.DataError, match=match):
            tiny_trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(tiny(), datamodule=data)
