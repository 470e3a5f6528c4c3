"""Flow warping in torch (differentiable, exportable to ONNX with grid_sample, opset >= 16)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def flow_warp(x: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``x`` (N, C, H, W) at p + flow(p); flow (N, 2, H, W) in pixels (x, y). Border pixels repeat."""
    n, _, h, w = x.shape
    ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1).expand(n, h, w)
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w).expand(n, h, w)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=True)
