"""LPIPS and LPIPS diversity: equal to the reference `lpips` package given the same backbone weights,
order/duplicate invariant, and offline handling of the backbone file."""

from __future__ import annotations

import shutil

import pytest
import torch
import torchvision

from zoo.errors import CheckpointError, WeightsNotFoundError, ZooError
from zoo.metrics.lpips import LPIPS, LPIPSDiversity

lpips_pkg = pytest.importorskip("lpips")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:torchvision.*")  # lpips calls tv.alexnet(pretrained=)

ALEX_FILE = "alexnet-owt-7be5be79.pth"
ALEX_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"


@pytest.fixture(scope="module")
def backbone_files(tmp_path_factory):
    """Random torchvision AlexNet / VGG16 (seeded), saved as torchvision-format state dicts."""
    folder = tmp_path_factory.mktemp("backbones")
    out = {}
    torch.manual_seed(3)
    alexnet = torchvision.models.alexnet(weights=None)  # the whole model: LPIPS ignores `classifier.*`
    # VGG16's classifier is 500 MB and slow to initialise: only `features` (what LPIPS reads), as a
    # torchvision-format state dict.
    vgg_features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    for net, arch, state, features in (
        ("alex", "alexnet", alexnet.state_dict(), alexnet.features),
        ("vgg", "vgg16", {f"features.{k}": v for k, v in vgg_features.state_dict().items()}, vgg_features),
    ):
        path = folder / f"{arch}.pth"
        torch.save(state, path)
        out[net] = (path, features)
    return out


def reference(net: str, features: torch.nn.Module) -> torch.nn.Module:
    """The lpips package's LPIPS with the same backbone tensors copied into its slices."""
    ref = lpips_pkg.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    for k in range(1, 6):
        for name, module in getattr(ref.net, f"slice{k}").named_children():
            module.load_state_dict(features[int(name)].state_dict())
    return ref.eval()


def to_lpips_range(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round() / 255 * 2 - 1


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_lpips_package(backbone_files, net):
    path, features = backbone_files[net]
    g = torch.Generator().manual_seed(0)
    preds, target = torch.rand(3, 3, 40, 40, generator=g), torch.rand(3, 3, 40, 40, generator=g)
    target[0] = preds[0]  # one identical pair: distance 0
    metric = LPIPS(net=net, weights=path)
    metric.update(preds, target, index=torch.arange(3))
    value = metric.compute()
    with torch.no_grad():
        expected = reference(net, features)(to_lpips_range(preds), to_lpips_range(target)).reshape(-1).double()
    assert (metric._distance(preds, target) - expected).abs().max() <= 1e-6
    assert abs(value - expected.mean().item()) <= 1e-6
    assert value.protocol == f"lpips/{net}-v0.1/v1" and value.n == 3
    assert not value.comparable and "not the published file" in value.notes[0]  # a random file, not the published one
    assert list(metric.state_dict()) == [] and list(metric.parameters()) == []


def test_lpips_order_duplicates_and_inputs(backbone_files):
    path, _ = backbone_files["alex"]
    g = torch.Generator().manual_seed(1)
    preds, target = torch.rand(5, 3, 40, 40, generator=g), torch.rand(5, 3, 40, 40, generator=g)
    one = LPIPS(weights=path)
    one.update(preds, target, index=torch.arange(5))
    other = LPIPS(weights=path)
    other.update(preds[3:], target[3:], index=torch.tensor([3, 4]))
    other.update(preds[:3], target[:3], index=torch.arange(3))
    other.update(preds[:1], target[:1], index=torch.tensor([0]))  # DistributedSampler padding
    # Each distance is the same up to float32 convolution round-off, which depends on the batch.
    assert abs(other.compute() - one.compute()) <= 1e-7
    before = float(one.compute())
    one.update(preds[1:3], target[1:3], index=torch.tensor([1, 2]))  # duplicates count once
    assert float(one.compute()) == before
    uint8 = LPIPS(weights=path)
    uint8.update((preds * 255).round().to(torch.uint8), (target * 255).round().to(torch.uint8))
    assert abs(uint8.compute() - one.compute()) <= 1e-12
    with pytest.raises(ZooError, match="same shape"):
        one.update(preds, target[:, :, :32])
    with pytest.raises(ZooError, match=r"\[0, 1\]"):
        one.update(preds * 2 - 1, target)
    with pytest.raises(ZooError, match="net must be one of"):
        LPIPS(net="squeeze", weights=None)


def test_lpips_diversity_equals_consecutive_pairs(backbone_files):
    path, features = backbone_files["alex"]
    g = torch.Generator().manual_seed(2)
    samples = torch.rand(3, 4, 3, 40, 40, generator=g)  # 3 inputs, 4 outputs each -> 3 consecutive pairs
    metric = LPIPSDiversity(weights=path, n_pairs=3, n_inputs=3)
    metric.update(samples[:2], index=torch.tensor([0, 1]))
    metric.update(samples[2:], index=torch.tensor([2]))
    value = metric.compute()
    ref = reference("alex", features)
    with torch.no_grad():
        per_input = [
            ref(to_lpips_range(s[:-1]), to_lpips_range(s[1:])).reshape(-1).double().mean() for s in samples
        ]
    assert abs(value - torch.stack(per_input).mean().item()) <= 1e-6
    assert value.protocol == "lpips-diversity/alex-v0.1/3x3/v1" and value.n == 3
    assert value.notes == metric.notes  # only the (random file) backbone note: 3 inputs is the protocol here
    assert LPIPSDiversity.higher_is_better and not LPIPS.higher_is_better

    default = LPIPSDiversity(weights=path)  # the protocol: 100 inputs x 19 pairs
    assert default.protocol.id == "lpips-diversity/alex-v0.1/100x19/v1"
    with pytest.raises(ZooError, match="K = n_pairs \\+ 1 = 20"):
        default.update(samples)
    default.update(torch.rand(2, 20, 3, 40, 40, generator=g))
    result = default.compute()
    assert "2 inputs, the protocol uses 100" in result.notes and not result.comparable
    assert "2 inputs, the protocol uses 100" not in default.notes


def test_lpips_weights_missing_random_and_wrong(backbone_files, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo"))
    monkeypatch.delenv("ZOO_ALEXNET_WEIGHTS", raising=False)
    with pytest.raises(WeightsNotFoundError) as err:
        LPIPS()
    for part in (ALEX_FILE, ALEX_URL, "ZOO_ALEXNET_WEIGHTS", "weights=None"):
        assert part in str(err.value)
    with pytest.raises(WeightsNotFoundError, match="vgg16-397923af.pth"):
        LPIPSDiversity(net="vgg")

    path, _ = backbone_files["alex"]
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    shutil.copy(path, hub / ALEX_FILE)
    assert LPIPS().network.weights_path == hub / ALEX_FILE  # found where torch.hub would have cached it

    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(4))
    random = LPIPS(weights=None)
    random.update(x, x.flip(0))
    value = random.compute()
    assert not value.comparable and value.notes[0].startswith("random alexnet weights (weights=None)")
    again = LPIPS(weights=None)
    again.update(x, x.flip(0))
    assert float(again.compute()) == float(value)  # the random backbone is seeded

    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11), "features.99.weight": torch.zeros(1)}, wrong)
    pattern = r"missing keys \['features\.0\.bias'.*unexpected keys \['features\.99\.weight'\]"
    with pytest.raises(CheckpointError, match=pattern):
        LPIPS(weights=wrong)
    vgg_path, _ = backbone_files["vgg"]
    with pytest.raises(CheckpointError, match="vgg16.pth"):
        LPIPS(net="alex", weights=vgg_path)
