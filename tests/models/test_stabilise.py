"""The temporal stabiliser: training-free flow fusion and the learned network around any restorer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata

from fvr.errors import ConfigError
from fvr.metrics import flicker
from fvr.models import builtin_registry
from fvr.models.base import Restorer, RestorerSpec
from fvr.models.fusion import StabiliserConfig, neighbours, stabilise_clip
from fvr.models.nets import architectures, save_weights
from fvr.models.reference import ModelRef
from fvr.models.temporal.stabilise import FlowStabiliser, StabilisedRestorer, make_stabiliser

SIZE = 96


def _face(size: int = SIZE) -> np.ndarray:
    """(size, size, 3) float32 [0, 1]: the astronaut's face (public domain), as a textured test crop."""
    img = skdata.astronaut()[30:230, 140:340].astype(np.float32) / 255.0
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _moving_clip(t: int = 9, step: float = 0.7) -> np.ndarray:
    """(T, 3, S, S): the face drifting right by ``step`` px per frame (a residual motion after alignment)."""
    face = _face(SIZE + 16)
    frames = []
    for i in range(t):
        m = np.float32([[1, 0, -8 + i * step], [0, 1, -8]])
        frames.append(cv2.warpAffine(face, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return np.stack(frames).transpose(0, 3, 1, 2).astype(np.float32)


def _flickering(clean: np.ndarray, amplitude: float = 0.06, seed: int = 0) -> np.ndarray:
    """What a per-frame restorer does: invented detail that changes every frame (smooth random texture)."""
    rng = np.random.default_rng(seed)
    out = []
    for frame in clean:
        noise = cv2.GaussianBlur(rng.normal(0, 1, (SIZE, SIZE, 3)).astype(np.float32), (0, 0), 1.5)
        noise *= amplitude / max(float(noise.std()), 1e-6)
        out.append(np.clip(frame + noise.transpose(2, 0, 1), 0, 1))
    return np.stack(out).astype(np.float32)


def _u8(frame: np.ndarray) -> np.ndarray:
    return (np.clip(frame.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)


def _mean_flicker(clip: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([flicker(_u8(clip[i - 1]), _u8(clip[i]), _u8(truth[i - 1]), _u8(truth[i]))
                          for i in range(1, len(clip))]))


def test_stabiliser_cuts_flicker_on_a_flickering_sequence():
    clean = _moving_clip()
    restored = _flickering(clean)
    out = stabilise_clip(restored, clean)
    before, after = _mean_flicker(restored, clean), _mean_flicker(out, clean)
    assert after < 0.6 * before, (before, after)
    # and it moves towards the truth, not away from it (motion-compensated, not a blur of the motion)
    assert np.abs(out - clean).mean() < np.abs(restored - clean).mean()


def test_still_content_is_not_moved():
    still = np.repeat(_moving_clip(1), 6, axis=0)
    out = stabilise_clip(still, still)
    np.testing.assert_allclose(out, still, atol=1e-5)


def test_moving_content_without_flicker_is_kept():
    clean = _moving_clip(step=1.3)
    out = stabilise_clip(clean, clean)
    inner = (slice(None), slice(None), slice(12, -12), slice(12, -12))  # away from the border the shift exposes
    mse = float(((out[inner] - clean[inner]) ** 2).mean())
    assert 10 * np.log10(1 / mse) > 38, mse


def test_strength_and_window_zero_are_identity():
    clean = _moving_clip()
    restored = _flickering(clean)
    np.testing.assert_array_equal(stabilise_clip(restored, clean, StabiliserConfig(strength=0.0)), restored)
    np.testing.assert_array_equal(stabilise_clip(restored, clean, StabiliserConfig(window=0)), restored)
    half = stabilise_clip(restored, clean, StabiliserConfig(strength=0.5))
    full = stabilise_clip(restored, clean)
    np.testing.assert_allclose(half, np.clip(restored + 0.5 * (full - restored), 0, 1), atol=1e-5)


def test_causal_stabiliser_never_reads_the_future():
    clean = _moving_clip()
    restored = _flickering(clean)
    config = StabiliserConfig(causal=True)
    assert (config.past, config.future) == (2, 0)
    assert neighbours(4, 9, config) == [2, 3]
    changed_r, changed_g = restored.copy(), clean.copy()
    changed_r[5:] = 1 - changed_r[5:]
    changed_g[5:] = 1 - changed_g[5:]
    a = stabilise_clip(restored, clean, config)
    b = stabilise_clip(changed_r, changed_g, config)
    np.testing.assert_array_equal(a[:5], b[:5])


def test_flow_on_smaller_frames_stabilises_alike():
    """flow_size: flow computed on the crops shrunk to 48² and scaled back up still follows the motion (the
    vectors are scaled with the image), so flicker falls about as much and moving content is kept."""
    clean = _moving_clip(step=1.3)
    restored = _flickering(clean)
    full = stabilise_clip(restored, clean)
    small = stabilise_clip(restored, clean, StabiliserConfig(flow_size=48))
    before = _mean_flicker(restored, clean)
    assert _mean_flicker(small, clean) < 0.7 * before
    assert abs(_mean_flicker(small, clean) - _mean_flicker(full, clean)) < 0.15 * before
    kept = stabilise_clip(clean, clean, StabiliserConfig(flow_size=48))
    inner = (slice(None), slice(None), slice(12, -12), slice(12, -12))
    assert 10 * np.log10(1 / float(((kept[inner] - clean[inner]) ** 2).mean())) > 34
    np.testing.assert_array_equal(stabilise_clip(restored, clean, StabiliserConfig(flow_size=SIZE)), full)


def test_config_errors_are_one_line():
    for bad in ({"window": 9}, {"strength": 1.5}, {"flow_on": "gt"}, {"flow_preset": "slow"}, {"sigma_time": 0},
                {"flow_size": 16}, {"flow_size": 1.5}):
        with pytest.raises(ConfigError) as err:
            StabiliserConfig(**bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown stabiliser option"):
        make_stabiliser("flow", {"radius": 2})
    with pytest.raises(ConfigError, match="unknown stabiliser"):
        make_stabiliser("median")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        make_stabiliser("flow:window")


def test_inline_options_and_method_names():
    stab = make_stabiliser("flow:window=3:strength=0.5")
    assert isinstance(stab, FlowStabiliser) and stab.config.window == 3 and stab.config.strength == 0.5
    assert make_stabiliser("flow-causal").future == 0
    fast = make_stabiliser("flow-fast")
    assert (fast.name, fast.config.flow_size, fast.past, fast.future) == ("flow-fast", 256, 1, 1)
    assert make_stabiliser("flow-fast:window=2").name == "flow"  # options that leave the preset: named as `flow`
    assert StabilisedRestorer(_Flicker(), fast).spec.name == "flicker+flow-fast"
    ref = ModelRef.parse("image-baseline+flow")
    assert (ref.model, ref.stabiliser) == ("image-baseline", "flow")
    ref = ModelRef.parse("classical")
    assert (ref.model, ref.stabiliser) == ("classical", None)
    with pytest.raises(ConfigError):
        ModelRef.parse("+flow")


class _Flicker(Restorer):
    """A per-frame 'restorer' that adds frame-dependent texture (seeded by the frame content)."""

    spec = RestorerSpec("flicker", "non-learned", "per-frame", SIZE)

    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return _flickering(clip, seed=int(clip.sum() * 1000) % 2**31)


def test_stabilised_restorer_declares_context_and_wraps_any_restorer():
    wrapped = StabilisedRestorer(_Flicker(), FlowStabiliser())
    spec = wrapped.spec
    assert spec.name == "flicker+flow" and spec.temporal == "window" and (spec.past, spec.future) == (2, 2)
    assert "stabilised" in spec.tags
    clean = _moving_clip()
    lms = np.zeros((len(clean), 5, 2), np.float32)
    assert _mean_flicker(wrapped(clean, lms), clean) < 0.6 * _mean_flicker(_Flicker()(clean, lms), clean)


def test_registry_builds_model_plus_stabiliser():
    registry = builtin_registry(plugins=False)
    r = registry.create("classical+flow-causal", crop_size=128)
    assert r.spec.name == "classical+flow-causal" and r.spec.crop_size == 128 and r.spec.future == 0
    with pytest.raises(ConfigError, match="unknown model"):
        registry.create("nosuchmodel+flow")


# ----------------------------------------------------------------------------------------------- learned


def _tiny_stabiliser(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    arch = architectures()["stabiliser"]
    size, config = arch.preset("tiny")
    torch.manual_seed(0)
    net = arch.build(config)
    with torch.no_grad():  # a non-trivial blend so the test sees the network act
        net.body[-1].bias.copy_(torch.tensor([2.0, 0.0, 0.0, 0.0]))
    return save_weights(tmp_path / "stab.safetensors", arch, config, net, size, "tiny"), net


def test_learned_stabiliser_wraps_any_restorer(tmp_path):
    path, _ = _tiny_stabiliser(tmp_path)
    stab = make_stabiliser(str(path))
    assert (stab.past, stab.future) == (1, 1) and stab.name == "learned:stab"
    wrapped = StabilisedRestorer(_Flicker(), stab)
    clean = _moving_clip()
    lms = np.zeros((len(clean), 5, 2), np.float32)
    out = wrapped(clean, lms)
    assert out.shape == clean.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert _mean_flicker(out, clean) < _mean_flicker(_Flicker()(clean, lms), clean)
    off = StabilisedRestorer(_Flicker(), make_stabiliser(str(path), {"strength": 0.0}))
    np.testing.assert_allclose(off(clean, lms), _Flicker()(clean, lms), atol=1e-6)


def test_learned_stabiliser_fuses_at_its_trained_flow_size(tmp_path):
    """A stabiliser trained with ``flow_size`` (the fusion of ``flow-fast``) refines that fusion at restore time:
    with the blend saturated to the fused estimate (m = 1, r = 0) its output is the training-free stabiliser's."""
    from dataclasses import replace

    arch = architectures()["stabiliser"]
    size, config = arch.preset("tiny")
    config = replace(config, flow_size=48)
    net = arch.build(config)
    with torch.no_grad():
        net.body[-1].bias.copy_(torch.tensor([30.0, 0.0, 0.0, 0.0]))  # sigmoid(30) = 1: all fused
    path = save_weights(tmp_path / "stab-fs.safetensors", arch, config, net, size, "tiny")
    stab = make_stabiliser(str(path))
    clean = _moving_clip()
    restored = _Flicker()(clean, np.zeros((len(clean), 5, 2), np.float32))
    expected = stabilise_clip(restored, clean, StabiliserConfig(window=1, flow_size=48))
    np.testing.assert_allclose(stab(restored, clean), expected, atol=1e-5)
    assert np.abs(expected - stabilise_clip(restored, clean, StabiliserConfig(window=1))).max() > 1e-3


def test_learned_stabiliser_file_runs_its_base_as_a_model(tmp_path):
    path, _ = _tiny_stabiliser(tmp_path)  # base: classical, any crop size
    restorer = builtin_registry(plugins=False).create(str(path))
    assert restorer.spec.temporal == "window" and restorer.spec.past == 1
    clip = _moving_clip(4)[:, :, :32, :32].copy()
    out = restorer(np.ascontiguousarray(clip), np.zeros((4, 5, 2), np.float32))
    assert out.shape == clip.shape


def test_wrong_stabiliser_file_is_a_one_line_error(tmp_path):
    arch = architectures()["unet"]
    size, config = arch.preset("tiny")
    other = save_weights(tmp_path / "unet.safetensors", arch, config, arch.build(config), size, "tiny")
    with pytest.raises(ConfigError, match="not a trained stabiliser") as err:
        make_stabiliser(str(other))
    assert "\n" not in str(err.value)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(ConfigError) as err:
        make_stabiliser(str(broken))
    assert "\n" not in str(err.value) and "broken.safetensors" in str(err.value)


def test_learned_stabiliser_learns_past_both_of_its_inputs():
    """50 Adam steps of the network alone on one clip: it ends below the start and below both the per-frame
    (flickering) and the fused (stable, softer) estimate, which it can only do by combining them with the input."""
    arch = architectures()["stabiliser"]
    torch.manual_seed(0)
    net = arch.build(arch.preset("fast")[1])
    clean = torch.from_numpy(_moving_clip(5))
    lq = 0.6 * torch.nn.functional.avg_pool2d(clean, 3, 1, 1, count_include_pad=False) + 0.2
    restored = torch.from_numpy(_flickering(_moving_clip(5)))
    fused = torch.from_numpy(stabilise_clip(restored.numpy(), clean.numpy()))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def charbonnier(y: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((y - clean) ** 2 + 1e-6).mean()

    with torch.no_grad():
        first = float(charbonnier(net.refine(restored, fused, lq)))
    for _ in range(50):
        loss = charbonnier(net.refine(restored, fused, lq))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = float(charbonnier(net.refine(restored, fused, lq)))
    assert last < 0.8 * first
    assert last < float(charbonnier(fused)) < float(charbonnier(restored))


# ----------------------------------------------------------------------------------------------- pipeline and CLI


def test_restore_video_and_cli_with_a_stabiliser(tmp_path, capsys):
    from fvr.cli import main
    from fvr.run.config import RestoreConfig
    from fvr.run.pipeline import restore_video
    from media import face_clip, read_frames, write_video

    clip = write_video(tmp_path / "in.mp4", face_clip(10, 192))
    report = restore_video(clip, tmp_path / "a.mp4", RestoreConfig(model="classical", stabilise="flow",
                                                                   stabilise_options={"window": 1}))
    assert report.model == "classical+flow" and report.frames == 10 and report.face_frames == 10
    assert len(read_frames(tmp_path / "a.mp4")[0]) == 10
    code = main(["restore", str(clip), "-o", str(tmp_path / "b.mp4"), "-m", "classical", "--stabilise",
                 "flow-causal", "--stabilise-window", "1", "-q", "--json"])
    out = capsys.readouterr().out
    assert code == 0 and '"model": "classical+flow-causal"' in out
    code = main(["restore", str(clip), "-o", str(tmp_path / "c.mp4"), "-m", "classical", "--stabilise", "median"])
    err = capsys.readouterr().err
    assert code != 0 and "unknown stabiliser" in err and "Traceback" not in err
    assert not (tmp_path / "c.mp4").exists()
    code = main(["restore", str(clip), "-o", str(tmp_path / "d.mp4"), "-m", "classical", "--stabilise-window", "3"])
    assert code != 0 and "--stabilise" in capsys.readouterr().err


def test_shipped_learned_stabiliser_wraps_by_name():
    restorer = builtin_registry(plugins=False).create("classical+learned", crop_size=64)
    assert restorer.spec.name == "classical+learned" and (restorer.spec.past, restorer.spec.future) == (2, 2)
    clean = _moving_clip(5)[:, :, :64, :64].copy()
    out = restorer(np.ascontiguousarray(clean), np.zeros((5, 5, 2), np.float32))
    assert out.shape == clean.shape and np.isfinite(out).all()
