"""Shared building blocks of fvr's learned restorers (plain torch, no torchvision)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fvr.models.nets.warp import flow_warp


def conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def conv_bias(layer: nn.Conv2d) -> torch.Tensor:
    """The (cout,) bias of a conv built with one (:func:`conv` and nn.Conv2d's default); nn.Conv2d types it as
    optional. A bias-less conv fails here as it would have at the first use of its (None) bias."""
    if layer.bias is None:
        raise AttributeError(f"{layer} has no bias")
    return layer.bias


class ResBlock(nn.Module):
    """conv-LeakyReLU-conv with an identity skip (no normalisation: restoration keeps absolute intensities)."""

    def __init__(self, ch: int, res_scale: float = 1.0):
        super().__init__()
        self.conv1 = conv(ch, ch)
        self.conv2 = conv(ch, ch)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(F.leaky_relu(self.conv1(x), 0.1))


def res_stack(ch: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(ch) for _ in range(n)])


class FlowEstimator(nn.Module):
    """A small coarse-to-fine optical-flow network (SpyNet-like) for aligned face crops, where residual motion is
    small. forward(ref, other) -> (N, 2, H, W) flow in pixels such that ``flow_warp(other, flow)`` ~ ref.

    The last conv of every level starts at zero, so an untrained estimator returns zero flow (no warping) and
    training only moves it where warping helps the reconstruction.
    """

    def __init__(self, levels: int = 3, ch: int = 16):
        super().__init__()
        self.levels = levels
        self.nets = nn.ModuleList()
        for _ in range(levels):
            last = conv(ch, 2, 3)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(conv_bias(last))
            self.nets.append(nn.Sequential(conv(8, ch, 5), nn.LeakyReLU(0.1), conv(ch, ch, 5), nn.LeakyReLU(0.1),
                                           last))

    def forward(self, ref: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        pyramid = [(ref, other)]
        for _ in range(self.levels - 1):
            r, o = pyramid[-1]
            pyramid.append((F.avg_pool2d(r, 2), F.avg_pool2d(o, 2)))
        flow = torch.zeros_like(pyramid[-1][0][:, :2])
        for level in range(self.levels - 1, -1, -1):
            r, o = pyramid[level]
            if flow.shape[-2:] != r.shape[-2:]:
                flow = 2.0 * F.interpolate(flow, size=r.shape[-2:], mode="bilinear", align_corners=False)
            warped = flow_warp(o, flow)
            flow = flow + self.nets[level](torch.cat([r, warped, flow], dim=1))
        return flow


def to_frames(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """(B, T, C, H, W) -> (B*T, C, H, W), B, T."""
    b, t = x.shape[:2]
    return x.reshape(b * t, *x.shape[2:]), b, t


def from_frames(x: torch.Tensor, b: int, t: int) -> torch.Tensor:
    return x.reshape(b, t, *x.shape[1:])
