"""Temporal networks (recurrent-bi, recurrent, kalman, global, basicvsr) and the whole-frame runner.

Everything runs on the ``tiny`` presets (32² crops, a handful of channels, T <= 5) so the file stays fast on a
shared 2-core CPU. The shared contract suite (tests/models/test_archs.py) covers them too once they are listed in
ARCH_MODULES; this file tests them directly and adds what is specific to them.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fvr.export import onnx_parity
from fvr.io import Frame
from fvr.models.nets import basicvsr, recurrent, transformer
from fvr.models.nets.core import load_weights, save_weights
from fvr.run.framewise import restore_frame_stream, restore_frames_video, run_tiled
from fvr.synthetic import moving_face_frames
from media import read_frames, read_packets, write_video

ARCHS = {a.name: a for m in (recurrent, transformer, basicvsr) for a in m.ARCHS}
NAMES = sorted(ARCHS)
CAUSAL = ("recurrent", "kalman")
SIZE = 32  # the tiny presets' crop


def _tiny(name: str) -> tuple[object, int, object, nn.Module]:
    arch = ARCHS[name]
    size, config = arch.preset("tiny")
    torch.manual_seed(0)
    return arch, size, config, arch.build(config).eval()


def _net(name: str) -> nn.Module:
    return _tiny(name)[3]


def _smooth_clip(t: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(1, T, 3, S, S) in [0, 1]: a smooth random image (bicubic from 5×5) drifting one pixel per frame."""
    g = torch.Generator().manual_seed(seed)
    big = F.interpolate(torch.rand(1, 3, 5, 5, generator=g), size=(size + 8, size + 8), mode="bicubic",
                        align_corners=False)
    return torch.stack([big[..., i:i + size, i:i + size] for i in range(t)], 1).clamp(0, 1).contiguous()


def _face_clip(t: int, size: int = 32) -> torch.Tensor:
    frames = np.stack(list(moving_face_frames(t, size=size))).astype(np.float32) / 255.0
    return torch.from_numpy(frames).permute(0, 3, 1, 2)[None].contiguous()


# ----------------------------------------------------------------------------------------------- specs


def test_specs():
    assert set(NAMES) == {"recurrent-bi", "recurrent", "kalman", "global", "basicvsr"}
    for name, arch in ARCHS.items():
        assert arch.presets["fast"][0] == 128 and arch.presets["quality"][0] == 256
        assert arch.presets["tiny"][0] == 32
        assert arch.feed_forward and not arch.uses_prior and arch.training_loss is None
        past, future = arch.context(arch.presets["fast"][1])
        assert past > 0
        assert (future == 0) == (name in CAUSAL)
        spec = arch.restorer_spec("fast")
        assert spec.crop_size == 128 and spec.causal == (name in CAUSAL)
    assert ARCHS["kalman"].tags == ("kalman", "learned-gain")
    assert ARCHS["global"].kind == "transformer" and ARCHS["global"].temporal == "global"
    assert ARCHS["basicvsr"].frame_model and ARCHS["basicvsr"].tags == ("baseline", "generic-video", "whole-frame")
    assert all(ARCHS[n].temporal == "recurrent" and ARCHS[n].kind == "cnn"
               for n in ("recurrent-bi", "recurrent", "kalman", "basicvsr"))


# ----------------------------------------------------------------------------------------------- forward


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("t", [1, 4])
def test_shapes_and_near_identity_start(name, t):
    net = _net(name)
    x = _face_clip(t, SIZE)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert (y - x).abs().mean() < 0.02  # residual over the input, small at initialisation


@pytest.mark.parametrize("name", NAMES)
def test_non_square_frames(name):
    net = _net(name)
    x = torch.rand(2, 3, 3, 16, 40)
    with torch.no_grad():
        assert net(x).shape == x.shape


def test_global_joint_attention_and_any_length():
    torch.manual_seed(0)
    config = transformer.GlobalConfig(channels=4, dim=8, depth=1, heads=2, patch=4, attention="joint")
    net = transformer.build(config).eval()
    for t in (1, 2, 7):
        x = torch.rand(1, t, 3, 16, 24)
        with torch.no_grad():
            assert net(x).shape == x.shape


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_models_never_read_the_future(name):
    net = _net(name)
    x = _face_clip(5, SIZE)
    with torch.no_grad():
        y = net(x)
        for t in range(4):
            x2 = x.clone()
            x2[:, t + 1:] = torch.rand_like(x2[:, t + 1:])
            y2 = net(x2)
            assert torch.allclose(y[:, :t + 1], y2[:, :t + 1], atol=1e-6), f"output {t} read a later frame"
            assert not torch.allclose(y[:, t + 1:], y2[:, t + 1:])


@pytest.mark.parametrize("name", ["recurrent-bi", "global", "basicvsr"])
def test_offline_models_do_read_the_future(name):
    net = _net(name)
    x = _face_clip(4, SIZE)
    x2 = x.clone()
    x2[:, -1] = torch.rand_like(x2[:, -1])
    with torch.no_grad():
        assert not torch.allclose(net(x)[:, 0], net(x2)[:, 0], atol=1e-7)


@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("pieces", [(1, 1, 1, 1, 1, 1, 1), (3, 4), (2, 2, 3)])
def test_carried_state_equals_one_call(name, pieces):
    """A causal network restoring a sequence piece by piece, carrying its state, gives the one-call output."""
    net = _net(name)
    x = _face_clip(sum(pieces), SIZE)
    with torch.no_grad():
        whole = net(x)
        outs, state, at = [], None, 0
        for n in pieces:
            y, state = net.forward_carried(x[:, at:at + n], state, n)
            outs.append(y)
            at += n
    torch.testing.assert_close(torch.cat(outs, 1), whole, atol=1e-5, rtol=0)


def test_carried_state_matters():
    """The check above has teeth: restarting from no state at the piece border changes the output."""
    net = _net("recurrent")
    x = _face_clip(6, SIZE)
    with torch.no_grad():
        whole = net(x)
        y, _ = net.forward_carried(x[:, 3:], None, 3)
    assert (y - whole[:, 3:]).abs().max() > 1e-4


def test_bidirectional_carries_forward_state_and_reads_lookahead():
    """recurrent-bi: the kept frames come from the carried forward state and a backward pass over the look-ahead;
    with the whole rest of the sequence as look-ahead, pieces equal one call."""
    net = _net("recurrent-bi")
    x = _face_clip(7, SIZE)
    with torch.no_grad():
        whole = net(x)
        a, state = net.forward_carried(x, None, 3)  # frames 0-2 kept, 3-6 look-ahead
        b, _ = net.forward_carried(x[:, 3:], state, 4)
        torch.testing.assert_close(torch.cat([a, b], 1), whole, atol=1e-5, rtol=0)
        short, _ = net.forward_carried(x[:, :4], None, 3)  # one look-ahead frame only
        assert (short - whole[:, :3]).abs().max() > 1e-5
    with pytest.raises(ValueError, match="keep"):
        net.forward_carried(x, None, 0)


def test_kalman_first_state_is_the_observation():
    """At t = 0 there is no prediction: the filter's state is the frame's own features (gain 1)."""
    net = _net("kalman")
    x = _face_clip(3, SIZE)
    with torch.no_grad():
        assert torch.allclose(net(x)[:, :1], net(x[:, :1]), atol=1e-6)


# ----------------------------------------------------------------------------------------------- weights, ONNX


@pytest.mark.parametrize("name", NAMES)
def test_weight_round_trip(name, tmp_path):
    arch, size, config, net = _tiny(name)
    path = save_weights(tmp_path / f"{name}.safetensors", arch, config, net, size, "tiny")
    loaded = load_weights(path, ARCHS)
    assert loaded.arch.name == name and loaded.crop_size == size and loaded.config == config
    x = _face_clip(3, SIZE)
    with torch.no_grad():
        assert torch.equal(net(x), loaded.net(x))


@pytest.mark.parametrize("name", NAMES)
def test_onnx_parity_at_fixed_length(name):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    net = _net(name)
    x = _face_clip(3, SIZE)
    assert onnx_parity(net, (x,)) <= 1e-4


# ----------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("name", NAMES)
def test_fifty_step_overfit(name):
    """Trainability: 50 Adam steps on one tiny clip cut the Charbonnier loss >= 5×. The degradation is a
    brightness offset + 3×3 blur + mild noise of a smooth image, most of which is learnable in 50 steps (fresh
    noise on detailed faces is not: no 50-step model removes it)."""
    net = _net(name)
    net.train()
    hq = _smooth_clip(3, SIZE, seed=1)
    g = torch.Generator().manual_seed(2)
    lq = hq + 0.1 + 0.01 * torch.randn(hq.shape, generator=g)
    lq = F.avg_pool3d(lq, (1, 3, 3), stride=1, padding=(0, 1, 1), count_include_pad=False)
    torch.manual_seed(3)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(50):
        loss = torch.sqrt((net(lq) - hq) ** 2 + 1e-6).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last * 5 <= first, f"{name}: loss {first:.4g} -> {last:.4g} (less than 5x)"


# ----------------------------------------------------------------------------------------------- whole frames


class LocalNet(nn.Module):
    """A test network with a known reach: ±1 frame and ±1 pixel (one 3×3×3 conv), residual over the input."""

    size_multiple = 4

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        return x + 0.5 * self.conv(x.transpose(1, 2)).transpose(1, 2)


def _frames(n: int = 11, h: int = 16, w: int = 24) -> list[Frame]:
    clip = np.stack(list(moving_face_frames(n, size=max(h, w))))[:, :h, :w]
    return [Frame(index=i, rgb=np.ascontiguousarray(clip[i]), pts=40 * i) for i in range(n)]


def _stream(frames, net, **kw) -> np.ndarray:
    out = list(restore_frame_stream(frames, net, **kw))
    assert [f.index for f, _ in out] == [f.index for f in frames]
    return np.stack([o for _, o in out])


@pytest.mark.parametrize("chunk,overlap", [(1, 1), (3, 1), (4, 2), (20, 3)])
def test_chunked_equals_single_chunk(chunk, overlap):
    net = LocalNet().eval()
    frames = _frames()
    whole = _stream(frames, net, upscale=2, chunk=len(frames), overlap=0)
    assert whole.shape == (len(frames), 32, 48, 3)
    np.testing.assert_allclose(_stream(frames, net, upscale=2, chunk=chunk, overlap=overlap), whole, atol=1e-5)


def test_chunks_without_enough_context_differ():
    """The check above has teeth: with no context frames, chunk borders change the output."""
    net = LocalNet().eval()
    frames = _frames()
    whole = _stream(frames, net, upscale=2, chunk=len(frames), overlap=0)
    assert np.abs(_stream(frames, net, upscale=2, chunk=3, overlap=0) - whole).max() > 1e-3


def test_tiles_equal_whole_frame():
    net = LocalNet().eval()
    frames = _frames(5, h=18, w=26)  # 36×52 up-sampled: not a multiple of the tile, padded to the net's multiple
    whole = _stream(frames, net, upscale=2, chunk=5, overlap=0)
    tiled = _stream(frames, net, upscale=2, chunk=2, overlap=1, tile=16, tile_overlap=4)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_run_tiled_pads_to_the_network_multiple():
    net = _net("basicvsr")
    x = torch.rand(1, 2, 3, 30, 42)  # not multiples of 4
    with torch.no_grad():
        assert run_tiled(net, x, None, 0).shape == x.shape
        assert run_tiled(net, x, 16, 8).shape == x.shape


def test_bounded_lookahead():
    """The runner holds at most chunk + 2·overlap frames: it never reads further ahead than chunk + overlap."""
    net = LocalNet().eval()
    frames, pulled, emitted = _frames(13), [0], 0
    chunk, overlap = 3, 2

    def source():
        for f in frames:
            pulled[0] += 1
            yield f

    for _ in restore_frame_stream(source(), net, upscale=1, chunk=chunk, overlap=overlap):
        emitted += 1
        assert pulled[0] - emitted < chunk + overlap + 1
    assert emitted == len(frames)


def test_restore_frames_video_keeps_frames_timestamps_and_audio(tmp_path):
    net = _net("basicvsr")
    clip = np.stack(list(moving_face_frames(7, size=32)))[:, 8:24, :]  # 16×32 frames
    pts = [0, 40, 80, 130, 170, 210, 260]  # variable frame rate
    src = write_video(tmp_path / "in.mp4", clip, pts=pts, time_base=Fraction(1, 1000), audio=True)
    seen = []
    report = restore_frames_video(src, tmp_path / "out.mp4", net, upscale=2, chunk=3, overlap=2,
                                  progress=lambda stage, done, total: seen.append(done))
    assert report.frames == 7 and (report.width, report.height) == (64, 32) and seen[-1] == 7
    _, times_in = read_frames(src)
    frames_out, times_out = read_frames(tmp_path / "out.mp4")
    assert frames_out.shape == (7, 32, 64, 3)
    np.testing.assert_allclose(times_out, times_in, atol=1e-6)
    assert read_packets(tmp_path / "out.mp4", "audio")
    # a near-identity network on a bicubic up-sampling: the output looks like the input
    up = np.stack([np.clip(np.round(np.asarray(
        F.interpolate(torch.from_numpy(f).permute(2, 0, 1)[None].float(), scale_factor=2, mode="bicubic")[0]
        .permute(1, 2, 0))), 0, 255) for f in clip])
    assert np.abs(frames_out.astype(np.float32) - up).mean() < 12.0
    assert not list(tmp_path.glob(".*fvr-tmp*"))  # atomic write left nothing behind


def test_bad_runner_options_are_one_line_errors(tmp_path):
    from fvr.errors import ConfigError

    with pytest.raises(ConfigError, match="chunk"):
        restore_frames_video(tmp_path / "missing.mp4", tmp_path / "out.mp4", LocalNet(), chunk=0)
    with pytest.raises(ConfigError, match="tile"):
        list(restore_frame_stream(_frames(2), LocalNet(), tile=0))
