"""Per-frame residual U-Net restorers: the survey's per-frame image baseline, its GAN-trained twin and a
prior-driven variant.

Network contract (see :mod:`fvr.models.nets.core`)::

    forward(x, prior=None) -> y
    x:     (B, T, 3, S, S) float32 RGB in [0, 1], the degraded crop already up-sampled to S
    prior: (B, T, 8, S, S) float32 in [0, 1] (landmark heat-maps + component masks) when ``config.prior``, else
           ignored
    y:     (B, T, 3, S, S) float32, ``x + residual`` (not clamped)

Every frame is an independent sample (frames are folded into the batch), so the model is per-frame: output t
depends on input frame t only. Any S works (S divisible by ``2 ** (scales - 1)`` is best).

:class:`ResUNet` is the reusable body (features in, residual out) that the short-window model
(:mod:`fvr.models.nets.window`) and the face-region model (:mod:`fvr.models.nets.regional`) build on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fvr.models.nets.blocks import conv, conv_bias, from_frames, res_stack, to_frames
from fvr.models.nets.core import ArchSpec
from fvr.models.nets.prior import NUM_PRIOR_CHANNELS


@dataclass(frozen=True)
class UNetConfig:
    """channels: width at full resolution (doubled at each coarser scale, capped at ``max_channels``);
    blocks: ResBlocks per scale (encoder and decoder each); scales: resolutions (1-5; 3 = two down-samplings);
    prior: concatenate the 8 prior maps to the input; inject: also add the (pooled) prior at every scale."""

    channels: int = 16
    blocks: int = 1
    scales: int = 3
    prior: bool = False
    inject: bool = False
    max_channels: int = 256


def zero_conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    """A conv that starts at exactly zero: the last layer of every residual branch, so that an untrained network
    is the identity (output = input) and training only adds what helps."""
    layer = conv(cin, cout, k)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(conv_bias(layer))
    return layer


def he_init(*layers: nn.Conv2d) -> None:
    """He (Kaiming) initialisation for convs followed by LeakyReLU(0.1), zero bias. PyTorch's default conv init
    shrinks activations ~3x per layer; keeping their scale lets Adam move the (zero-initialised) output conv
    faster (measured on the tiny presets' 50-step overfit: final losses up to ~1/3 lower). ResBlock convs keep the
    default small init so that deep residual stacks start close to the identity."""
    for layer in layers:
        nn.init.kaiming_normal_(layer.weight, a=0.1, nonlinearity="leaky_relu")
        nn.init.zeros_(conv_bias(layer))


def centre(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> [-1, 1]: zero-mean input to the first conv, which trains markedly faster (measured: the
    tiny preset's 50-step overfit loss falls ~25% lower) than feeding the raw [0, 1] range."""
    return x * 2.0 - 1.0


def scale_widths(channels: int, scales: int, max_channels: int = 256) -> list[int]:
    """Feature width at each scale: doubled per down-sampling (keeps the per-conv cost roughly constant)."""
    return [min(channels * 2 ** i, max_channels) for i in range(scales)]


class ResUNet(nn.Module):
    """Encoder/decoder over (N, C_in, H, W) features -> (N, C_out, H, W), with additive skip connections.

    Encoder: at each scale ``blocks`` ResBlocks, then a stride-2 conv to the next (wider) scale. Decoder: a 1x1 conv
    back to the finer width, bilinear up-sampling, plus the encoder's features at that scale (additive skip: cheaper
    than concatenation), then ``blocks`` ResBlocks. The output conv starts at zero.
    ``prior_ch`` > 0 adds a 1x1 projection of the (average-pooled) prior maps at every scale.
    Any H, W work; sides divisible by 2 ** (scales - 1) avoid uneven padding at the coarse scales.
    """

    def __init__(self, cin: int, cout: int, channels: int, blocks: int, scales: int, prior_ch: int = 0,
                 max_channels: int = 256):
        super().__init__()
        if not 1 <= scales <= 5:
            raise ValueError(f"scales must be in 1..5, got {scales}")
        widths = scale_widths(channels, scales, max_channels)
        self.scales = scales
        self.head = conv(cin, widths[0])
        self.enc = nn.ModuleList([res_stack(w, blocks) for w in widths])
        self.down = nn.ModuleList([conv(widths[i], widths[i + 1], 3, stride=2) for i in range(scales - 1)])
        # 1x1 width reduction at the coarse scale, before up-sampling: 36x fewer multiply-adds than a 3x3 conv after it
        self.up = nn.ModuleList([nn.Conv2d(widths[i + 1], widths[i], 1) for i in range(scales - 1)])
        self.dec = nn.ModuleList([res_stack(widths[i], blocks) for i in range(scales - 1)])
        self.inject = nn.ModuleList([nn.Conv2d(prior_ch, w, 1) for w in widths]) if prior_ch else None
        self.tail = zero_conv(widths[0], cout)
        he_init(self.head, *self.down, *self.up)

    def _add_prior(self, feat: torch.Tensor, prior: torch.Tensor | None, level: int) -> torch.Tensor:
        if self.inject is None or prior is None:
            return feat
        # ceil_mode matches the stride-2 convs' ceil(H / 2) sizes when H is not a multiple of 2 ** level
        pooled = F.avg_pool2d(prior, 2 ** level, ceil_mode=True) if level else prior
        return feat + self.inject[level](pooled)

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, C_in, H, W); prior (N, prior_ch, H, W) or None -> (N, C_out, H, W) residual."""
        feat = F.leaky_relu(self.head(x), 0.1)
        skips = []
        for level in range(self.scales):
            feat = self.enc[level](self._add_prior(feat, prior, level))
            if level < self.scales - 1:
                skips.append(feat)
                feat = F.leaky_relu(self.down[level](feat), 0.1)
        for level in range(self.scales - 2, -1, -1):
            feat = F.leaky_relu(self.up[level](feat), 0.1)
            # up-sample to the skip's exact size, so sides not divisible by 2 ** (scales - 1) work too
            feat = F.interpolate(feat, size=skips[level].shape[-2:], mode="bilinear", align_corners=False)
            feat = feat + skips[level]
            feat = self.dec[level](feat)
        return self.tail(feat)


class UNetRestorer(nn.Module):
    """Per-frame residual U-Net: y_t = x_t + ResUNet([x_t, prior_t]) for every frame t independently."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        prior_ch = NUM_PRIOR_CHANNELS if config.prior else 0
        self.body = ResUNet(3 + prior_ch, 3, config.channels, config.blocks, config.scales,
                            prior_ch=prior_ch if config.inject else 0, max_channels=config.max_channels)

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, 3, S, S) in [0, 1]; prior (B, T, 8, S, S) (required when config.prior) -> (B, T, 3, S, S)."""
        frames, b, t = to_frames(x)
        inp, p = centre(frames), None
        if self.config.prior:
            if prior is None:
                raise ValueError("this U-Net is prior-driven: pass the (B, T, 8, S, S) landmark prior maps")
            p, _, _ = to_frames(prior)
            inp = torch.cat([inp, p], dim=1)
        return from_frames(frames + self.body(inp, p), b, t)


def build_unet(config: UNetConfig) -> UNetRestorer:
    return UNetRestorer(config)


def _presets(prior: bool) -> dict[str, tuple[int, UNetConfig]]:
    # GFLOP/frame (FlopCounterMode) / params: fast 0.87 / 147k at 128²; quality 36 / 4.3M at 256²; tiny 0.012 / 21k
    # (prior variant: +~0.04 GFLOP at 128²). tests/models/test_nets_cnn.py checks fast <= 1 GFLOP.
    return {
        "fast": (128, UNetConfig(channels=16, blocks=1, scales=3, prior=prior, inject=False)),
        "quality": (256, UNetConfig(channels=32, blocks=2, scales=4, prior=prior, inject=prior)),
        "tiny": (32, UNetConfig(channels=8, blocks=1, scales=3, prior=prior, inject=prior, max_channels=16)),
    }


UNET = ArchSpec(
    name="unet", kind="cnn", temporal="per-frame",
    description="per-frame residual U-Net image restorer (CNN baseline, reconstruction losses)",
    config=UNetConfig, build=build_unet, presets=_presets(False), tags=("baseline", "image"),
)

UNET_GAN = ArchSpec(
    name="unet-gan", kind="gan", temporal="per-frame",
    description="per-frame residual U-Net, GAN-trained: the network is identical to `unet`; the trainer adds the "
                "adversarial loss (a discriminator) when the training config asks for it",
    config=UNetConfig, build=build_unet, presets=_presets(False), tags=("baseline", "image", "adversarial"),
)

UNET_PRIOR = ArchSpec(
    name="unet-prior", kind="cnn", temporal="per-frame",
    description="per-frame residual U-Net conditioned on landmark heat-maps and eye/mouth masks (input concat, "
                "and at every scale in the quality preset)",
    config=UNetConfig, build=build_unet, presets=_presets(True),
    tags=("prior-driven", "landmark-heatmaps", "component-masks"), uses_prior=True,
)

ARCHS: tuple[ArchSpec, ...] = (UNET, UNET_GAN, UNET_PRIOR)
