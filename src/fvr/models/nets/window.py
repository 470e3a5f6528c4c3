"""Short-window face video restoration: align the 2r neighbours of every frame to it with learned optical flow,
fuse, and reconstruct with a residual U-Net trunk (the survey's sliding-window FVR family, EDVR-like in spirit).

Network contract (see :mod:`fvr.models.nets.core`)::

    forward(x, prior=None) -> y
    x:     (B, T, 3, S, S) float32 RGB in [0, 1], the degraded clip already up-sampled to S
    prior: (B, T, 8, S, S) float32 in [0, 1] when ``config.prior`` (``window-prior``), else ignored
    y:     (B, T, 3, S, S) float32, ``x + residual`` (not clamped)

Output t reads input frames t-r .. t+r only (r = ``config.radius``); at the clip edges the missing neighbours
are the edge frame repeated, so the model declares past = future = r. All T outputs come out of one forward pass
(frames and neighbour offsets are folded into the batch), so the network is one feed-forward graph that exports
to ONNX at a fixed T. Any S works; S divisible by ``flow_scale * 2 ** (flow_levels - 1)`` and by
``2 ** (scales - 1)`` (true of every preset) keeps the pyramids exact.

Pipeline per output frame t (all frames at once):
  1. features F_j = ResBlock(conv(x_j)) for every frame j (computed once, shared by every window using j);
  2. for each offset d in [-r, r] \\ {0}: flow_{t,d} = FlowEstimator(x_t, x_{t+d}) at 1/flow_scale resolution
     (motion between aligned face crops is small and smooth; half resolution quarters the cost), then
     F_{t+d} is warped onto frame t (feature-level alignment: warping errors get corrected by later convs);
  3. fusion: ``attention`` weights every aligned feature map per pixel by a softmax over the offsets of its
     similarity to the centre frame's embedding, so mis-aligned or occluded neighbours count less; ``concat``
     skips the weighting. Then concatenation and a 1x1 conv back to C channels;
  4. a residual U-Net trunk (:class:`fvr.models.nets.unet.ResUNet`) maps the fused features, frame t itself (plus
     the prior maps of frame t for ``window-prior``) to the RGB residual of frame t; its last conv starts at zero and
     the flow estimator starts at zero flow, so the untrained model is exactly the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fvr.models.nets.blocks import FlowEstimator, ResBlock, conv, from_frames, to_frames
from fvr.models.nets.core import ArchSpec
from fvr.models.nets.prior import NUM_PRIOR_CHANNELS
from fvr.models.nets.unet import ResUNet, centre, he_init
from fvr.models.nets.warp import flow_warp

FUSIONS = ("attention", "concat")


@dataclass(frozen=True)
class WindowConfig:
    """radius: neighbours on each side (1 -> 3-frame window, 2 -> 5 frames); channels/blocks/scales: feature width,
    ResBlocks per scale and resolutions of the U-Net trunk; flow_ch/flow_levels: width and pyramid depth of the
    flow estimator; flow_scale: flow is estimated at S / flow_scale (1 or 2) and up-sampled; fusion: "attention"
    or "concat"; prior: condition the trunk on the 8 prior maps of the output frame (input concat + every scale)."""

    radius: int = 2
    channels: int = 16
    blocks: int = 1
    scales: int = 3
    flow_ch: int = 8
    flow_levels: int = 3
    flow_scale: int = 2
    fusion: str = "attention"
    prior: bool = False
    max_channels: int = 256


def neighbour_index(t: int, offset: int) -> list[int]:
    """Frame read as neighbour ``offset`` of each of the T output frames, edge frames repeated (replicate)."""
    return [min(max(i + offset, 0), t - 1) for i in range(t)]


def gather_frames(x: torch.Tensor, index: list[int]) -> torch.Tensor:
    """x (B, T, ...) -> (B, len(index), ...) picking frames ``index`` along T (a constant Gather in ONNX)."""
    return x.index_select(1, torch.as_tensor(index, dtype=torch.long, device=x.device))


class WindowFVR(nn.Module):
    """Flow-aligned short-window restorer; see the module docstring for shapes and the pipeline."""

    def __init__(self, config: WindowConfig):
        super().__init__()
        if config.radius < 1:
            raise ValueError(f"radius must be >= 1, got {config.radius}")
        if config.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {config.fusion!r}")
        if config.flow_scale not in (1, 2):
            raise ValueError(f"flow_scale must be 1 or 2, got {config.flow_scale}")
        self.config = config
        c = config.channels
        stem = conv(3, c)
        self.extract = nn.Sequential(stem, nn.LeakyReLU(0.1), ResBlock(c))
        self.flow = FlowEstimator(levels=config.flow_levels, ch=config.flow_ch)
        # 1x1 embedding for the per-pixel similarity: applied to all 2r+1 maps per frame, a 3x3 one would cost 9x
        self.embed = nn.Conv2d(c, c, 1) if config.fusion == "attention" else None
        self.fuse = nn.Conv2d((2 * config.radius + 1) * c, c, 1)
        prior_ch = NUM_PRIOR_CHANNELS if config.prior else 0
        self.trunk = ResUNet(c + 3 + prior_ch, 3, c, config.blocks, config.scales, prior_ch=prior_ch,
                             max_channels=config.max_channels)
        he_init(stem, self.fuse)

    def estimate_flow(self, ref: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) x2 -> (N, 2, S, S) flow in full-resolution pixels such that warp(other) ~ ref."""
        s = self.config.flow_scale
        if s == 1:
            return self.flow(ref, other)
        flow = self.flow(F.avg_pool2d(ref, s), F.avg_pool2d(other, s))
        return float(s) * F.interpolate(flow, size=ref.shape[-2:], mode="bilinear", align_corners=False)

    def attention(self, aligned: list[torch.Tensor]) -> list[torch.Tensor]:
        """Weight the 2r+1 aligned maps (N, C, S, S) per pixel by their similarity to the centre frame's embedding:
        a softmax over the offsets, times 2r+1 so the weights average 1 (at initialisation every weight is ~1 and
        the features keep their scale; a plain sigmoid gate would halve them and measurably slow training).
        The similarity is a channel mean (not sum) of embedding products, so the softmax starts unsaturated."""
        embed = self.embed
        if embed is None:  # only the attention fusion has an embedding; forward calls this only then
            raise TypeError("'NoneType' object is not callable: attention() needs fusion='attention'")
        embs = [embed(f) for f in aligned]
        centre_emb = embs[self.config.radius]
        sims = torch.cat([(centre_emb * e).mean(dim=1, keepdim=True) for e in embs], dim=1)
        weights = torch.softmax(sims, dim=1) * float(len(aligned))
        return [f * weights[:, i:i + 1] for i, f in enumerate(aligned)]

    def aligned_features(self, x: torch.Tensor, feats: torch.Tensor) -> list[torch.Tensor]:
        """x (B, T, 3, S, S), feats (B, T, C, S, S) -> 2r+1 maps (B*T, C, S, S): every frame's neighbours at offsets
        -r..r (offset 0 = the frame itself) warped onto it."""
        t = int(x.shape[1])  # a Python int even under ONNX tracing: the neighbour indices are constants at fixed T
        ref, _, _ = to_frames(x)
        out = []
        for offset in range(-self.config.radius, self.config.radius + 1):
            nb_feat, _, _ = to_frames(gather_frames(feats, neighbour_index(t, offset)))
            if offset == 0:
                out.append(nb_feat)
                continue
            nb, _, _ = to_frames(gather_frames(x, neighbour_index(t, offset)))
            out.append(flow_warp(nb_feat, self.estimate_flow(ref, nb)))
        return out

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, 3, S, S) in [0, 1]; prior (B, T, 8, S, S) (required when config.prior) -> (B, T, 3, S, S)."""
        frames, b, t = to_frames(x)
        feats = from_frames(self.extract(centre(frames)), b, t)
        aligned = self.aligned_features(x, feats)
        if self.embed is not None:
            aligned = self.attention(aligned)
        fused = F.leaky_relu(self.fuse(torch.cat(aligned, dim=1)), 0.1)
        # the trunk also sees frame t itself: the reconstruction keeps a direct path to the image it corrects
        trunk_in = [fused, centre(frames)]
        p = None
        if self.config.prior:
            if prior is None:
                raise ValueError("window-prior is prior-driven: pass the (B, T, 8, S, S) landmark prior maps")
            p, _, _ = to_frames(prior)
            trunk_in.append(p)
        return from_frames(frames + self.trunk(torch.cat(trunk_in, dim=1), p), b, t)


def build_window(config: WindowConfig) -> WindowFVR:
    return WindowFVR(config)


def _radius(config: WindowConfig) -> int:
    return config.radius


def _presets(prior: bool) -> dict[str, tuple[int, WindowConfig]]:
    return {
        # GFLOP/frame / params: fast 1.34 / 166k (flow at 64², 16-channel 3-scale trunk); quality 43 / 4.4M at 256²
        "fast": (128, WindowConfig(radius=2, channels=16, blocks=1, scales=3, flow_ch=8, flow_levels=3,
                                   flow_scale=2, prior=prior)),
        "quality": (256, WindowConfig(radius=2, channels=32, blocks=2, scales=4, flow_ch=16, flow_levels=4,
                                      flow_scale=2, prior=prior)),
        "tiny": (32, WindowConfig(radius=2, channels=8, blocks=1, scales=3, flow_ch=4, flow_levels=2,
                                  flow_scale=2, prior=prior, max_channels=16)),
    }


WINDOW = ArchSpec(
    name="window", kind="cnn", temporal="window",
    description="short-window FVR: 2r neighbours flow-aligned (learned SpyNet-like flow, feature warping) to each "
                "frame, attention-weighted fusion, residual U-Net trunk",
    config=WindowConfig, build=build_window, presets=_presets(False), past=_radius, future=_radius,
    tags=("flow-alignment", "fusion"),
)

WINDOW_PRIOR = ArchSpec(
    name="window-prior", kind="cnn", temporal="window",
    description="short-window FVR (flow alignment + attention fusion) whose U-Net trunk is conditioned on the "
                "output frame's landmark heat-maps and eye/mouth masks",
    config=WindowConfig, build=build_window, presets=_presets(True), past=_radius, future=_radius,
    tags=("flow-alignment", "fusion", "prior-driven"), uses_prior=True,
)

ARCHS: tuple[ArchSpec, ...] = (WINDOW, WINDOW_PRIOR)
