"""A compact conditional diffusion restorer with temporal attention and deterministic few-step DDIM sampling.

Tensor contract (:mod:`fvr.models.nets.core`): ``forward(x, prior=None)`` takes the degraded clip x (B, T, 3, S, S)
float32 in [0, 1] (already up-sampled to S; S a multiple of 4) and runs the **whole sampler**, returning the restored
clip (B, T, 3, S, S) float32 = x + r̂ (unclamped), where r̂ is the sampled residual. ``prior`` is ignored.

What is diffused is the *residual* r0 = (hq − lq) · ``residual_scale`` (ResShift / SR3-style residual diffusion:
the LQ frame already carries the image, the model only has to generate what the degradation removed; the scale
lifts the small residual towards the unit-variance noise so that intermediate steps are not pure noise).

Denoiser (one call per sampling step), a small U-Net at 3 scales (S, S/2, S/4 with C, 2C, 4C channels):
  input  concat(x_t, 2·lq − 1) (6 channels): the noisy residual and the (zero-centred) LQ frame as condition;
  time   sinusoidal embedding of t → MLP → an additive per-channel bias in every block;
  output r̂0, the clean residual in image units (**x0-parametrisation**: the network predicts the clean signal, not
         the noise, which makes 1–8 step sampling usable and training converge quickly). The output conv reads the
         last features *and* the LQ frame (a short linear path for the linear part of the residual: contrast, colour,
         sharpening) and starts small, so an untrained model returns ≈ x (near the identity).

Temporal attention, at S/4 only (cheap: (S/4)² positions × T tokens): for every spatial position, frame i's denoiser
features (queries) attend over the time axis to the *condition features* (a small per-frame LQ encoder, keys/values)
of the frames j with |i − j| ≤ ``window``, with a learned per-head bias for each offset j − i. Keys/values come from
the LQ condition rather than from the other frames' noisy states on purpose: DDIM chains the steps, so attending to
the neighbours' x_t would widen the temporal receptive field by ``window`` at every step (steps × window frames in
all); attending to step-independent LQ features keeps output i a function of LQ frames i−window … i+window only,
which is exactly the declared context ``past = future = window``. The condition encoder runs once per clip, not once
per step.

Sampling: deterministic DDIM (η = 0) on a cosine ᾱ(t) schedule over continuous t ∈ [0, 1], ``steps`` uniform steps
from t = 1 to 0. The initial noise comes from a ``torch.Generator`` seeded with ``config.seed`` and is *the same for
every frame and every clip* ((1, 1, 3, S, S), broadcast): the restorer is deterministic, a frame's output does not
depend on its position in a chunk, and identical noise across frames removes one source of flicker.

Training (:func:`diffusion_training_loss`): t ~ U(0, 1) per clip, noise shared by the clip's frames (as in
sampling), L1 on the predicted clean residual; ``t_samples`` copies of each clip at evenly spread t per step reduce
the variance of this objective (a single-clip batch otherwise sees one noise level per step).

Cost: one forward = condition encoder + ``steps`` × denoiser; :data:`ARCHS` presets are sized so the fast one stays
near 1 GFLOP/frame for the whole sampler. ``feed_forward=False``: the sampler is a Python loop with a random initial
state, not one ONNX graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from fvr.errors import ConfigError
from fvr.models.nets.blocks import ResBlock, conv, from_frames, to_frames
from fvr.models.nets.core import ArchSpec, TrainBatch

COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s: keeps the noise at t near 0 from being vanishingly small


@dataclass(frozen=True)
class DiffusionConfig:
    """Size and sampler of the diffusion restorer.

    channels: C, full-resolution width (S/2 uses 2C, S/4 uses 4C).
    blocks: time-conditioned ResBlocks per scale (each side of the U-Net; the S/4 level has ``blocks`` + 1).
    temb: width of the timestep embedding.
    heads: attention heads of the temporal attention (4C must be divisible by it).
    window: temporal attention radius in frames; the declared past = future = window.
    steps: DDIM steps at inference (1-8).
    residual_scale: the diffused quantity is (hq − lq) · residual_scale.
    seed: seed of the sampler's initial noise (fixed: the restorer is deterministic).
    t_samples: training only: copies of each clip per step, at evenly spread noise levels (variance reduction).
    """

    channels: int = 16
    blocks: int = 1
    temb: int = 64
    heads: int = 4
    window: int = 2
    steps: int = 4
    residual_scale: float = 5.0
    seed: int = 0
    t_samples: int = 2


# ----------------------------------------------------------------------------------------------- schedule


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Cosine schedule ᾱ(t) for t ∈ [0, 1] (any shape, float): 1 at t = 0, 0 at t = 1."""
    s = COSINE_OFFSET
    f = torch.cos((t + s) / (1.0 + s) * (math.pi / 2.0)) ** 2
    f0 = math.cos(s / (1.0 + s) * (math.pi / 2.0)) ** 2
    return (f / f0).clamp(0.0, 1.0)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) t ∈ [0, 1] -> (B, dim) sinusoidal features (t scaled to 0..1000 as in DDPM's integer steps)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * (-math.log(10000.0) / max(half, 1)))
    angles = (t.to(torch.float32) * 1000.0)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


# the layers small_init_ is used on: both have a weight and an optional bias
_Layer = TypeVar("_Layer", nn.Conv2d, nn.Linear)


def small_init_(layer: _Layer, scale: float = 0.1) -> _Layer:
    """Shrink a layer's initial weights and zero its bias: the end of a residual branch starts near zero (the model
    starts near the identity) but, unlike an all-zero init, earlier layers still get gradients from step one."""
    with torch.no_grad():
        layer.weight.mul_(scale)
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


# ----------------------------------------------------------------------------------------------- modules


def centre(img: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]: zero-mean inputs (like the noisy residual beside them) make the first convs' job and the
    optimisation easier than a 0.5 offset every feature has to cancel."""
    return img * 2.0 - 1.0


class TimeBlock(nn.Module):
    """ResBlock whose first conv's output gets a per-channel bias from the timestep embedding (how the denoiser
    knows the noise level). x (N, C, h, w), emb (N, temb) -> (N, C, h, w)."""

    def __init__(self, ch: int, temb: int):
        super().__init__()
        self.conv1 = conv(ch, ch)
        self.conv2 = conv(ch, ch)
        self.emb = nn.Linear(temb, ch)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(x)) + self.emb(emb)[:, :, None, None]
        return x + self.conv2(F.silu(h))


def band_mask(t: int, window: int, device: torch.device) -> torch.Tensor:
    """(T, T) bool, True where frame i may attend to frame j (|i − j| ≤ window)."""
    idx = torch.arange(t, device=device)
    return (idx[None, :] - idx[:, None]).abs() <= window


class TemporalAttention(nn.Module):
    """Per spatial position, frame i's features attend over time to the condition features of frames within
    ``window`` (see the module docstring for why keys/values are the LQ condition).

    h: (B, T, C, H, W) denoiser features; cond: (B, T, C, H, W) condition features -> (B, T, C, H, W) = h + attn.
    """

    def __init__(self, ch: int, heads: int, window: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.norm_q = nn.LayerNorm(ch)
        self.norm_kv = nn.LayerNorm(ch)
        self.q = nn.Linear(ch, ch)
        self.kv = nn.Linear(ch, 2 * ch)
        self.out = small_init_(nn.Linear(ch, ch))
        # one learned logit bias per head and relative offset j − i ∈ [−window, window]: frames know who is who
        self.rel_bias = nn.Parameter(torch.zeros(heads, 2 * window + 1))

    def attn_bias(self, t: int, device: torch.device) -> torch.Tensor:
        """(heads, T, T) additive logits: the learned offset bias inside the band, −inf outside it."""
        idx = torch.arange(t, device=device)
        offset = idx[None, :] - idx[:, None]  # j − i
        inside = offset.abs() <= self.window
        bias = self.rel_bias[:, (offset.clamp(-self.window, self.window) + self.window)]
        return bias.masked_fill(~inside, float("-inf"))

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b, t, c, hh, ww = h.shape
        # tokens: one sequence of T frames per (batch, spatial position)
        q_tok = h.permute(0, 3, 4, 1, 2).reshape(b * hh * ww, t, c)
        kv_tok = cond.permute(0, 3, 4, 1, 2).reshape(b * hh * ww, t, c)
        d = c // self.heads
        q = self.q(self.norm_q(q_tok)).view(-1, t, self.heads, d).transpose(1, 2)
        k, v = self.kv(self.norm_kv(kv_tok)).view(-1, t, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.attn_bias(t, h.device).to(q.dtype))
        out = self.out(out.transpose(1, 2).reshape(-1, t, c))
        out = out.view(b, hh, ww, t, c).permute(0, 3, 4, 1, 2)
        return h + out


class ConditionEncoder(nn.Module):
    """Per-frame LQ features at S/4 for the temporal attention's keys/values. (N, 3, S, S) -> (N, 4C, S/4, S/4)."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(conv(3, ch), nn.SiLU(), conv(ch, 2 * ch, 3, 2), nn.SiLU(),
                                  conv(2 * ch, 4 * ch, 3, 2), ResBlock(4 * ch))

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        return self.body(lq)


class DiffusionRestorer(nn.Module):
    """Conditional residual-diffusion U-Net plus its DDIM sampler; see the module docstring.

    forward(x, prior=None): x (B, T, 3, S, S) in [0, 1] -> (B, T, 3, S, S) restored (runs ``config.steps`` steps).
    """

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        self.config = config
        c, e, n = config.channels, config.temb, config.blocks
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.cond = ConditionEncoder(c)
        self.inp = conv(6, c)
        self.enc0 = nn.ModuleList(TimeBlock(c, e) for _ in range(n))
        self.down1 = conv(c, 2 * c, 3, 2)
        self.enc1 = nn.ModuleList(TimeBlock(2 * c, e) for _ in range(n))
        self.down2 = conv(2 * c, 4 * c, 3, 2)
        self.mid_in = TimeBlock(4 * c, e)
        self.attn = TemporalAttention(4 * c, config.heads, config.window)
        self.mid_out = nn.ModuleList(TimeBlock(4 * c, e) for _ in range(n))
        self.up1 = conv(4 * c, 2 * c)
        self.dec1 = nn.ModuleList(TimeBlock(2 * c, e) for _ in range(n))
        self.up0 = conv(2 * c, c)
        self.dec0 = nn.ModuleList(TimeBlock(c, e) for _ in range(n))
        self.head = small_init_(conv(c + 3, 3))

    # -- denoiser

    def condition(self, lq: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, S, S) -> (B, T, 4C, S/4, S/4) condition features; computed once per clip, reused every step."""
        frames, b, t = to_frames(centre(lq))
        return from_frames(self.cond(frames), b, t)

    def denoise(self, x_t: torch.Tensor, lq: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """One denoiser call. x_t (B, T, 3, S, S) noisy scaled residual, lq (B, T, 3, S, S), t (B,) in [0, 1],
        cond from :meth:`condition` -> r̂0 (B, T, 3, S, S), the clean residual hq − lq in image units."""
        b, nt = lq.shape[:2]
        emb = self.time_mlp(timestep_embedding(t, self.config.temb))
        emb = emb[:, None].expand(b, nt, -1).reshape(b * nt, -1)  # every frame of a clip shares its t
        h0, _, _ = to_frames(torch.cat([x_t, centre(lq)], dim=2))
        h0 = self.inp(h0)
        for blk in self.enc0:
            h0 = blk(h0, emb)
        h1 = self.down1(h0)
        for blk in self.enc1:
            h1 = blk(h1, emb)
        h2 = self.mid_in(self.down2(h1), emb)
        h2, _, _ = to_frames(self.attn(from_frames(h2, b, nt), cond))
        for blk in self.mid_out:
            h2 = blk(h2, emb)
        # decoder: nearest up-sampling + conv, skips added (cheaper than concatenation at full resolution)
        h = self.up1(F.interpolate(h2, scale_factor=2.0, mode="nearest")) + h1
        for blk in self.dec1:
            h = blk(h, emb)
        h = self.up0(F.interpolate(h, scale_factor=2.0, mode="nearest")) + h0
        for blk in self.dec0:
            h = blk(h, emb)
        # the head also sees the LQ frame directly: a short linear path for the linear part of the residual (contrast,
        # colour, sharpening), which the deep path would learn slowly through the noisy x_t features
        lq_frames, _, _ = to_frames(centre(lq))
        return from_frames(self.head(torch.cat([F.silu(h), lq_frames], dim=1)), b, nt)

    # -- sampler

    def initial_noise(self, like: torch.Tensor) -> torch.Tensor:
        """The sampler's x_1: seeded, (1, 1, 3, S, S) broadcast to like's shape (same for every frame and clip)."""
        g = torch.Generator(device="cpu").manual_seed(int(self.config.seed))
        noise = torch.randn((1, 1, *like.shape[2:]), generator=g, dtype=torch.float32)
        return noise.to(device=like.device, dtype=like.dtype).expand_as(like)

    def sample(self, lq: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Deterministic DDIM (η = 0) from t = 1 to 0 in ``steps`` steps. lq (B, T, 3, S, S) -> r̂0 (image units)."""
        steps = int(steps or self.config.steps)
        scale = self.config.residual_scale
        cond = self.condition(lq)
        x = self.initial_noise(lq)
        r0 = torch.zeros_like(lq)
        for k in range(steps):
            t_now, t_next = 1.0 - k / steps, 1.0 - (k + 1) / steps
            t = torch.full((lq.shape[0],), t_now, device=lq.device)
            r0 = self.denoise(x, lq, t, cond)
            if k == steps - 1:
                break  # the last step lands on t = 0: the prediction is the sample
            x = ddim_step(x, r0 * scale, t_now, t_next)
        return r0

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.sample(x)


def ddim_step(x_t: torch.Tensor, x0: torch.Tensor, t_now: float, t_next: float) -> torch.Tensor:
    """η = 0 DDIM update from t_now to t_next given the predicted clean sample x0 (both in diffused units)."""
    ab_now = float(alpha_bar(torch.tensor(t_now)))
    ab_next = float(alpha_bar(torch.tensor(t_next)))
    eps = (x_t - math.sqrt(ab_now) * x0) / math.sqrt(max(1.0 - ab_now, 1e-12))
    return math.sqrt(ab_next) * x0 + math.sqrt(max(1.0 - ab_next, 0.0)) * eps


# ----------------------------------------------------------------------------------------------- training


def diffusion_training_loss(net: DiffusionRestorer, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
    """x0-prediction objective. The batch is repeated ``t_samples`` times; per clip copy: t (shared by its frames, as
    in sampling; low-discrepancy over the copies, uniform on [0, 1] each), noise ~ N(0, 1) shared by its frames (as the
    sampler's initial noise is), x_t = √ᾱ r0 + √(1−ᾱ) ε with r0 = (hq − lq)·scale; the loss is
    the L1 between the predicted and true clean residual in image units (= L1 between lq + r̂0 and hq).
    Logs: l1_x0, mse_x0, and l1_identity (the loss of predicting no residual, for reference)."""
    k = int(net.config.t_samples)
    lq, hq = batch.lq.repeat(k, 1, 1, 1, 1), batch.hq.repeat(k, 1, 1, 1, 1)
    b = lq.shape[0]
    residual = hq - lq
    # low-discrepancy t (Kingma et al., VDM): one uniform offset, evenly spread over the k·B copies
    t = torch.remainder(torch.rand(1, device=lq.device) + torch.arange(b, device=lq.device) / b, 1.0)
    noise = torch.randn((b, 1, *lq.shape[2:]), device=lq.device, dtype=lq.dtype).expand_as(lq)
    ab = alpha_bar(t).view(b, 1, 1, 1, 1)
    x_t = ab.sqrt() * residual * net.config.residual_scale + (1.0 - ab).sqrt() * noise
    pred = net.denoise(x_t, lq, t, net.condition(lq))
    err = pred - residual
    loss = err.abs().mean()
    return loss, {"l1_x0": float(loss.detach()), "mse_x0": float((err.detach() ** 2).mean()),
                  "l1_identity": float(residual.abs().mean())}


def build_diffusion(config: DiffusionConfig) -> DiffusionRestorer:
    """The network for ``config``; one-line :class:`ConfigError` for options it cannot honour."""
    if not 1 <= config.steps <= 8:
        raise ConfigError(f"diffusion: steps must be 1-8 (few-step DDIM), got {config.steps}")
    if (4 * config.channels) % config.heads or config.window < 0 or config.t_samples < 1:
        raise ConfigError(f"diffusion: need 4·channels divisible by heads, window >= 0 and t_samples >= 1 "
                          f"(got channels={config.channels}, heads={config.heads}, window={config.window}, "
                          f"t_samples={config.t_samples})")
    return DiffusionRestorer(config)


PRESETS = {
    # measured with FlopCounterMode for the whole sampler (condition encoder + steps × denoiser), per frame:
    # fast: C = 8, 3 steps -> ~1.1 GFLOP at 128²; quality: C = 16, 2 blocks per scale, 6 steps -> ~52 GFLOP at 256²;
    # tiny (tests): C = 8 at 32², 3 steps, 4 noise levels per clip and training step (single-clip overfits are noisy).
    "fast": (128, DiffusionConfig(channels=8, blocks=1, temb=32, heads=4, window=2, steps=3)),
    "quality": (256, DiffusionConfig(channels=16, blocks=2, temb=64, heads=4, window=2, steps=6)),
    "tiny": (32, DiffusionConfig(channels=8, blocks=1, temb=16, heads=2, window=2, steps=3, t_samples=4)),
}

DIFFUSION = ArchSpec(
    name="diffusion", kind="diffusion", temporal="diffusion",
    description="conditional residual diffusion U-Net (x0-prediction) with windowed temporal attention; "
                "deterministic few-step DDIM sampling, shared seeded noise across frames",
    config=DiffusionConfig, build=build_diffusion, presets=PRESETS,
    past=lambda c: c.window, future=lambda c: c.window,
    tags=("temporal-attention", "few-step"), feed_forward=False, training_loss=diffusion_training_loss,
)

ARCHS = (DIFFUSION,)
