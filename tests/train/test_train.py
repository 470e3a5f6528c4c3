"""fvr.train (config, data cache, sampler, losses, loop, checkpoints/resume), fvr.export and their CLI commands.

Everything is tiny: 32² crops, T = 3, a 2-conv residual test architecture, a 12-frame 160² synthetic video.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fvr.cli import main
from fvr.errors import ConfigError
from fvr.models.nets.blocks import from_frames, to_frames
from fvr.models.nets.core import ArchSpec, TrainBatch, load_weights
from fvr.models.nets.prior import NUM_PRIOR_CHANNELS

ROOT = Path(__file__).resolve().parents[2]

# ----------------------------------------------------------------------------------------------- test archs


@dataclass(frozen=True)
class TinyConfig:
    channels: int = 4
    prior: bool = False
    bias: float = 0.0  # initial output offset: a deliberately wrong start the loop must train away


class TinyNet(nn.Module):
    """y = x + conv(relu(conv([x, prior]))): a 2-conv residual net (B, T, 3, S, S) -> same."""

    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.cfg = cfg
        cin = 3 + (NUM_PRIOR_CHANNELS if cfg.prior else 0)
        self.c1 = nn.Conv2d(cin, cfg.channels, 3, padding=1)
        self.c2 = nn.Conv2d(cfg.channels, 3, 3, padding=1)
        nn.init.constant_(self.c2.bias, cfg.bias)

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        frames, b, t = to_frames(x)
        inp = torch.cat([frames, to_frames(prior)[0]], 1) if self.cfg.prior else frames
        return from_frames(frames + self.c2(F.relu(self.c1(inp))), b, t)


def tiny_training_loss(net: nn.Module, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
    """An own objective that draws random numbers (as diffusion training does): denoise lq + noise."""
    noisy = batch.lq + 0.02 * torch.randn_like(batch.lq)
    loss = ((net(noisy, batch.prior) - batch.hq) ** 2).mean()
    return loss, {"mse": float(loss.detach())}


def _presets(prior: bool) -> dict[str, tuple[int, TinyConfig]]:
    return {"fast": (32, TinyConfig(4, prior)), "quality": (32, TinyConfig(8, prior)),
            "tiny": (32, TinyConfig(4, prior))}


TINY = ArchSpec(name="tiny-test", kind="cnn", temporal="per-frame", description="2-conv residual test net",
                config=TinyConfig, build=TinyNet, presets=_presets(False))
TINY_PRIOR = ArchSpec(name="tiny-prior", kind="cnn", temporal="per-frame", description="2-conv net with prior",
                      config=TinyConfig, build=TinyNet, presets=_presets(True), uses_prior=True)
TINY_OWN = ArchSpec(name="tiny-own", kind="diffusion", temporal="per-frame", description="own training loss",
                    config=TinyConfig, build=TinyNet, presets=_presets(False), feed_forward=False,
                    training_loss=tiny_training_loss)
ARCHS = {a.name: a for a in (TINY, TINY_PRIOR, TINY_OWN)}


@pytest.fixture
def test_archs(monkeypatch: pytest.MonkeyPatch) -> dict[str, ArchSpec]:
    """Make the CLI (which asks fvr.models.nets.architectures()) see the test architectures."""
    from fvr.models import nets

    monkeypatch.setattr(nets, "architectures", lambda: dict(ARCHS))
    return ARCHS


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is faster than two fighting over a shared, busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fvr.synthetic import moving_face_frames
    from media import write_video

    path = tmp_path_factory.mktemp("video") / "face.mp4"
    return write_video(path, list(moving_face_frames(12, size=160)))


@pytest.fixture(scope="module")
def val_video(video: Path) -> Path:
    """A held-out clip for validation (a copy: only its path must differ from the training clip's)."""
    path = video.with_name("val-face.mp4")
    path.write_bytes(video.read_bytes())
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def write_config(folder: Path, video: Path, cache: Path, *, arch: str = "tiny-test", val: Path | None = None,
                 extra: str = "", **sections: dict) -> Path:
    """A TOML config training on ``video`` (validating on ``val``) at 32², T = 3."""
    base = {
        "model": {"arch": arch, "preset": "tiny"},
        "data": {"clips": [str(video)], "val_clips": [str(val)] if val else [], "crop_size": 32, "clip_len": 3,
                 "cache": str(cache), "val_windows": 2},
        "degrade": {"presets": {"vfhq": 0.5, "jpeg": 0.5}},
        "optim": {"batch_size": 2, "steps": 4, "warmup": 1, "lr": 2e-3},
        "run": {"out": "run", "val_every": 2, "ckpt_every": 2, "log_every": 1, "device": "cpu"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    from fvr.train.config import toml_value

    lines = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    path = folder / "train.toml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------------------------- config


def test_config_parse_resolve_and_round_trip(tmp_path: Path) -> None:
    from fvr.train.config import config_to_toml, load_config

    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.toml"
    path.write_text(textwrap.dedent("""
        [model]
        arch = "tiny-test"
        options = {channels = 6}
        [data]
        clips = ["videos/*.mp4"]
        [degrade.presets]
        vfhq = 0.6
        old-film = 0.2
        jpeg = 0.2
        [optim]
        betas = [0.8, 0.9]
        [run]
        out = "../runs/x"
    """), encoding="utf-8")
    cfg = load_config(path)
    assert cfg.model.options == {"channels": 6}
    assert cfg.data.clips == (str(tmp_path / "sub" / "videos" / "*.mp4"),)  # relative to the config's folder
    assert Path(cfg.run.out) == tmp_path / "runs" / "x"
    assert cfg.degrade.presets == {"vfhq": 0.6, "old-film": 0.2, "jpeg": 0.2}
    assert cfg.optim.betas == (0.8, 0.9) and cfg.optim.steps == 10000  # defaults fill the rest
    again = tmp_path / "again.toml"
    again.write_text(config_to_toml(cfg), encoding="utf-8")
    from dataclasses import replace

    assert replace(load_config(again), source="") == replace(cfg, source="")


@pytest.mark.parametrize("text, fragment", [
    ("[model]\narch = 'a'\n[data]\nclips = ['x']\nfoo = 1\n", "data.foo"),
    ("[model]\narch = 'a'\n[data]\nclips = ['x']\n[bogus]\n", "[bogus]"),
    ("[model]\narch = 'a'\n[data]\nclips = ['x']\n[optim]\nsteps = 'many'\n", "optim.steps"),
    ("[model]\narch = 'a'\n[data]\nclips = ['x']\n[run]\ndevice = 'tpu'\n", "run.device"),
    ("[model]\narch = 'a'\n", "data.clips"),
    ("[model\n", "not valid TOML"),
])
def test_config_errors_are_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    from fvr.train.config import load_config

    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_yaml_config_needs_pyyaml(tmp_path: Path) -> None:
    from fvr.train.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("model:\n  arch: tiny-test\ndata:\n  clips: [a.mp4]\n", encoding="utf-8")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="PyYAML"):
            load_config(path)
    else:
        assert load_config(path).model.arch == "tiny-test"


# ----------------------------------------------------------------------------------------------- data


def test_cache_built_from_video_and_reused(video: Path, cache_dir: Path, tmp_path: Path) -> None:
    from fvr.train.config import config_from_mapping
    from fvr.train.data import load_data

    cfg = config_from_mapping({"model": {"arch": "tiny-test"}, "data": {"clips": [str(video)], "crop_size": 32,
                                                                        "cache": str(cache_dir)}})
    data = load_data(cfg, 32)
    assert len(data.train) == 1  # the astronaut's face: one track
    clip = data.train[0]
    assert clip.frames.shape == (12, 32, 32, 3) and clip.frames.dtype == np.uint8
    assert clip.landmarks.shape == (12, 5, 2) and clip.landmarks.dtype == np.float32
    from fvr.faces import face_template

    assert np.abs(clip.landmarks.mean(0) - face_template(32)).max() < 2.0  # aligned: landmarks near the template
    manifests = [json.loads(p.read_text()) for p in cache_dir.glob("*.json")]
    manifests = [m for m in manifests if m["source"] == str(video.resolve())]
    assert len(manifests) == 1
    manifest = manifests[0]
    assert manifest["settings"]["crop_size"] == 32
    assert manifest["stamp"]["size"] == video.stat().st_size and manifest["clips"][0]["frames"] == 12
    npz = cache_dir / manifest["clips"][0]["file"]
    mtime = npz.stat().st_mtime_ns
    again = load_data(cfg, 32)  # reused: nothing rewritten, same arrays
    assert npz.stat().st_mtime_ns == mtime
    assert np.array_equal(again.train[0].frames, clip.frames)


def test_batch_shapes_ranges_and_degradation(video: Path, cache_dir: Path) -> None:
    from fvr.train.config import config_from_mapping
    from fvr.train.data import ClipSampler, load_data

    cfg = config_from_mapping({
        "model": {"arch": "tiny-prior"},
        "data": {"clips": [str(video)], "crop_size": 32, "clip_len": 3, "cache": str(cache_dir)},
        "degrade": {"presets": {"vfhq": 1.0, "old-film": 1.0}},
        "augment": {"hflip": 0.5, "color_jitter": 0.2, "scale_jitter": 0.05, "rotate_jitter": 3.0,
                    "shift_jitter": 1.0, "align_jitter": 0.5},
        "optim": {"batch_size": 3},
    })
    data = load_data(cfg, 32)
    sampler = ClipSampler(data.train, cfg, 32, uses_prior=True, use_codec=True)
    batch = sampler.batch(7)
    assert batch.lq.shape == batch.hq.shape == (3, 3, 3, 32, 32)
    assert batch.landmarks.shape == (3, 3, 5, 2) and batch.prior.shape == (3, 3, 8, 32, 32)
    for t in (batch.lq, batch.hq, batch.prior):
        assert t.dtype == torch.float32 and float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert float((batch.lq - batch.hq).abs().mean()) > 0.02  # degraded
    again = sampler.batch(7)  # stateless: a step's batch is reproducible
    assert torch.equal(again.lq, batch.lq) and torch.equal(again.hq, batch.hq)
    assert not torch.equal(sampler.batch(8).hq, batch.hq)


def test_threads_give_the_same_batches(video: Path, cache_dir: Path) -> None:
    from fvr.train.config import config_from_mapping
    from fvr.train.data import ClipSampler, load_data

    cfg = config_from_mapping({"model": {"arch": "tiny-test"}, "data": {"clips": [str(video)], "crop_size": 32,
                                                                        "clip_len": 2, "cache": str(cache_dir)},
                               "optim": {"batch_size": 3}})
    clips = load_data(cfg, 32).train
    inline = ClipSampler(clips, cfg, 32, uses_prior=False, use_codec=True)
    for workers in (2, 1):  # one worker: the prefetch must not wait on its own thread
        threaded = ClipSampler(clips, cfg, 32, uses_prior=False, use_codec=True, num_workers=workers)
        try:
            for step in (0, 1, 5):  # 1 comes from the prefetch of 0; 5 is computed afresh
                a, b = inline.batch(step), threaded.batch(step)
                assert torch.equal(a.lq, b.lq) and torch.equal(a.hq, b.hq) and torch.equal(a.landmarks, b.landmarks)
        finally:
            threaded.close()


def test_frames_mode_patches(video: Path, tmp_path: Path) -> None:
    from fvr.train.config import config_from_mapping
    from fvr.train.data import ClipSampler, load_data

    cfg = config_from_mapping({"model": {"arch": "tiny-test"},
                               "data": {"clips": [str(video)], "mode": "frames", "crop_size": 32, "clip_len": 3,
                                        "cache": str(tmp_path), "frame_max_side": 80},
                               "augment": {"shift_jitter": 2.0}, "optim": {"batch_size": 2}})
    data = load_data(cfg, 32)
    assert data.train[0].frames.shape == (12, 80, 80, 3) and data.train[0].landmarks is None
    batch = ClipSampler(data.train, cfg, 32, uses_prior=False, use_codec=True).batch(0)
    assert batch.hq.shape == batch.lq.shape == (2, 3, 3, 32, 32) and batch.prior is None


def test_patch_windows_of_face_crops(video: Path, cache_dir: Path) -> None:
    from fvr.train.config import config_from_mapping
    from fvr.train.data import ClipSampler, check_scales, load_data, validation_samples

    cfg = config_from_mapping({"model": {"arch": "tiny-prior"},
                               "data": {"clips": [str(video)], "crop_size": 32, "patch": 16, "clip_len": 3,
                                        "cache": str(cache_dir)},
                               "augment": {"hflip": 0.0}, "optim": {"batch_size": 2}})
    check_scales(cfg, 32)
    sampler = ClipSampler(load_data(cfg, 32).train, cfg, 32, uses_prior=True, use_codec=False)
    batch = sampler.batch(3)
    assert batch.hq.shape == batch.lq.shape == (2, 3, 3, 16, 16) and batch.prior.shape[-2:] == (16, 16)
    clip = sampler.clips[0]
    windows = set()
    for seed in range(6):
        sample = sampler.make_sample(clip, 1, np.random.default_rng(seed), augment=True)
        hq = np.rint(sample.hq.transpose(0, 2, 3, 1) * 255).astype(np.uint8)
        # the HQ patch is a window of the cached crops, the same in every frame, and the landmarks moved with it
        found = [(y, x) for y in range(17) for x in range(17)
                 if np.array_equal(hq, clip.frames[1:4, y:y + 16, x:x + 16])]
        assert len(found) >= 1
        y, x = found[0]
        assert np.allclose(sample.landmarks, clip.landmarks[1:4] - np.array([x, y], np.float32))
        windows.add(found[0])
    assert len(windows) > 1  # the window moves from sample to sample
    val = validation_samples(sampler, sampler.clips, 2)  # validation keeps whole crops
    assert val[0].hq.shape == (3, 3, 32, 32)


@pytest.mark.parametrize("data, fragment", [
    ({"crop_size": 32, "patch": 40}, "data.patch"),
    ({"crop_size": 32, "patch": 20}, "data.patch 20 is not a multiple"),
    ({"crop_size": 32, "patch": 16, "mode": "frames"}, "faces mode"),
])
def test_patch_refusals(video: Path, data: dict, fragment: str) -> None:
    from fvr.train.config import config_from_mapping
    from fvr.train.data import check_scales

    with pytest.raises(ConfigError) as info:
        cfg = config_from_mapping({"model": {"arch": "tiny-test"}, "data": {"clips": [str(video)], **data},
                                   "degrade": {"presets": {"vfhq": 1.0}}})
        check_scales(cfg, 32)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_degradation_scales_are_drawn_per_sample(video: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """degrade.scales: each sample's down-sampling factor is drawn by weight (reproducibly per step); the LQ input
    is still up-sampled back to the crop size."""
    from fvr.train import data as train_data
    from fvr.train.config import config_from_mapping
    from fvr.train.data import ClipSampler, check_scales, load_data

    cfg = config_from_mapping({"model": {"arch": "tiny-test"},
                               "data": {"clips": [str(video)], "crop_size": 32, "clip_len": 2, "cache": str(cache_dir)},
                               "degrade": {"presets": {"vfhq": 1.0}, "scales": {"1": 0.5, "4": 0.5, "2": 0.0}},
                               "optim": {"batch_size": 4}})
    check_scales(cfg, 32)
    seen: list[int] = []
    original = train_data.degrade_clip

    def recording(hq, params, seed, use_codec):
        seen.append(params.scale)
        return original(hq, params, seed, use_codec)

    monkeypatch.setattr(train_data, "degrade_clip", recording)
    sampler = ClipSampler(load_data(cfg, 32).train, cfg, 32, uses_prior=False, use_codec=False)
    batches = [sampler.batch(step) for step in range(6)]
    assert all(b.lq.shape == (4, 2, 3, 32, 32) for b in batches)
    assert set(seen) == {1, 4}  # both drawn, the zero-weight factor never
    first = list(seen)
    seen.clear()
    again = [sampler.batch(step) for step in range(6)]
    assert seen == first and all(torch.equal(a.lq, b.lq) for a, b in zip(batches, again, strict=True))


@pytest.mark.parametrize("degrade, fragment", [
    ({"scales": {"x": 1.0}}, "degrade.scales keys"),
    ({"scales": {"2": -1.0}}, "degrade.scales weights"),
    ({"scales": {"2": 1.0}, "overrides": {"scale": 2}}, "not both"),
    ({"scales": {"2": 0.5, "8": 0.5}}, "not a multiple of 2 x 8"),
])
def test_degradation_scales_refusals(video: Path, degrade: dict, fragment: str) -> None:
    from fvr.train.config import config_from_mapping
    from fvr.train.data import check_scales

    with pytest.raises(ConfigError) as info:
        cfg = config_from_mapping({"model": {"arch": "tiny-test"},
                                   "data": {"clips": [str(video)], "crop_size": 24},
                                   "degrade": {"presets": {"vfhq": 1.0}, **degrade}})
        check_scales(cfg, 24)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_flip_swaps_landmarks(video: Path, cache_dir: Path) -> None:
    from fvr.train.config import config_from_mapping
    from fvr.train.data import ClipSampler, load_data

    cfg = config_from_mapping({"model": {"arch": "tiny-test"}, "data": {"clips": [str(video)], "crop_size": 32,
                                                                        "clip_len": 2, "cache": str(cache_dir)},
                               "augment": {"hflip": 1.0}})
    sampler = ClipSampler(load_data(cfg, 32).train, cfg, 32, uses_prior=False, use_codec=False)
    hq = sampler.clips[0].frames[:2]
    lm = sampler.clips[0].landmarks[:2]
    flipped, flm = sampler._photometric(hq.copy(), lm.copy(), np.random.default_rng(0))
    assert np.array_equal(flipped, hq[:, :, ::-1])
    assert np.allclose(flm[:, 0, 0], 31 - lm[:, 1, 0]) and np.allclose(flm[:, 0, 1], lm[:, 1, 1])  # eyes swap
    assert flm[0, 0, 0] < flm[0, 1, 0]  # left eye (smaller x) still first


def test_permissive_list() -> None:
    from fvr.train.data import check_permissive, is_permissive

    assert is_permissive("/data/train/liveportrait-d6.mp4") and is_permissive("retalking-2.mp4")
    assert not is_permissive("train/mead-M003.mp4")
    with pytest.raises(ConfigError, match="permissive"):
        check_permissive(["a/liveportrait-d1.mp4", "b/pcavs-1.mp4"])


def test_jpeg_standin_without_codec() -> None:
    from fvr.degrade import sample_params
    from fvr.train.data import crf_to_jpeg_quality, degrade_clip

    hq = [np.full((32, 32, 3), 128, np.uint8) + np.random.default_rng(i).integers(0, 60, (32, 32, 3), dtype=np.uint8)
          for i in range(3)]
    params = sample_params("vfhq", 3)
    lq = degrade_clip(hq, params, 3, use_codec=False)
    assert len(lq) == 3 and lq[0].shape == (8, 8, 3) and lq[0].dtype == np.uint8
    assert crf_to_jpeg_quality(18) > crf_to_jpeg_quality(30)


# ----------------------------------------------------------------------------------------------- losses


def _smooth_clip(seed: int, b: int = 2, t: int = 3, s: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(b * t, 3, 8, 8, generator=g), size=(s, s), mode="bicubic",
                         align_corners=False).clamp(0, 1).reshape(b, t, 3, s, s)


def test_reconstruction_losses_zero_iff_equal() -> None:
    from fvr.faces import face_template
    from fvr.train.losses import STLPIPSLoss, charbonnier, component_l1, l1

    torch.manual_seed(0)
    y = _smooth_clip(0)
    p = (y + 0.1 * torch.randn_like(y)).clamp(0, 1)
    lm = torch.from_numpy(face_template(32)).expand(2, 3, 5, 2)
    assert float(charbonnier(y, y)) == 0.0 and float(charbonnier(p, y)) > 0.0
    assert float(l1(y, y)) == 0.0 and float(l1(p, y)) > 0.0
    assert float(component_l1(y, y, lm)) == 0.0
    assert float(component_l1(p, y, lm, 2.0)) > float(l1(p, y))  # eyes and mouth weigh more
    st = STLPIPSLoss()
    assert abs(float(st(y, y))) < 1e-6 and float(st(p, y)) > 1e-4
    p.requires_grad_(True)
    st(p, y).backward()  # differentiable w.r.t. the prediction, frozen network
    assert p.grad is not None and float(p.grad.abs().sum()) > 0
    assert all(not q.requires_grad for q in st.parameters())


def test_temporal_loss_uses_gt_motion() -> None:
    from fvr.models.nets.warp import flow_warp
    from fvr.train.losses import hq_flows, temporal_loss

    base = _smooth_clip(1, b=1, t=1, s=48)[0, 0]
    frames = torch.stack([torch.roll(base, shifts=2 * k, dims=-1) for k in range(3)])[None, :, :, 8:40, 8:40]
    flows = hq_flows(frames)
    assert flows.shape == (1, 2, 2, 32, 32)
    # the flow aligns frame t-1 onto frame t (checked inside, away from the borders)
    warped = flow_warp(frames[0, :-1], flows[0])
    assert float((warped - frames[0, 1:])[..., 6:-6, 6:-6].abs().mean()) < 0.3 * float(
        (frames[0, :-1] - frames[0, 1:])[..., 6:-6, 6:-6].abs().mean())
    assert float(temporal_loss(frames, frames, flows)) == 0.0
    flicker = frames + torch.tensor([0.0, 0.05, -0.05]).view(1, 3, 1, 1, 1)
    assert float(temporal_loss(flicker, frames, flows)) > 0.03
    assert float(temporal_loss(frames + 0.1, frames, flows)) < 1e-5  # a constant offset does not flicker


def test_gan_losses() -> None:
    from fvr.train.losses import PatchDiscriminator, disc_loss, gen_loss

    d = PatchDiscriminator(8)
    logits = d(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 1, 4, 4)
    real, fake = torch.full((4,), 3.0), torch.full((4,), -3.0)
    assert float(disc_loss(real, fake, "hinge")) == 0.0  # confident and right: no hinge loss
    assert float(disc_loss(fake, real, "hinge")) > 0 and float(disc_loss(real, fake, "ns")) < 0.1
    assert float(gen_loss(fake, "ns")) > float(gen_loss(real, "ns"))


# ----------------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, video: Path, val_video: Path, cache_dir: Path) -> Path:
    """One short CLI training run (4 steps) shared by the tests that need trained weights."""
    from fvr.models import nets

    folder = tmp_path_factory.mktemp("trained")
    cfg = write_config(folder, video, cache_dir, val=val_video, loss={"l1": 0.5, "stlpips": 0.1, "temporal": 0.5,
                                                       "component": 0.5})
    mp = pytest.MonkeyPatch()
    mp.setattr(nets, "architectures", lambda: dict(ARCHS))
    try:
        assert main(["train", "--config", str(cfg), "-q"]) == 0
    finally:
        mp.undo()
    return folder / "run"


def test_training_run_writes_everything(trained_run: Path) -> None:
    ckpts = sorted((trained_run / "checkpoints").glob("step-*.safetensors"))
    assert [p.name for p in ckpts] == ["step-000002.safetensors", "step-000004.safetensors"]
    assert (trained_run / "checkpoints" / "latest").read_text().strip() == "step-000004.safetensors"
    rows = [json.loads(x) for x in (trained_run / "log.jsonl").read_text().splitlines()]
    losses = [r for r in rows if "loss" in r]
    assert [r["step"] for r in losses] == [1, 2, 3, 4]
    assert {"loss/charbonnier", "loss/l1", "loss/stlpips", "loss/temporal", "loss/component", "lr",
            "seconds"} <= set(losses[0])
    vals = [r for r in rows if "val/psnr" in r]
    assert [r["step"] for r in vals] == [2, 4]
    assert {"val/ssim", "val/stlpips", "val/flicker", "val/lq_psnr"} <= set(vals[-1])
    assert (trained_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = load_weights(trained_run / "model.safetensors", ARCHS)
    assert loaded.arch.name == "tiny-test" and loaded.crop_size == 32 and loaded.preset == "tiny"
    assert json.loads(loaded.metadata["trained_steps"]) == 4
    from fvr.models.nets.core import restorer_from_weights

    restorer = restorer_from_weights(trained_run / "model.safetensors", ARCHS)  # what `fvr restore --model` does
    clip = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    out = restorer(clip, np.zeros((3, 5, 2), np.float32))
    assert out.shape == clip.shape and out.dtype == np.float32
    assert "[model]" in (trained_run / "train_config.toml").read_text()


def test_refuses_to_overwrite_a_run(trained_run: Path, test_archs: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["train", "--config", str(trained_run.parent / "train.toml"), "-q"], capsys)
    assert code != 0 and "--resume" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("arch, loss", [
    ("tiny-prior", {"gan": 0.05, "temporal": 0.5, "component": 0.5, "disc_channels": 8}),
    ("tiny-own", {}),
])
def test_resume_is_exact(tmp_path: Path, video: Path, cache_dir: Path, arch: str, loss: dict) -> None:
    """10 steps straight == 5 steps, stop, resume, 5 more: identical weights, EMA and optimiser state."""
    from fvr.train import load_config, train
    from fvr.train.checkpoint import load_checkpoint  # noqa: F401  (the format under test)

    def run(folder: Path, stop: int | None, resume: bool):
        folder.mkdir(exist_ok=True)
        cfg = load_config(write_config(folder, video, cache_dir, arch=arch, loss=loss,
                                       optim={"steps": 10, "batch_size": 2, "warmup": 2, "ema": 0.9},
                                       run={"val_every": 0, "ckpt_every": 3, "log_every": 5}))
        return train(cfg, archs=ARCHS, resume=resume, stop_after=stop)

    straight = run(tmp_path / "a", None, False)
    first = run(tmp_path / "b", 5, False)
    assert first.steps == 5
    second = run(tmp_path / "b", None, True)
    assert second.start_step == 5 and second.steps == 10
    from safetensors.torch import load_file

    a = load_file(str(straight.out_dir / "checkpoints" / "step-000010.safetensors"))
    b = load_file(str(second.out_dir / "checkpoints" / "step-000010.safetensors"))
    assert a.keys() == b.keys()
    compared = [k for k in a if not k.startswith("rng/")]
    assert any(k.startswith("ema/") for k in compared) and any(k.startswith("optim/state/") for k in compared)
    if arch == "tiny-prior":
        assert any(k.startswith("disc/") for k in compared) and any(k.startswith("disc_optim/") for k in compared)
    for k in compared:
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(a["rng/torch"], b["rng/torch"])
    wa = load_file(str(straight.weights))
    wb = load_file(str(second.weights))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_own_training_loss_is_used(tmp_path: Path, video: Path, cache_dir: Path) -> None:
    from fvr.train import load_config, train

    cfg = load_config(write_config(tmp_path, video, cache_dir, arch="tiny-own",
                                   optim={"steps": 2}, run={"val_every": 0, "ckpt_every": 0}))
    result = train(cfg, archs=ARCHS)
    assert "loss/mse" in result.losses and "loss/charbonnier" not in result.losses


def test_training_reduces_the_loss(tmp_path: Path, video: Path, cache_dir: Path) -> None:
    """A sanity check of the whole loop (not of an architecture): starting from an output offset of 0.3
    (model.options), 30 steps must train most of it away."""
    from fvr.train import load_config, train

    cfg = load_config(write_config(tmp_path, video, cache_dir, model={"options": {"bias": 0.3}},
                                   degrade={"presets": {"jpeg": 1.0}},
                                   optim={"steps": 30, "warmup": 0, "lr": 1e-2, "batch_size": 2, "ema": 0.0},
                                   augment={"hflip": 0.0}, run={"val_every": 0, "ckpt_every": 0, "log_every": 1}))
    result = train(cfg, archs=ARCHS)
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[0] > 0.2 and losses[-1] < 0.6 * losses[0]
    assert load_weights(result.weights, ARCHS).config.bias == 0.3  # options reach the saved config


def test_init_from_weights(trained_run: Path, tmp_path: Path, video: Path, cache_dir: Path) -> None:
    """model.init starts from a weights file (the codebook model's stage 2 starts from stage 1 this way): the
    tensors are the file's, the config is the file's with model.options on top; another arch's file is refused."""
    from safetensors.torch import load_file

    from fvr.train import load_config, train
    from fvr.train.loop import init_network

    weights = trained_run / "model.safetensors"
    cfg, size, net = init_network(TINY, str(weights), {"bias": 0.25})
    assert size == 32 and cfg.bias == 0.25 and cfg.channels == 4
    saved = load_file(str(weights))
    assert all(torch.equal(net.state_dict()[k], saved[k]) for k in saved)
    with pytest.raises(ConfigError, match="not of 'tiny-prior'"):
        init_network(TINY_PRIOR, str(weights), {})
    config = load_config(write_config(tmp_path, video, cache_dir,
                                      model={"init": str(weights), "options": {"bias": 0.25}},
                                      optim={"steps": 2}, run={"val_every": 0, "ckpt_every": 0}))
    result = train(config, archs=ARCHS)
    assert load_weights(result.weights, ARCHS).config.bias == 0.25


# ----------------------------------------------------------------------------------------------- CLI errors


def test_missing_data_path_is_a_one_line_error(tmp_path: Path, test_archs: dict,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, tmp_path / "nope.mp4", tmp_path / "cache")
    code, _, err = run_cli(["train", "--config", str(cfg), "-q"], capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "nope.mp4" in err and "does not exist" in err
    code, _, err = run_cli(["train", "--config", str(tmp_path / "missing.toml")], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1


def test_unknown_arch_and_bad_device(tmp_path: Path, video: Path, cache_dir: Path, test_archs: dict,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, video, cache_dir, arch="nope")
    code, _, err = run_cli(["train", "--config", str(cfg), "-q"], capsys)
    assert code != 0 and "unknown architecture" in err and len(err.strip().splitlines()) == 1
    cfg = write_config(tmp_path, video, cache_dir)
    code, _, err = run_cli(["train", "--config", str(cfg), "--device", "gpu", "-q"], capsys)
    assert code != 0 and "run.device" in err


# ----------------------------------------------------------------------------------------------- export


def test_export_onnx_via_cli(trained_run: Path, tmp_path: Path, test_archs: dict,
                             capsys: pytest.CaptureFixture[str]) -> None:
    onnx_path = tmp_path / "tiny.onnx"
    code, out, err = run_cli(["export", str(trained_run / "model.safetensors"), "--onnx", str(onnx_path),
                              "--frames", "3"], capsys)
    assert code == 0, err
    assert "max |diff|" in out
    diff = float(out.split("=")[-1])
    assert diff <= 1e-4
    from fvr.export import onnx_metadata

    meta = onnx_metadata(onnx_path)
    assert meta["fvr_arch"] == "tiny-test" and meta["crop_size"] == "32" and meta["frames"] == "3"
    assert meta["layout"] == "B,T,3,S,S" and meta["color"] == "RGB" and meta["input_range"] == "[0, 1]"
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": np.random.default_rng(0).random((4, 3, 3, 32, 32), dtype=np.float32)})[0]
    assert y.shape == (4, 3, 3, 32, 32)  # dynamic batch


def test_export_prior_arch_and_refusals(tmp_path: Path, test_archs: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from fvr.export import export_onnx
    from fvr.models.nets.core import save_weights

    torch.manual_seed(0)
    net = TinyNet(TinyConfig(4, True))
    w = save_weights(tmp_path / "p.safetensors", TINY_PRIOR, TinyConfig(4, True), net, 32, "tiny")
    result = export_onnx(w, tmp_path / "p.onnx", frames=2, archs=ARCHS)
    assert result.uses_prior and result.max_abs_diff <= 1e-4
    import onnxruntime as ort

    names = [i.name for i in ort.InferenceSession(str(tmp_path / "p.onnx")).get_inputs()]
    assert names == ["x", "prior"]
    own = save_weights(tmp_path / "o.safetensors", TINY_OWN, TinyConfig(), TinyNet(TinyConfig()), 32, "tiny")
    code, _, err = run_cli(["export", str(own), "--onnx", str(tmp_path / "o.onnx")], capsys)
    assert code != 0 and "feed-forward" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.onnx").exists()
    code, _, err = run_cli(["export", str(tmp_path / "missing.safetensors"), "--onnx", str(tmp_path / "m.onnx")],
                           capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------------- packed, no PyAV


def test_pack_and_train_without_pyav(tmp_path: Path, video: Path, val_video: Path, cache_dir: Path,
                                     test_archs: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """--pack writes one .npz; a process where `import av` fails trains from it via train_standalone.py."""
    cfg = write_config(tmp_path, video, cache_dir, data={"val_clips": [str(video)], "clips": [str(video)]})
    code, _, err = run_cli(["train", "--config", str(cfg), "--pack", str(tmp_path / "pack.npz"), "-q"], capsys)
    assert code != 0 and "both clips and val_clips" in err  # the same file cannot be held out and trained on
    cfg = write_config(tmp_path, video, cache_dir, val=val_video)
    code, _, err = run_cli(["train", "--config", str(cfg), "--pack", str(tmp_path / "pack.npz"), "-q"], capsys)
    assert code == 0, err
    from fvr.train.data import load_packed

    meta, train_clips, val_clips = load_packed(tmp_path / "pack.npz")
    assert meta["crop_size"] == 32 and len(train_clips) == 1 and len(val_clips) == 1
    assert [c["split"] for c in meta["clips"]] == ["train", "val"]
    assert train_clips[0].frames.dtype == np.uint8 and train_clips[0].frames.shape == (12, 32, 32, 3)

    gpu = tmp_path / "gpu"
    gpu.mkdir()
    (gpu / "train.toml").write_text(textwrap.dedent(f"""
        [model]
        arch = "tiny-test"
        preset = "tiny"
        [data]
        packed = "{tmp_path / 'pack.npz'}"
        crop_size = 32
        clip_len = 3
        val_windows = 2
        [optim]
        steps = 2
        batch_size = 2
        [run]
        out = "run"
        log_every = 1
    """), encoding="utf-8")
    script = textwrap.dedent(f"""
        import importlib.abc, importlib.util, sys
        class NoAV(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "av" or name.startswith("av."):
                    raise ImportError("no PyAV on this machine")
        sys.meta_path.insert(0, NoAV())
        spec = importlib.util.spec_from_file_location("standalone", {str(ROOT / 'src/fvr/cli/train_standalone.py')!r})
        standalone = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(standalone)
        sys.path.insert(0, {str(ROOT / 'tests' / 'train')!r})
        import fvr.models.nets as nets, test_train
        nets.architectures = lambda: dict(test_train.ARCHS)
        code = standalone.main(["--config", {str(gpu / 'train.toml')!r}, "-q"])
        assert "av" not in sys.modules and not any(m.startswith("fvr.io") for m in sys.modules)
        sys.exit(code)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "JPEG codec stand-in" in proc.stderr
    start = json.loads((gpu / "run" / "log.jsonl").read_text().splitlines()[0])
    assert start["event"] == "start" and start["degrade_codec"] == "jpeg-standin"
    assert any("val/psnr" in json.loads(x) for x in (gpu / "run" / "log.jsonl").read_text().splitlines())
    assert load_weights(gpu / "run" / "model.safetensors", ARCHS).arch.name == "tiny-test"


# ----------------------------------------------------------------------------------------------- distillation


def _teacher_file(folder: Path, seed: int = 1) -> Path:
    """A tiny prior-compact weight file (32² crops) with random weights: a teacher whose outputs are far from the
    ground truth, so a student that moves towards it can only have learnt it from the distillation term."""
    from fvr.models.nets import architectures
    from fvr.models.nets.core import save_weights

    arch = architectures()["prior-compact"]
    size, config = arch.preset("tiny")
    torch.manual_seed(seed)
    net = arch.build(config)
    with torch.no_grad():
        net.net.body[-1].bias.add_(0.2)  # a deliberate offset of every output pixel
    return save_weights(folder / "teacher.safetensors", arch, config, net, size, "tiny")


def test_distillation_pulls_the_student_to_the_teacher(tmp_path: Path, video: Path, cache_dir: Path) -> None:
    """loss.distill with model.teacher: a student trained on the teacher's outputs alone (no ground-truth term)
    ends much closer to the teacher than it started; the run logs the term and records the teacher."""
    from fvr.models.nets import architectures
    from fvr.train import load_config, train
    from fvr.train.loop import load_teacher

    teacher_path = _teacher_file(tmp_path)
    cfg = load_config(write_config(tmp_path, video, cache_dir, arch="prior-compact",
                                   model={"teacher": str(teacher_path)}, loss={"charbonnier": 0.0, "distill": 1.0},
                                   data={"clip_len": 1}, augment={"hflip": 0.0},
                                   optim={"steps": 120, "warmup": 0, "lr": 2e-2, "batch_size": 4, "ema": 0.0},
                                   run={"val_every": 0, "ckpt_every": 0, "log_every": 1}))
    teacher = load_teacher(str(teacher_path), 32, torch.device("cpu"))
    assert not any(p.requires_grad for p in teacher.parameters())
    from fvr.synthetic import moving_face_frames

    faces = np.stack(list(moving_face_frames(4, size=32))).astype(np.float32) / 255.0  # inputs like the crops
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).unsqueeze(1).contiguous()
    torch.manual_seed(cfg.run.seed)
    start = architectures()["prior-compact"].build(load_weights(teacher_path, architectures()).config)
    with torch.no_grad():
        target = teacher(x).clamp(0, 1)
        before = float((start(x) - target).abs().mean())
    result = train(cfg)
    assert "loss/distill" in result.losses and "loss/charbonnier" not in result.losses
    student = load_weights(result.weights, architectures())
    assert student.metadata["teacher"] == str(teacher_path)
    with torch.no_grad():
        after = float((student.net(x) - target).abs().mean())
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("model, loss, fragment", [
    ({"teacher": "fvr-prior-fast"}, {}, "go together"),
    ({}, {"distill": 1.0}, "go together"),
    ({"teacher": "no-such-model"}, {"distill": 1.0}, "neither a .safetensors file nor a model shipped"),
])
def test_distillation_config_errors(tmp_path: Path, video: Path, cache_dir: Path, model: dict, loss: dict,
                                    fragment: str) -> None:
    from fvr.train import load_config, train

    with pytest.raises(ConfigError, match=fragment):
        train(load_config(write_config(tmp_path, video, cache_dir, arch="prior-compact", model=model, loss=loss,
                                       optim={"steps": 1}, run={"val_every": 0, "ckpt_every": 0})))


def test_teacher_of_another_crop_is_refused(tmp_path: Path) -> None:
    from fvr.models.nets import architectures
    from fvr.models.nets.core import save_weights
    from fvr.train.loop import load_teacher

    arch = architectures()["unet"]
    size, config = arch.preset("fast")
    plain = save_weights(tmp_path / "unet.safetensors", arch, config, arch.build(config), size, "fast")
    with pytest.raises(ConfigError, match=f"takes {size}² crops, the student 64²"):
        load_teacher(str(plain), 64, torch.device("cpu"))


def test_a_shipped_model_is_a_teacher() -> None:
    from fvr.models.learned import shipped_weights
    from fvr.train.loop import load_teacher

    if shipped_weights("fvr-prior-fast") is None:
        pytest.skip("this installation ships no fvr-prior-fast weights")
    teacher = load_teacher("fvr-prior-fast", 512, torch.device("cpu"))
    with torch.no_grad():
        y = teacher(torch.full((1, 1, 3, 64, 64), 0.5))
    assert y.shape == (1, 1, 3, 64, 64) and abs(float(y.mean()) - 0.5) < 0.05
