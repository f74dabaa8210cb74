"""Images too small (or of the wrong multiple) for a method's networks: a `DataError` naming the size that
works, raised before any training or validation step runs, and that size then trains. The size probe
leaves no trace: BatchNorm statistics, RNG streams and compiled networks are as they were."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from torch.utils.data import DataLoader

import zoo
from zoo.training import check_training_size

from _helpers import assert_same_state, tiny_trainer

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "pix2pix": dict(ngf=4, ndf=4, netG="unet_128"),
    "cyclegan": dict(ngf=4, ndf=4, netG="resnet_6blocks"),
    "munit": dict(dim=4, mlp_dim=8, dis_dim=4, n_res=1, val_lpips=False),
    "adain": dict(vgg_weights=None),
    "johnson": dict(width=4, vgg_weights=None),
    "cin": dict(num_styles=1, width=4, vgg_weights=None),
}


def loader(size: int, n: int = 2) -> DataLoader:
    """Batches with every method's keys: A/B (translation), content/style (+ style_index for cin)."""
    g = torch.Generator().manual_seed(0)
    items = [{"A": torch.rand(3, size, size, generator=g) * 2 - 1, "B": torch.rand(3, size, size, generator=g) * 2 - 1,
              "content": torch.rand(3, size, size, generator=g), "style": torch.rand(3, size, size, generator=g),
              "style_index": 0} for _ in range(n)]
    return DataLoader(items, batch_size=n)


def tiny(key: str) -> zoo.ZooModule:
    torch.manual_seed(0)
    return zoo.create(key, **TINY[key])


@pytest.mark.parametrize("key, size, multiple, least", [
    ("pix2pix", 64, 128, 128), ("pix2pix", 192, 128, 128), ("cyclegan", 12, 4, 24), ("cyclegan", 26, 4, 24),
    ("munit", 32, 4, 64), ("adain", 6, None, 9), ("johnson", 4, 4, 8), ("johnson", 10, 4, 8),
    ("cin", 4, 4, 8),
])
def test_a_size_the_networks_cannot_take_is_a_data_error_before_any_step(tmp_path, key, size, multiple, least):
    model = tiny(key)
    before = copy.deepcopy(model)
    # The baseline validation comes first, as in `zoo.fit`: it must fail with the message, not a traceback.
    trainer = tiny_trainer(tmp_path, max_steps=1, num_sanity_val_steps=1)
    with pytest.raises(zoo.DataError, match=rf"images of {size}x{size} do not fit {key}") as error:
        trainer.fit(model, loader(size), loader(size))
    message = str(error.value)
    assert f"at least {least} pixels" in message and "--data.crop_size" in message
    assert (f"multiples of {multiple}" in message) == (multiple is not None)
    assert_same_state(before, model)  # no step ran


@pytest.mark.parametrize("key", list(TINY))
def test_the_size_the_message_names_trains_and_validates(tmp_path, key):
    with pytest.raises(zoo.DataError) as error:
        tiny_trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(tiny(key), loader(4))
    side = int(re.search(r"at least (\d+) pixels", str(error.value)).group(1))
    model = tiny(key)
    tiny_trainer(tmp_path, max_steps=1, num_sanity_val_steps=1).fit(model, loader(side), loader(side))
    assert model.global_step > 0


def test_the_probe_leaves_batchnorm_statistics_rng_and_compiled_networks_as_they_were():
    model = tiny("pix2pix").train()  # BatchNorm in training mode, dropout in the U-Net
    before = copy.deepcopy(model)
    model.G["a2b"].compile(backend="eager")
    images = torch.rand(2, 3, 128, 128)
    rng = torch.random.get_rng_state()
    frames = torch._dynamo.utils.counters["frames"]["total"]
    probes = model.size_probes({"A": images, "B": images})
    for batch, networks, multiple in probes:
        check_training_size(model, batch, networks, multiple)
    assert_same_state(before, model)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert torch._dynamo.utils.counters["frames"]["total"] == frames  # nothing was traced for the probe
    assert (128, 128) in model._checked_training_sizes
    # and a real forward does change the statistics, so the check above can fail
    model.G["a2b"](images)
    with pytest.raises(AssertionError, match="running_mean"):
        assert_same_state(before, model)
