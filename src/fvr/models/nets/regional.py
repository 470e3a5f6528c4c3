"""Face-region-specific restorer: a heavy U-Net for the face, a light conv branch for the rest of the crop
(hair, neck, background), blended by a soft face mask built from the landmark prior.

Network contract (see :mod:`fvr.models.nets.core`)::

    forward(x, prior) -> y
    x:     (B, T, 3, S, S) float32 RGB in [0, 1], the degraded crop already up-sampled to S
    prior: (B, T, 8, S, S) float32 in [0, 1], :func:`fvr.models.nets.prior.landmark_prior` maps (required)
    y:     (B, T, 3, S, S) float32, ``x + m * heavy + (1 - m) * light`` (not clamped)

Per-frame: every frame is restored independently (past = future = 0).

Which prior channels are used, and how:
  * the face mask m comes from channels 0-4 only (the five landmark heat-maps): their soft-argmax gives the five
    points back, from which a soft ellipse over the face is drawn (centred between the eyes and the mouth,
    rotated with the eye line, semi-axes proportional to the eye distance and the eye-mouth distance);
  * the heavy branch additionally sees all 8 channels (heat-maps and eye/mouth masks) as input and at every
    scale, like ``unet-prior``.

Compute saving: aligned crops put the face at a fixed place, so the heavy branch runs only on a fixed window
of the crop (``window`` of the side, default 5/8, centred horizontally and at ``window_y`` vertically: ~39% of
the pixels); the mask is forced to 0 outside that window (with a short linear taper inside its border) so the
blend never needs heavy output there. The light branch runs on the whole crop.

Both branches' last convs start at zero: the untrained model is the identity. Component-weighted losses
(extra weight on eyes and mouth, :func:`fvr.models.nets.prior.component_weights`) are the trainer's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fvr.models.nets.blocks import conv, from_frames, to_frames
from fvr.models.nets.core import ArchSpec
from fvr.models.nets.prior import NUM_PRIOR_CHANNELS
from fvr.models.nets.unet import ResUNet, centre, he_init, zero_conv


@dataclass(frozen=True)
class RegionalConfig:
    """channels/blocks/scales: the heavy face U-Net; light_channels/light_layers: the light branch (convs, >= 2);
    window: side of the heavy branch's window as a fraction of S; window_y: its vertical centre (fraction of S);
    face_width / face_height: mask semi-axes in eye distances / eye-to-mouth distances; softness: mask edge width
    (fraction of the semi-axes)."""

    channels: int = 16
    blocks: int = 2
    scales: int = 3
    light_channels: int = 16
    light_layers: int = 3
    window: float = 0.625
    window_y: float = 0.58
    face_width: float = 1.05
    face_height: float = 1.1
    softness: float = 0.2
    max_channels: int = 256


def face_window(size: int, config: RegionalConfig) -> tuple[int, int, int]:
    """(top, left, side) of the heavy branch's window in an S x S crop; side is a multiple of the U-Net's total
    down-sampling factor so every scale has whole pixels."""
    m = 2 ** (config.scales - 1)
    side = max(m, min(size - size % m, round(config.window * size / m) * m))
    top = min(max(round(config.window_y * size - side / 2), 0), size - side)
    return top, (size - side) // 2, side


def soft_argmax(heat: torch.Tensor) -> torch.Tensor:
    """(N, K, S, S) heat-maps -> (N, K, 2) their centroids (x, y) in crop pixels (pixel i centred at i, as
    :func:`landmark_prior` draws them). An empty map gives (0, 0) instead of NaN."""
    size = heat.shape[-1]
    coords = torch.arange(size, device=heat.device, dtype=heat.dtype)
    mass = heat.sum(dim=(-2, -1)).clamp_min(1e-6)
    cx = (heat.sum(dim=-2) * coords).sum(dim=-1) / mass  # sum over rows, then weight columns by x
    cy = (heat.sum(dim=-1) * coords).sum(dim=-1) / mass
    return torch.stack([cx, cy], dim=-1)


def face_mask(prior: torch.Tensor, config: RegionalConfig) -> torch.Tensor:
    """(N, 8, S, S) prior -> (N, 1, S, S) soft face ellipse in [0, 1] from the heat-maps (channels 0-4).

    No atan2 (the rotation comes from the normalised eye vector), so the graph exports to ONNX opset 17.
    """
    pts = soft_argmax(prior[:, :5])
    eye_c = 0.5 * (pts[:, 0] + pts[:, 1])
    mouth_c = 0.5 * (pts[:, 3] + pts[:, 4])
    eye_vec = pts[:, 1] - pts[:, 0]
    eye_dist = torch.sqrt((eye_vec * eye_vec).sum(-1)).clamp_min(1.0)
    down = mouth_c - eye_c
    em_dist = torch.sqrt((down * down).sum(-1)).clamp_min(1.0)
    cos, sin = eye_vec[:, 0] / eye_dist, eye_vec[:, 1] / eye_dist
    # centre a little below the eye-mouth midpoint: the chin extends further below the mouth than the brow above
    # the eyes (on the FFHQ template this spans brows to chin)
    ctr = eye_c + 0.45 * down
    ax = (config.face_width * eye_dist).view(-1, 1, 1, 1)
    ay = (config.face_height * em_dist).view(-1, 1, 1, 1)
    size = prior.shape[-1]
    coords = torch.arange(size, device=prior.device, dtype=prior.dtype)
    dx = coords.view(1, 1, 1, size) - ctr[:, 0].view(-1, 1, 1, 1)
    dy = coords.view(1, 1, size, 1) - ctr[:, 1].view(-1, 1, 1, 1)
    u = (dx * cos.view(-1, 1, 1, 1) + dy * sin.view(-1, 1, 1, 1)) / ax
    v = (-dx * sin.view(-1, 1, 1, 1) + dy * cos.view(-1, 1, 1, 1)) / ay
    r = torch.sqrt(u * u + v * v + 1e-12)
    s = config.softness
    return torch.clamp((1.0 + s - r) / (2.0 * s), 0.0, 1.0)


def window_taper(size: int, top: int, left: int, side: int, device: torch.device,
                 dtype: torch.dtype) -> torch.Tensor:
    """(1, 1, S, S): 1 inside the window, 0 outside, a linear ramp over ``side / 16`` px inside its border."""
    ramp = max(1.0, side / 16.0)
    coords = torch.arange(size, device=device, dtype=dtype) + 0.5
    ty = torch.clamp((coords - top) / ramp, 0, 1) * torch.clamp((top + side - coords) / ramp, 0, 1)
    tx = torch.clamp((coords - left) / ramp, 0, 1) * torch.clamp((left + side - coords) / ramp, 0, 1)
    return (ty.view(size, 1) * tx.view(1, size)).view(1, 1, size, size)


def light_branch(cin: int, ch: int, layers: int) -> nn.Sequential:
    """A few full-resolution convs (conv-LReLU ..., last conv zero-initialised): cheap texture/denoise path."""
    mods: list[nn.Module] = [conv(cin, ch), nn.LeakyReLU(0.1)]
    for _ in range(max(layers - 2, 0)):
        mods += [conv(ch, ch), nn.LeakyReLU(0.1)]
    he_init(*[m for m in mods if isinstance(m, nn.Conv2d)])
    mods.append(zero_conv(ch, 3))
    return nn.Sequential(*mods)


class RegionalRestorer(nn.Module):
    """Heavy face U-Net on a fixed central window + light full-crop branch, blended by a landmark face mask."""

    def __init__(self, config: RegionalConfig):
        super().__init__()
        if config.light_layers < 2:
            raise ValueError(f"light_layers must be >= 2, got {config.light_layers}")
        self.config = config
        k = NUM_PRIOR_CHANNELS
        self.heavy = ResUNet(3 + k, 3, config.channels, config.blocks, config.scales, prior_ch=k,
                             max_channels=config.max_channels)
        self.light = light_branch(3, config.light_channels, config.light_layers)

    def blend_mask(self, prior: torch.Tensor, top: int, left: int, side: int) -> torch.Tensor:
        """(N, 8, S, S) -> (N, 1, S, S): the face ellipse, zero outside the heavy window."""
        size = int(prior.shape[-1])
        return face_mask(prior, self.config) * window_taper(size, top, left, side, prior.device, prior.dtype)

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, 3, S, S) in [0, 1]; prior (B, T, 8, S, S) landmark prior (required) -> (B, T, 3, S, S)."""
        if prior is None:
            raise ValueError("regional needs the (B, T, 8, S, S) landmark prior maps (its face mask comes from them)")
        frames, b, t = to_frames(x)
        p, _, _ = to_frames(prior)
        size = int(frames.shape[-1])  # a Python int even under ONNX tracing: the window is fixed per crop size
        top, left, side = face_window(size, self.config)
        inp = centre(frames)
        win_p = p[:, :, top:top + side, left:left + side]
        heavy = self.heavy(torch.cat([inp[:, :, top:top + side, left:left + side], win_p], dim=1), win_p)
        heavy = F.pad(heavy, (left, size - left - side, top, size - top - side))  # zeros outside the window
        light = self.light(inp)
        m = self.blend_mask(p, top, left, side)
        return from_frames(frames + m * heavy + (1.0 - m) * light, b, t)


def build_regional(config: RegionalConfig) -> RegionalRestorer:
    return RegionalRestorer(config)


REGIONAL = ArchSpec(
    name="regional", kind="cnn", temporal="per-frame",
    description="face-region-specific: deep U-Net on the face window, light convs elsewhere, blended by a soft "
                "face ellipse from the landmark heat-maps (component-weighted losses come from the trainer)",
    config=RegionalConfig, build=build_regional,
    presets={
        # fast: heavy U-Net on an 80² window of the 128² crop + 3 light convs: 0.76 GFLOP/frame, 272k params;
        # quality: 160² window of 256²: 22 GFLOP/frame, 6.3M params
        "fast": (128, RegionalConfig(channels=16, blocks=2, scales=3, light_channels=16, light_layers=3)),
        "quality": (256, RegionalConfig(channels=32, blocks=3, scales=4, light_channels=24, light_layers=4)),
        "tiny": (32, RegionalConfig(channels=8, blocks=1, scales=3, light_channels=12, light_layers=3,
                                    max_channels=16)),
    },
    tags=("face-region-specific",), uses_prior=True,
)

ARCHS: tuple[ArchSpec, ...] = (REGIONAL,)
