"""Official-weights converters of the translation methods: pix2pix, cyclegan, munit (issue 7).

The release files are rebuilt here from the reference layouts written out in
`reference/METHODS.md` (junyanz `UnetGenerator` / `ResnetGenerator`, NVlabs/MUNIT `AdaINGen`): every key
name and shape is generated from that description, independently of zoo's modules, at tiny widths (the
key names do not depend on the width) and full depth (they do depend on it). The tests check that the
converters use every official key, name any missing or leftover key, accept only the documented surgery,
and that the task verbs keep the reference's range conventions end to end: translate(x) on [0, 1] is
(G(2x - 1) + 1) / 2 of the converted network, as the references' Normalize(0.5, 0.5) / tensor2im do.
"""

from __future__ import annotations

import copy
import re

import pytest
import torch

import zoo
from zoo.registry import get_converter

Spec = dict[str, tuple[int, ...]]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ------------------------------------------------------------------------------ reference key layouts

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def unet_release_spec(ngf: int, num_downs: int = 8, input_nc: int = 3, output_nc: int = 3) -> Spec:
    """junyanz `UnetGenerator(norm=batch)` keys: nested `UnetSkipConnectionBlock`s reached through
    `.model.1` (outermost) then `.model.3`; down conv `.1` + BN `.2`, up ConvT `.5` + BN `.6`; innermost
    conv `.1`, ConvT `.3`, BN `.4`; outermost conv `model.model.0` (no bias), ConvT `model.model.3` (bias).
    Convs are bias-free next to BatchNorm. Encoder widths ngf, 2, 4, then 8 x ngf."""
    spec: Spec = {"model.model.0.weight": (ngf, input_nc, 4, 4),
                  "model.model.3.weight": (2 * ngf, output_nc, 4, 4), "model.model.3.bias": (output_nc,)}
    widths = [ngf, 2 * ngf, 4 * ngf] + [8 * ngf] * (num_downs - 3)  # outer width of each level
    prefix = "model.model.1.model"
    for level in range(1, num_downs):
        outer, inner = widths[level - 1], widths[level]
        if level == num_downs - 1:  # innermost: no norm after the bottleneck conv, ConvT from `inner`
            spec[f"{prefix}.1.weight"] = (inner, outer, 4, 4)
            spec[f"{prefix}.3.weight"] = (inner, outer, 4, 4)
            spec.update({f"{prefix}.4.{k}": (outer,) if k != "num_batches_tracked" else () for k in BN})
        else:
            spec[f"{prefix}.1.weight"] = (inner, outer, 4, 4)
            spec.update({f"{prefix}.2.{k}": (inner,) if k != "num_batches_tracked" else () for k in BN})
            spec[f"{prefix}.5.weight"] = (2 * inner, outer, 4, 4)
            spec.update({f"{prefix}.6.{k}": (outer,) if k != "num_batches_tracked" else () for k in BN})
        prefix += ".3.model"
    return spec


def resnet_release_spec(ngf: int, n_blocks: int = 9) -> Spec:
    """junyanz `ResnetGenerator(norm=instance, use_dropout=False)` keys: c7s1 `model.1`, downsampling
    `model.4`, `model.7`, blocks `model.{10..}` with `conv_block.{1,5}`, ConvT `model.{10+n, 13+n}`, final
    conv `model.{17+n}`; every conv has a bias (InstanceNorm), IN layers hold nothing."""
    c = 4 * ngf
    spec: Spec = {"model.1.weight": (ngf, 3, 7, 7), "model.1.bias": (ngf,),
                  "model.4.weight": (2 * ngf, ngf, 3, 3), "model.4.bias": (2 * ngf,),
                  "model.7.weight": (c, 2 * ngf, 3, 3), "model.7.bias": (c,)}
    for i in range(10, 10 + n_blocks):
        for j in (1, 5):
            spec[f"model.{i}.conv_block.{j}.weight"] = (c, c, 3, 3)
            spec[f"model.{i}.conv_block.{j}.bias"] = (c,)
    up1, up2, last = 10 + n_blocks, 13 + n_blocks, 17 + n_blocks
    spec.update({f"model.{up1}.weight": (c, 2 * ngf, 3, 3), f"model.{up1}.bias": (2 * ngf,),
                 f"model.{up2}.weight": (2 * ngf, ngf, 3, 3), f"model.{up2}.bias": (ngf,),
                 f"model.{last}.weight": (3, ngf, 7, 7), f"model.{last}.bias": (3,)})
    return spec


def resnet_instance_norm_modules(n_blocks: int = 9) -> list[str]:
    """Where the InstanceNorm layers sit (what PyTorch 0.3 saved running statistics for)."""
    blocks = [f"model.{i}.conv_block.{j}" for i in range(10, 10 + n_blocks) for j in (2, 6)]
    return ["model.2", "model.5", "model.8", *blocks, f"model.{11 + n_blocks}", f"model.{14 + n_blocks}"]


def munit_release_spec(dim: int, style_dim: int, mlp_dim: int, n_res: int = 4) -> Spec:
    """NVlabs/MUNIT `AdaINGen` (n_downsample 2) keys: `Conv2dBlock`s hold `.conv` (biased) and `.norm`;
    the style encoder's last 1x1 conv is `enc_style.model.6`; the decoder's AdaIN layers keep their dummy
    running buffers, its two upsampling blocks hold MUNIT LayerNorm `gamma`/`beta`; the MLP's `LinearBlock`s
    hold `.fc`, the last one producing 2 x C values per AdaIN layer."""
    c = 4 * dim
    spec: Spec = {}

    def conv(name: str, cout: int, cin: int, k: int) -> None:
        spec[f"{name}.conv.weight"], spec[f"{name}.conv.bias"] = (cout, cin, k, k), (cout,)

    for i, (cout, cin, k) in enumerate([(dim, 3, 7), (2 * dim, dim, 4), (c, 2 * dim, 4), (c, c, 4), (c, c, 4)]):
        conv(f"enc_style.model.{i}", cout, cin, k)
    spec["enc_style.model.6.weight"], spec["enc_style.model.6.bias"] = (style_dim, c, 1, 1), (style_dim,)
    for i, (cout, cin, k) in enumerate([(dim, 3, 7), (2 * dim, dim, 4), (c, 2 * dim, 4)]):
        conv(f"enc_content.model.{i}", cout, cin, k)
    for i in range(n_res):
        for j in range(2):
            conv(f"enc_content.model.3.model.{i}.model.{j}", c, c, 3)
            conv(f"dec.model.0.model.{i}.model.{j}", c, c, 3)
            spec[f"dec.model.0.model.{i}.model.{j}.norm.running_mean"] = (c,)
            spec[f"dec.model.0.model.{i}.model.{j}.norm.running_var"] = (c,)
    for name, cout, cin in (("dec.model.2", 2 * dim, c), ("dec.model.4", dim, 2 * dim)):
        conv(name, cout, cin, 5)
        spec[f"{name}.norm.gamma"], spec[f"{name}.norm.beta"] = (cout,), (cout,)
    conv("dec.model.5", 3, dim, 7)
    adain_params = 2 * 2 * n_res * 2 * c // 2  # n_res blocks x 2 AdaIN layers x (mean, std) x C
    for i, (cout, cin) in enumerate([(mlp_dim, style_dim), (mlp_dim, mlp_dim), (adain_params, mlp_dim)]):
        spec[f"mlp.model.{i}.fc.weight"], spec[f"mlp.model.{i}.fc.bias"] = (cout, cin), (cout,)
    return spec


def munit_pytorch03_extras(dim: int, n_res: int = 4) -> Spec:
    """What the PyTorch-0.3 release holds beyond that: the content encoder's InstanceNorm running stats."""
    widths = {"enc_content.model.0": dim, "enc_content.model.1": 2 * dim, "enc_content.model.2": 4 * dim}
    widths |= {f"enc_content.model.3.model.{i}.model.{j}": 4 * dim for i in range(n_res) for j in range(2)}
    return {f"{name}.norm.{stat}": (c,) for name, c in widths.items() for stat in ("running_mean", "running_var")}


def fill(spec: Spec, seed: int) -> dict[str, torch.Tensor]:
    """Random tensors of those shapes: weights ~ N(0, 1/fan_in) (activations stay O(1), tanh unsaturated),
    biases and means N(0, 0.1), variances and gains U(0.5, 1.5), batch counters a random count."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in spec.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[key] = torch.randint(1, 1000, (), generator=g)
        elif leaf in ("running_var", "gamma") or (leaf == "weight" and len(shape) == 1):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) == 1:
            state[key] = torch.randn(shape, generator=g) * 0.1
        else:
            fan_in = shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1)
            state[key] = torch.randn(shape, generator=g) / fan_in**0.5
    return state


def assert_uses_every_key(network: torch.nn.Module, release: dict[str, torch.Tensor]) -> None:
    """The converted network holds exactly the release's keys, each with the release's values."""
    state = network.state_dict()
    assert sorted(state) == sorted(release)
    unused = [k for k, v in release.items() if not torch.equal(state[k], v)]
    assert not unused, unused[:5]


def assert_names(error: pytest.ExceptionInfo, key: str) -> None:
    """The message names `key` as a whole key (not as a part of a longer one)."""
    assert re.search(rf"(?<![\w.]){re.escape(key)}(?!\w|\.\w)", str(error.value)), (key, str(error.value)[:300])


def groups(keys, size: int = 8) -> list[list[str]]:
    """Keys in groups small enough that a CheckpointError lists every one of them (it names up to 10)."""
    keys = list(keys)
    return [keys[i : i + size] for i in range(0, len(keys), size)]


# -------------------------------------------------------------------------------------------- pix2pix
P2P = dict(ngf=8, ndf=8)  # unet_256 at width 8: the release's 82 keys, 256 px inputs


@pytest.fixture(scope="module")
def p2p_release() -> dict[str, torch.Tensor]:
    return fill(unet_release_spec(P2P["ngf"]), seed=1)


def test_pix2pix_converter_uses_every_key_of_the_unet256_release(p2p_release):
    assert len(p2p_release) == 82  # the count of the reference's latest_net_G.pth (METHODS.md)
    model = get_converter("pix2pix")(p2p_release, **P2P)
    assert list(model.G) == ["a2b"] and model.io["directions"] == ["a2b"]
    assert_uses_every_key(model.G["a2b"], p2p_release)


def test_pix2pix_converter_accepts_only_the_documented_surgery(p2p_release):
    convert = get_converter("pix2pix")
    # DataParallel prefix, and files from before PyTorch 0.4.1 (no num_batches_tracked): both accepted
    old = {f"module.{k}": v for k, v in p2p_release.items() if not k.endswith("num_batches_tracked")}
    model = convert(old, **P2P)
    state = model.G["a2b"].state_dict()
    for k, v in p2p_release.items():
        if k.endswith("num_batches_tracked"):
            assert int(state[k]) == 0  # filled in (unused in eval)
        else:
            assert torch.equal(state[k], v), k
    reference = convert(p2p_release, **P2P)
    x = torch.rand(1, 3, 256, 256)
    assert torch.equal(model.translate(x), reference.translate(x))


def test_pix2pix_converter_names_every_missing_key(p2p_release):
    convert = get_converter("pix2pix")
    required = [k for k in p2p_release if not k.endswith("num_batches_tracked")]  # the one documented fill-in
    for group in groups(required):
        with pytest.raises(zoo.CheckpointError) as error:
            convert({k: v for k, v in p2p_release.items() if k not in group}, **P2P)
        for key in group:
            assert_names(error, key)


@pytest.mark.parametrize("extra", ["model.model.0.bias", "model.model.1.model.1.bias", "model.model.9.weight",
                                   "model.model.1.model.2.running_std"])
def test_pix2pix_converter_names_a_leftover_key(p2p_release, extra):
    with pytest.raises(zoo.CheckpointError) as error:
        get_converter("pix2pix")({**p2p_release, extra: torch.zeros(8)}, **P2P)
    assert_names(error, extra)


def test_pix2pix_translate_is_the_reference_test_pipeline_in_eval_mode(p2p_release):
    """The reference test: Normalize(0.5, 0.5) -> netG -> tensor2im's (y + 1) / 2; zoo runs it in eval()
    (the reference's test.py keeps train mode unless --eval; `eval_mode=False` reproduces that)."""
    model = get_converter("pix2pix")(p2p_release, **P2P)
    G = model.G["a2b"]
    x = torch.rand(2, 3, 256, 256)
    out = model.translate(x)
    with torch.no_grad():
        by_hand = (G.eval()(2 * x - 1) + 1) / 2
    assert torch.allclose(out, by_hand, atol=1e-6)
    assert out.min() >= 0 and out.max() <= 1 and out.std() > 0.01  # a real image, not a saturated one
    # train mode (test.py without --eval): batch statistics and dropout, the stored statistics untouched
    before = {k: v.clone() for k, v in G.state_dict().items()}
    torch.manual_seed(7)
    train_out = model.translate(x, eval_mode=False)
    assert all(torch.equal(v, before[k]) for k, v in G.state_dict().items())
    torch.manual_seed(7)
    with torch.no_grad():
        train_by_hand = (copy.deepcopy(G).train()(2 * x - 1) + 1) / 2
    assert torch.allclose(train_out, train_by_hand, atol=1e-6)
    assert not torch.allclose(train_out, out, atol=1e-3)


def test_pix2pix_converter_maps_one_file_per_direction(p2p_release):
    """Releases with a file per direction (maps: sat2map = a2b, map2sat = b2a)."""
    other = fill(unet_release_spec(P2P["ngf"]), seed=2)
    model = get_converter("pix2pix")({"a2b": p2p_release, "b2a": other}, **P2P, directions=["a2b", "b2a"])
    assert_uses_every_key(model.G["a2b"], p2p_release)
    assert_uses_every_key(model.G["b2a"], other)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.allclose(model.translate(x, "b2a"), (model.G["b2a"].eval()(2 * x - 1) + 1) / 2, atol=1e-6)
    assert not torch.allclose(model.translate(x, "a2b"), model.translate(x, "b2a"), atol=1e-3)


# ------------------------------------------------------------------------------------------- cyclegan
CG = dict(ngf=8, ndf=8)  # resnet_9blocks at width 8: the release's 48 keys


@pytest.fixture(scope="module")
def cg_release() -> dict[str, torch.Tensor]:
    return fill(resnet_release_spec(CG["ngf"]), seed=3)


def pytorch03_cyclegan(release: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """As PyTorch 0.3 saved it through DataParallel: `module.` prefix, IN running stats (+ counters)."""
    old = {f"module.{k}": v for k, v in release.items()}
    for name in resnet_instance_norm_modules():
        parent, index = name.rsplit(".", 1)
        c = len(release[f"{parent}.{int(index) - 1}.bias"])  # the conv right before the norm
        old[f"module.{name}.running_mean"] = torch.randn(c) * 0.1
        old[f"module.{name}.running_var"] = torch.rand(c) + 0.5
        old[f"module.{name}.num_batches_tracked"] = torch.tensor(5)
    return old


def test_cyclegan_converter_uses_every_key_of_the_resnet9_release(cg_release):
    assert len(cg_release) == 48  # METHODS.md: 48 keys
    model = get_converter("cyclegan")(cg_release, **CG)
    assert model.io["directions"] == ["a2b"] and model.inference_modules == ("G_A",)
    assert_uses_every_key(model.G_A, cg_release)


def test_cyclegan_converter_drops_pytorch03_instance_norm_statistics_only(cg_release):
    convert = get_converter("cyclegan")
    model = convert(pytorch03_cyclegan(cg_release), **CG)
    assert_uses_every_key(model.G_A, cg_release)
    # running statistics where no InstanceNorm layer sits are leftovers, not surgery
    for extra in ("model.1.running_mean", "model.26.running_var", "model.10.conv_block.1.num_batches_tracked",
                  "model.30.running_mean"):
        with pytest.raises(zoo.CheckpointError) as error:
            convert({**cg_release, extra: torch.zeros(8)}, **CG)
        assert_names(error, extra)


def test_cyclegan_converter_names_every_missing_key(cg_release):
    convert = get_converter("cyclegan")
    for group in groups(cg_release):
        with pytest.raises(zoo.CheckpointError) as error:
            convert({k: v for k, v in cg_release.items() if k not in group}, **CG)
        for key in group:
            assert_names(error, key)
    with pytest.raises(zoo.CheckpointError) as error:
        convert({**cg_release, "model.27.weight": torch.zeros(1)}, **CG)
    assert_names(error, "model.27.weight")


@pytest.mark.parametrize("size", [(256, 256), (36, 52)])
def test_cyclegan_translate_is_the_reference_test_pipeline(cg_release, size):
    """--model test --no_dropout: Normalize(0.5, 0.5) -> netG -> (y + 1) / 2, at sizes the reference
    accepts (multiples of 4; `--preprocess none` keeps them)."""
    model = get_converter("cyclegan")(cg_release, **CG)
    x = torch.rand(1, 3, *size)
    out = model.translate(x, "a2b")
    with torch.no_grad():
        by_hand = (model.G_A(2 * x - 1) + 1) / 2
    assert out.shape == x.shape
    assert torch.allclose(out, by_hand, atol=1e-6)
    assert out.min() >= 0 and out.max() <= 1 and out.std() > 0.01


def test_cyclegan_single_direction_release_refuses_the_other_direction(cg_release):
    model = get_converter("cyclegan")(cg_release, **CG)
    x = torch.rand(1, 3, 32, 32)
    for ask in ("b2a", "BtoA"):
        with pytest.raises(zoo.ZooError, match="absent") as error:
            model.translate(x, ask)
        assert "a2b" in str(error.value)
    with pytest.raises(zoo.ZooError, match="absent"):
        model(x * 2 - 1, "b2a")  # forward never runs the untrained G_B either
    assert torch.equal(model.translate(x), model.translate(x, "AtoB"))
    both = get_converter("cyclegan")({"a2b": cg_release, "b2a": fill(resnet_release_spec(8), seed=4)}, **CG)
    assert both.io["directions"] == ["a2b", "b2a"]
    with torch.no_grad():
        assert torch.allclose(both.translate(x, "b2a"), (both.G_B(2 * x - 1) + 1) / 2, atol=1e-6)


# ---------------------------------------------------------------------------------------------- munit
MU = dict(dim=8, style_dim=8, mlp_dim=16, dis_dim=8)  # edges2shoes depth (n_downsample 2, n_res 4), width 8


@pytest.fixture(scope="module")
def mu_release() -> dict[str, dict[str, torch.Tensor]]:
    spec = munit_release_spec(MU["dim"], MU["style_dim"], MU["mlp_dim"])
    return {d: fill(spec, seed=5 + i) for i, d in enumerate("ab")}


@pytest.fixture(scope="module")
def mu_model(mu_release):
    return get_converter("munit")(mu_release, **MU)


def pytorch03_munit(release: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, torch.Tensor]]:
    extras = munit_pytorch03_extras(MU["dim"])
    return {d: {**state, **fill(extras, seed=9)} for d, state in release.items()}


def test_munit_converter_uses_every_key_and_keeps_adain_buffers(mu_release, mu_model):
    assert all(len(state) == 82 for state in mu_release.values())  # METHODS.md: 82 keys per generator
    for d in "ab":
        assert_uses_every_key(mu_model.generator_of(d), mu_release[d])
    assert any(k.endswith("norm.running_var") and k.startswith("dec.") for k in mu_release["a"])


def test_munit_converter_drops_the_pytorch03_content_encoder_statistics_only(mu_release):
    convert = get_converter("munit")
    old = pytorch03_munit(mu_release)
    assert len(old["a"]) == 82 + 22
    model = convert(old, **MU)
    for d in "ab":
        assert_uses_every_key(model.generator_of(d), mu_release[d])
    # statistics anywhere else (a conv, the decoder's LayerNorm, a style-encoder block) are leftovers
    for extra in ("enc_content.model.0.conv.running_mean", "dec.model.2.norm.running_var",
                  "enc_style.model.1.norm.running_mean", "enc_content.model.0.norm.num_batches_tracked"):
        with pytest.raises(zoo.CheckpointError) as error:
            convert({"a": {**old["a"], extra: torch.zeros(8)}, "b": old["b"]}, **MU)
        assert_names(error, extra)


def test_munit_converter_names_every_missing_key(mu_release):
    convert = get_converter("munit")
    for group in groups(mu_release["b"]):
        with pytest.raises(zoo.CheckpointError) as error:
            convert({"a": mu_release["a"], "b": {k: v for k, v in mu_release["b"].items() if k not in group}}, **MU)
        for key in group:
            assert_names(error, key)


def test_munit_converter_names_missing_and_leftover_generators(mu_release):
    convert = get_converter("munit")
    with pytest.raises(zoo.CheckpointError) as error:
        convert({"a": mu_release["a"]}, **MU)
    assert_names(error, "'b'")
    with pytest.raises(zoo.CheckpointError) as error:
        convert({**mu_release, "dis": {}}, **MU)
    assert_names(error, "'dis'")
    with pytest.raises(zoo.CheckpointError):
        convert(mu_release["a"], **MU)  # one generator's state, not {'a': ..., 'b': ...}


def munit_by_hand(model, x: torch.Tensor, code: torch.Tensor, source: str, target: str) -> torch.Tensor:
    """test.py: content from the source generator, decode with the target's, (y + 1) / 2."""
    with torch.no_grad():
        content = model.generator_of(source).enc_content(2 * x - 1)
        return (model.generator_of(target).decode(content, code) + 1) / 2


@pytest.mark.parametrize("direction,source,target", [("a2b", "a", "b"), ("b2a", "b", "a")])
def test_munit_translate_with_a_style_code_and_a_style_image(mu_model, direction, source, target):
    x = torch.rand(1, 3, 32, 48)
    code = torch.randn(1, 8, 1, 1)
    out = mu_model.translate(x, direction, style=code)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1 and out.std() > 0.01
    assert torch.allclose(out, munit_by_hand(mu_model, x, code, source, target), atol=1e-6)
    assert torch.equal(mu_model.translate(x, direction, style=code.flatten()), out)
    # test.py --style: the style code of a target-domain image, from the target's style encoder
    style_image = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        code = mu_model.generator_of(target).enc_style(2 * style_image - 1)
    out = mu_model.translate(x, direction, style=style_image)
    assert torch.allclose(out, munit_by_hand(mu_model, x, code, source, target), atol=1e-6)


def test_munit_sample_decodes_seeded_prior_codes(mu_model):
    """sample(x, n, seed): n codes ~ N(0, I) from a CPU generator seeded `seed` (test.py's loop over
    --num_style random codes, each decoded with the same content)."""
    x = torch.rand(1, 3, 32, 32)
    out = mu_model.sample(x, n=3, seed=11)
    codes = torch.randn(3, 8, 1, 1, generator=torch.Generator().manual_seed(11))
    by_hand = torch.cat([munit_by_hand(mu_model, x, codes[j : j + 1], "a", "b") for j in range(3)])
    assert out.shape == (3, 3, 32, 32)
    assert torch.allclose(out, by_hand, atol=1e-5)
    assert torch.equal(mu_model.sample(x, n=3, seed=11), out)
    assert (out[0] - out[1]).abs().max() > 1e-3  # different styles, different images
