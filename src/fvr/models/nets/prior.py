"""Facial prior maps from the 5 landmarks: what prior-driven models are conditioned on, and what
component-weighted losses weight by.

Channels (K = 8), all float32 in [0, 1] at crop resolution:
  0-4  Gaussian heat-maps of left eye, right eye, nose, mouth left, mouth right (sigma = S / 64);
  5-6  soft ellipses over the left and right eye regions;
  7    a soft ellipse over the mouth.
Built from the landmarks the pipeline already has (no face-parsing network: none is obtainable here).
"""

from __future__ import annotations

import torch

NUM_PRIOR_CHANNELS = 8
COMPONENTS = {"left_eye": 5, "right_eye": 6, "mouth": 7}


def _grid(size: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    # pixel i has its centre at coordinate i: the convention of cv2.warpAffine, which maps the landmarks into the crop
    coords = torch.arange(size, device=device, dtype=dtype)
    return coords.view(1, 1, 1, 1, size), coords.view(1, 1, 1, size, 1)  # x varies along W, y along H


def _ellipse(xx: torch.Tensor, yy: torch.Tensor, centre: torch.Tensor, axes: torch.Tensor, angle: torch.Tensor,
             softness: float) -> torch.Tensor:
    """Soft ellipse mask (B, T, 1, S, S); centre (B, T, 2), axes (B, T, 2) semi-axes in px, angle (B, T) rad."""
    cx, cy = centre[..., 0, None, None, None], centre[..., 1, None, None, None]
    ca, sa = torch.cos(angle)[..., None, None, None], torch.sin(angle)[..., None, None, None]
    dx, dy = xx - cx, yy - cy
    u = (dx * ca + dy * sa) / axes[..., 0, None, None, None]
    v = (-dx * sa + dy * ca) / axes[..., 1, None, None, None]
    r = torch.sqrt(u * u + v * v)
    return torch.clamp((1.0 + softness - r) / (2.0 * softness), 0.0, 1.0)


def landmark_prior(landmarks: torch.Tensor, size: int) -> torch.Tensor:
    """(B, T, 5, 2) crop-pixel landmarks -> (B, T, 8, S, S) prior maps (see the module docstring)."""
    b, t = landmarks.shape[:2]
    lm = landmarks.to(torch.float32)
    xx, yy = _grid(size, lm.device, lm.dtype)
    sigma = size / 64.0
    px = lm[..., 0, None, None]  # (B, T, 5, 1, 1)
    py = lm[..., 1, None, None]
    heat = torch.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2.0 * sigma * sigma))
    eye_dist = torch.linalg.norm(lm[:, :, 1] - lm[:, :, 0], dim=-1).clamp_min(1.0)  # (B, T)
    eye_vec = lm[:, :, 1] - lm[:, :, 0]
    angle = torch.atan2(eye_vec[..., 1], eye_vec[..., 0])
    eye_axes = torch.stack([0.32 * eye_dist, 0.2 * eye_dist], -1)
    left = _ellipse(xx, yy, lm[:, :, 0], eye_axes, angle, 0.25)
    right = _ellipse(xx, yy, lm[:, :, 1], eye_axes, angle, 0.25)
    mouth_c = 0.5 * (lm[:, :, 3] + lm[:, :, 4])
    mouth_w = torch.linalg.norm(lm[:, :, 4] - lm[:, :, 3], dim=-1).clamp_min(1.0)
    mouth_axes = torch.stack([0.75 * mouth_w, 0.42 * mouth_w], -1)
    mouth = _ellipse(xx, yy, mouth_c, mouth_axes, angle, 0.25)
    out = torch.cat([heat, left, right, mouth], dim=2)
    return out.reshape(b, t, NUM_PRIOR_CHANNELS, size, size)


def component_weights(landmarks: torch.Tensor, size: int, weight: float = 1.0) -> torch.Tensor:
    """(B, T, 1, S, S) per-pixel loss weights: 1 everywhere plus ``weight`` on eyes and mouth."""
    prior = landmark_prior(landmarks, size)
    comp = prior[:, :, 5:8].amax(dim=2, keepdim=True)
    return 1.0 + weight * comp
