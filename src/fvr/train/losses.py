"""Training losses on clips (B, T, 3, S, S) float32 (outputs unclamped, targets in [0, 1]).

- Charbonnier: mean(sqrt(d² + ε²) − ε), d = ŷ − y (0 for identical inputs; L1-like, smooth at 0).
- L1: mean |ŷ − y|.
- component-weighted L1: mean(w · |ŷ − y|), w = 1 + boost · (eye/mouth masks) from the landmarks
  (:func:`fvr.models.nets.prior.component_weights`), so eyes and mouth count (1 + boost)× more.
- ST-LPIPS: the shift-tolerant LPIPS distance (:class:`fvr.metrics.stlpips.STLPIPSNet`, frozen, differentiable),
  inputs mapped to [-1, 1], averaged over frames.
- temporal: mean |(ŷ_t − W(ŷ_{t−1})) − (y_t − W(y_{t−1}))| over t ≥ 1, W = warp by the flow from y_t to y_{t−1}
  (OpenCV DIS on the ground truth, no gradient through it): the output may change between frames only as the
  ground truth does, once motion is compensated. 0 when ŷ = y.
- GAN: a small PatchGAN discriminator on single frames; hinge or non-saturating ("ns") losses.
Weights come from the config's [loss] section; a term whose weight is 0 is not computed.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fvr.models.nets.prior import component_weights
from fvr.models.nets.warp import flow_warp
from fvr.train.config import LossSection


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean(sqrt((pred − target)² + eps²) − eps): exactly 0 for identical inputs."""
    d = pred - target
    return (torch.sqrt(d * d + eps * eps) - eps).mean()


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean()


def component_l1(pred: torch.Tensor, target: torch.Tensor, landmarks: torch.Tensor, boost: float = 1.0) -> torch.Tensor:
    """L1 weighted per pixel by 1 + boost · eye/mouth masks; landmarks (B, T, 5, 2) crop px."""
    w = component_weights(landmarks.to(pred.device), pred.shape[-1], boost)  # (B, T, 1, S, S)
    return (w * (pred - target).abs()).mean()


class STLPIPSLoss(nn.Module):
    """ST-LPIPS as a loss: frozen network, gradients flow to the prediction only. Needs S >= 32."""

    def __init__(self, weights: str | None = None):
        super().__init__()
        from fvr.metrics.stlpips import load_stlpips_net

        self.net = load_stlpips_net(weights or None)

    def train(self, mode: bool = True) -> STLPIPSLoss:
        return super().train(False)  # always in evaluation mode (frozen statistics; the net has no dropout)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x0 = pred.reshape(-1, *pred.shape[-3:]) * 2.0 - 1.0
        x1 = target.reshape(-1, *target.shape[-3:]) * 2.0 - 1.0
        return self.net(x0, x1).mean()


# ----------------------------------------------------------------------------------------------- temporal


def _dis():
    import cv2

    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def hq_flows(hq: torch.Tensor) -> torch.Tensor:
    """Flows (B, T−1, 2, S, S) float32 for the temporal loss: flow[:, t−1] maps frame t to t−1 (y_t(x) ≈
    y_{t−1}(x + f(x))), by OpenCV DIS (preset MEDIUM, grey levels) on the ground truth. CPU, no gradient."""
    b, t = hq.shape[:2]
    out = np.zeros((b, max(t - 1, 0), 2, *hq.shape[-2:]), dtype=np.float32)
    if t < 2:
        return torch.from_numpy(out)
    grey = (hq.detach().cpu().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()
    grey = (0.299 * grey[:, :, 0] + 0.587 * grey[:, :, 1] + 0.114 * grey[:, :, 2] + 0.5).astype(np.uint8)
    dis = _dis()
    for i in range(b):
        for k in range(1, t):
            f = dis.calc(np.ascontiguousarray(grey[i, k]), np.ascontiguousarray(grey[i, k - 1]), None)
            out[i, k - 1] = f.transpose(2, 0, 1)
    return torch.from_numpy(out)


def temporal_loss(pred: torch.Tensor, target: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
    """mean |(ŷ_t − W ŷ_{t−1}) − (y_t − W y_{t−1})| with W = flow_warp by ``flows`` (from :func:`hq_flows`)."""
    b, t = pred.shape[:2]
    if t < 2:
        return pred.new_zeros(())
    flows = flows.to(pred.device, pred.dtype).reshape(b * (t - 1), 2, *pred.shape[-2:])
    prev_p = pred[:, :-1].reshape(-1, *pred.shape[2:])
    prev_y = target[:, :-1].reshape(-1, *target.shape[2:])
    warped = flow_warp(torch.cat([prev_p, prev_y], 1), flows)  # one warp for both: same flow
    wp, wy = warped[:, :3], warped[:, 3:]
    cur_p = pred[:, 1:].reshape(-1, *pred.shape[2:])
    cur_y = target[:, 1:].reshape(-1, *target.shape[2:])
    return ((cur_p - wp) - (cur_y - wy)).abs().mean()


# ----------------------------------------------------------------------------------------------- GAN


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017), small: strided 4x4 convs with spectral norm (stable without tuning), one
    logit per ~(70 px)² patch. Input (N, 3, S, S) in [0, 1] -> (N, 1, S/8, S/8) logits."""

    def __init__(self, ch: int = 32, layers: int = 3):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        mods: list[nn.Module] = [nn.Conv2d(3, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ch
        for _ in range(layers - 1):
            mods += [sn(nn.Conv2d(c, min(c * 2, 256), 4, 2, 1)), nn.LeakyReLU(0.2)]
            c = min(c * 2, 256)
        mods += [sn(nn.Conv2d(c, c, 3, 1, 1)), nn.LeakyReLU(0.2), nn.Conv2d(c, 1, 3, 1, 1)]
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * 2.0 - 1.0)


def frames_of(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, *x.shape[-3:])


def disc_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Discriminator objective: hinge mean(relu(1 − D(y))) + mean(relu(1 + D(ŷ))), or non-saturating
    mean(softplus(−D(y))) + mean(softplus(D(ŷ)))."""
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def gen_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Generator objective: hinge −mean D(ŷ), or non-saturating mean(softplus(−D(ŷ)))."""
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


# ----------------------------------------------------------------------------------------------- combined


class ReconstructionLoss(nn.Module):
    """The weighted sum of the configured reconstruction terms (not the GAN term: the trainer adds it)."""

    def __init__(self, cfg: LossSection):
        super().__init__()
        self.cfg = cfg
        self.stlpips = STLPIPSLoss(cfg.stlpips_weights or None) if cfg.stlpips > 0 else None

    @property
    def needs_flows(self) -> bool:
        return self.cfg.temporal > 0

    def forward(self, pred: torch.Tensor, target: torch.Tensor, landmarks: torch.Tensor,
                flows: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.cfg
        terms: dict[str, torch.Tensor] = {}
        if c.charbonnier > 0:
            terms["charbonnier"] = c.charbonnier * charbonnier(pred, target, c.charbonnier_eps)
        if c.l1 > 0:
            terms["l1"] = c.l1 * l1(pred, target)
        if c.component > 0:
            terms["component"] = c.component * component_l1(pred, target, landmarks, c.component_boost)
        if self.stlpips is not None:
            terms["stlpips"] = c.stlpips * self.stlpips(pred, target)
        if c.temporal > 0 and pred.shape[1] > 1:
            if flows is None:
                raise ValueError("the temporal loss needs the ground-truth flows (hq_flows)")
            terms["temporal"] = c.temporal * temporal_loss(pred, target, flows)
        # sum() starts from the int 0, so it types as Tensor | int; over one or more tensors it is a tensor
        total = cast(torch.Tensor, sum(terms.values())) if terms else pred.new_zeros(())
        return total, terms
