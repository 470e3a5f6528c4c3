"""A generative codebook prior for face restoration, CodeFormer-style (Zhou et al., 2022), in two training stages.

Tensor contract (:mod:`fvr.models.nets.core`): ``forward(x, prior=None)`` takes x (B, T, 3, S, S) float32 in [0, 1]
(per frame; S a multiple of 2^len(mults)) and returns (B, T, 3, S, S) float32 (unclamped); ``prior`` is ignored.

**Stage 1 — VQ autoencoder on HQ crops** (``config.stage = 1``, trained on ``batch.hq`` only):
  encoder E   conv stem + one (GroupNorm) ResBlock and a stride-2 conv per level -> latent grid z (D channels,
              S / 2^L);
  quantiser Q a learned codebook of N unit codes × D; each (l2-normalised) latent vector is replaced by its nearest
              code (straight-through gradient to E) and pulled towards it by the commitment loss β‖z − sg(e)‖²; the
              codebook is initialised from the first batch's latents (data-dependent init, so no code starts dead),
              then follows its assigned latents by EMA (VQ-VAE-2), with unused codes restarted on current latents;
  decoder G   conv + per level nearest ×2 up-sampling, conv, ResBlock -> RGB.
  objective   L1(G(Q(E(hq))), hq) + β · commitment.

**Stage 2 — code prediction from LQ** (``config.stage = 2``; E, Q and G are frozen, :meth:`CodeFormer.freeze_stage1`):
  an LQ encoder E_L (same architecture as E, initialised from E's stage-1 weights on the first stage-2 step) and a small
  pre-norm transformer over the latent tokens predict each token's code index (cross-entropy against the indices of
  Q(E(hq))), plus CodeFormer's latent loss ‖norm(E_L(lq)) − sg(Q(E(hq)))‖²; the predicted codes (argmax, codebook
  lookup) are decoded by the frozen G, with **controllable fidelity** w ∈ [0, 1]: at every decoder scale a small
  fusion (CFT-like) predicts a scale α and shift β from [E_L's skip feature, decoder feature] and adds w · (α ⊙ f + β)
  to the decoder feature f (w = 0: pure codebook output, highest "quality"; w = 1: most LQ detail kept). Training
  samples w ~ U(0, 1) per step so every w is meaningful at inference (``config.fidelity``, or
  :meth:`CodeFormer.set_fidelity`).
  objective   CE + feat_weight · latent + l1_weight · (L1(decoded, hq) + L1(output, hq)).

**Output and the identity start**: output = x + g · (decoded − x) with a learned blend gain g that starts at 0. An
untrained network, or one after stage 1 only, is therefore the identity; stage 2 raises g as far as the decoded image
beats the input. (A codebook decoder cannot itself start near the identity: it re-synthesises the face from codes.)

``forward`` is stage-2 inference: E_L -> transformer -> argmax -> codebook lookup -> G with fusion at w -> blend. Argmax
and the lookup export to ONNX as ArgMax and Gather, so the whole network is one feed-forward graph.

**Caveat (the data)**: fvr's training data is ~12k HQ frames of ~40 people. A codebook learned from that will largely
memorise those faces — decoded codes of an unseen person drift towards the training identities. CodeFormer's prior is
learned from 70k FFHQ faces; here the architecture is a taxonomy point (generative-assisted restoration) and a research
part, not a production restorer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from fvr.errors import ConfigError
from fvr.models.nets.blocks import conv, from_frames, to_frames
from fvr.models.nets.core import ArchSpec, TrainBatch

# The blend gain is stored divided by this: Adam moves a parameter by about lr per step whatever its gradient, and a
# gain that has to travel from 0 to ~1 would otherwise need ~1/lr steps (thousands at usual learning rates).
BLEND_RATE = 10.0


@dataclass(frozen=True)
class CodeFormerConfig:
    """Size and training stage of the codebook restorer.

    channels, mults: encoder/decoder widths channels·mults[i] at scale S / 2^i; the latent grid is S / 2^len(mults).
    code_dim, n_codes: D and N of the codebook.
    tf_dim, tf_depth, heads, mlp_ratio: the code-prediction transformer.
    fidelity: w ∈ [0, 1] used by forward (LQ features mixed into the decoder).
    stage: which objective ``training_loss`` runs (1: VQ autoencoder on HQ; 2: code prediction from LQ).
    beta: commitment weight. ema_decay: the codebook's EMA decay (stage 1).
    feat_weight, l1_weight: stage-2 latent and image loss weights.
    """

    channels: int = 16
    mults: tuple[int, ...] = (1, 2, 4)
    code_dim: int = 64
    n_codes: int = 256
    tf_dim: int = 128
    tf_depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    fidelity: float = 0.5
    stage: int = 1
    beta: float = 0.25
    ema_decay: float = 0.99
    feat_weight: float = 1.0
    l1_weight: float = 1.0


def centre(img: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]: zero-mean inputs for the encoders (the decoder maps back with :func:`uncentre`)."""
    return img * 2.0 - 1.0


def uncentre(img: torch.Tensor) -> torch.Tensor:
    return img * 0.5 + 0.5


# the layers small_init_ is used on: both have a weight and an optional bias
_Layer = TypeVar("_Layer", nn.Conv2d, nn.Linear)


def small_init_(layer: _Layer, scale: float = 0.1) -> _Layer:
    """Shrink a layer's initial weights and zero its bias: a branch that is added to something starts near zero but
    still passes gradients to the layers before it."""
    with torch.no_grad():
        layer.weight.mul_(scale)
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


# ----------------------------------------------------------------------------------------------- autoencoder


class NormResBlock(nn.Module):
    """VQGAN-style pre-activation ResBlock: GroupNorm-SiLU-conv twice, identity skip. (N, C, h, w) -> same.
    Normalisation keeps the autoencoder's activations (and so the latents the codebook chases) at a stable scale."""

    def __init__(self, ch: int):
        super().__init__()
        groups = math.gcd(ch, 8)
        self.body = nn.Sequential(nn.GroupNorm(groups, ch), nn.SiLU(), conv(ch, ch),
                                  nn.GroupNorm(groups, ch), nn.SiLU(), conv(ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Encoder(nn.Module):
    """(N, 3, S, S) in [0, 1] -> latent z (N, D, S/2^L, S/2^L) and the per-scale features [f_0 (S), …, f_{L−1}]
    (f_i: channels·mults[i] channels at S / 2^i), which stage 2 fuses into the decoder."""

    def __init__(self, config: CodeFormerConfig):
        super().__init__()
        widths = [config.channels * m for m in config.mults]
        self.stem = conv(3, widths[0])
        self.blocks = nn.ModuleList(NormResBlock(w) for w in widths)
        self.downs = nn.ModuleList(conv(w, widths[min(i + 1, len(widths) - 1)], 3, 2) for i, w in enumerate(widths))
        self.mid = NormResBlock(widths[-1])
        self.to_code = conv(widths[-1], config.code_dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.stem(centre(x))
        skips = []
        for block, down in zip(self.blocks, self.downs):
            h = block(h)
            skips.append(h)
            h = F.leaky_relu(down(h), 0.1)
        return self.to_code(self.mid(h)), skips


class Fusion(nn.Module):
    """CFT-like fidelity fusion at one decoder scale: f + w · (α ⊙ f + β), [α, β] = net([lq feature, f]).
    The last conv starts near zero, so fusion is a no-op until stage 2 trains it."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(conv(2 * ch, ch), nn.LeakyReLU(0.1), small_init_(conv(ch, 2 * ch)))

    def forward(self, f: torch.Tensor, lq_feat: torch.Tensor, w: float) -> torch.Tensor:
        alpha, beta = self.body(torch.cat([lq_feat, f], dim=1)).chunk(2, dim=1)
        return f + w * (alpha * f + beta)


class Decoder(nn.Module):
    """Codes (N, D, S/2^L, S/2^L) -> image (N, 3, S, S); with LQ skips and w > 0, fuses them at every scale.
    ``fuse`` holds the stage-2 fusion layers (trainable while the rest of the decoder is frozen)."""

    def __init__(self, config: CodeFormerConfig):
        super().__init__()
        widths = [config.channels * m for m in config.mults]
        self.from_code = conv(config.code_dim, widths[-1])
        self.mid = NormResBlock(widths[-1])
        levels = list(range(len(widths)))[::-1]  # coarse to fine
        ins = [widths[-1]] + [widths[i + 1] for i in levels[1:]]
        self.ups = nn.ModuleList(conv(cin, widths[i]) for cin, i in zip(ins, levels))
        self.blocks = nn.ModuleList(NormResBlock(widths[i]) for i in levels)
        self.fuse = nn.ModuleList(Fusion(widths[i]) for i in levels)
        self.out_norm = nn.GroupNorm(math.gcd(widths[0], 8), widths[0])
        self.to_rgb = conv(widths[0], 3)
        self.levels = levels

    def forward(self, zq: torch.Tensor, skips: list[torch.Tensor] | None = None, w: float = 0.0) -> torch.Tensor:
        h = self.mid(self.from_code(zq))
        for up, block, fuse, level in zip(self.ups, self.blocks, self.fuse, self.levels):
            h = block(F.leaky_relu(up(F.interpolate(h, scale_factor=2.0, mode="nearest")), 0.1))
            if skips is not None and w > 0.0:
                h = fuse(h, skips[level], w)
        return uncentre(self.to_rgb(F.silu(self.out_norm(h))))


class Quantizer(nn.Module):
    """Vector quantiser on the unit sphere with an EMA-updated codebook (N, D).

    Latents and codes are l2-normalised (as ViT-VQGAN): nearest code = highest cosine similarity, the latent scale
    cannot drift away from the codebook, and the commitment loss stays bounded. The codebook is not trained by a
    loss but follows the mean of the latents assigned to each code (exponential moving average, as VQ-VAE-2 /
    SoundStream); codes that stop being used are restarted at a random current latent. Encoder gradients pass
    straight through the quantisation; the encoder is pulled towards its codes by the commitment loss.
    """

    # buffers (register_buffer in __init__), declared so that they type as tensors rather than Module attributes
    codebook: torch.Tensor  # (N, D) float32 unit codes
    cluster_size: torch.Tensor  # (N,) float32 EMA of assignments per code
    embed_sum: torch.Tensor  # (N, D) float32 EMA of the sum of assigned latents
    initialised: torch.Tensor  # () float32, 0 or 1

    def __init__(self, n_codes: int, code_dim: int, decay: float = 0.99, dead_threshold: float = 0.1):
        super().__init__()
        self.decay, self.dead_threshold = decay, dead_threshold
        self.register_buffer("codebook", F.normalize(torch.randn(n_codes, code_dim), dim=1))
        self.register_buffer("cluster_size", torch.ones(n_codes))
        self.register_buffer("embed_sum", self.codebook.clone())
        # 1 once the codebook was initialised from data (saved with the weights, so a resumed run does not redo it)
        self.register_buffer("initialised", torch.zeros(()))

    @staticmethod
    def flatten(z: torch.Tensor) -> torch.Tensor:
        """(N, D, h, w) -> (N·h·w, D)."""
        return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D, h, w) latents -> (N, h, w) int64 indices of the nearest codes (highest cosine similarity)."""
        flat = F.normalize(self.flatten(z), dim=1)
        return (flat @ self.codebook.t()).argmax(dim=1).view(z.shape[0], z.shape[2], z.shape[3])

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """(N, h, w) indices -> (N, D, h, w) unit codes."""
        return F.embedding(idx, self.codebook).permute(0, 3, 1, 2)

    @torch.no_grad()
    def init_from(self, z: torch.Tensor) -> None:
        """Data-dependent init: codes = random (normalised) latents of this batch, jittered, so every code starts where
        the encoder's outputs are and none is dead from the start."""
        flat = F.normalize(self.flatten(z.detach()), dim=1)
        pick = torch.randint(0, flat.shape[0], (self.codebook.shape[0],), device=flat.device)
        self.codebook.copy_(F.normalize(flat[pick] + 0.01 * torch.randn_like(self.codebook), dim=1))
        self.embed_sum.copy_(self.codebook)
        self.cluster_size.fill_(1.0)
        self.initialised.fill_(1.0)

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        """Move every code towards the mean of its assigned unit latents flat (M, D); restart unused codes."""
        onehot = F.one_hot(idx, self.codebook.shape[0]).to(flat.dtype)  # (M, N)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1.0 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1.0 - self.decay)
        self.codebook.copy_(F.normalize(self.embed_sum, dim=1))
        dead = self.cluster_size < self.dead_threshold
        if dead.any():
            pick = torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)
            self.codebook[dead] = flat[pick]
            self.embed_sum[dead] = flat[pick]
            self.cluster_size[dead] = 1.0

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (N, D, h, w) -> (straight-through unit codes, indices (N, h, w), commitment loss); EMA step in training."""
        z = F.normalize(z, dim=1)
        idx = self.nearest(z)
        zq = self.lookup(idx)
        commitment = F.mse_loss(z, zq)  # zq is a buffer: no gradient to the codebook, only to the encoder
        if self.training:
            self.ema_update(self.flatten(z.detach()), idx.reshape(-1))
        return z + (zq - z).detach(), idx, commitment


# ----------------------------------------------------------------------------------------------- transformer


def grid_encoding(h: int, w: int, dim: int, device: torch.device) -> torch.Tensor:
    """(h·w, dim) fixed 2-D sinusoidal positions: half the channels for the row, half for the column (dim % 4 == 0)."""
    quarter = dim // 4
    freqs = torch.exp(torch.arange(quarter, dtype=torch.float32, device=device) * (-math.log(10000.0) / quarter))
    rows = torch.arange(h, dtype=torch.float32, device=device)[:, None] * freqs[None, :]
    cols = torch.arange(w, dtype=torch.float32, device=device)[:, None] * freqs[None, :]
    rows = torch.cat([rows.sin(), rows.cos()], 1)[:, None, :].expand(h, w, -1)
    cols = torch.cat([cols.sin(), cols.cos()], 1)[None, :, :].expand(h, w, -1)
    return torch.cat([rows, cols], dim=-1).reshape(h * w, dim)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + MLP over tokens (N, L, dim) -> (N, L, dim)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, dim)
        x = x + self.proj(att)
        return x + self.mlp(self.norm2(x))


class CodePredictor(nn.Module):
    """LQ latents (N, D, h, w) -> code logits (N, h·w, n_codes): project, add 2-D positions, transformer, classify."""

    def __init__(self, config: CodeFormerConfig):
        super().__init__()
        self.proj_in = nn.Linear(config.code_dim, config.tf_dim)
        self.blocks = nn.ModuleList(TransformerBlock(config.tf_dim, config.heads, config.mlp_ratio)
                                    for _ in range(config.tf_depth))
        self.norm = nn.LayerNorm(config.tf_dim)
        self.head = nn.Linear(config.tf_dim, config.n_codes)
        self.dim = config.tf_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h, w = z.shape[2:]
        tokens = self.proj_in(z.flatten(2).transpose(1, 2)) + grid_encoding(h, w, self.dim, z.device)[None]
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens))


# ----------------------------------------------------------------------------------------------- network


class CodeFormer(nn.Module):
    """The two-stage codebook restorer (see the module docstring). forward = stage-2 inference, per frame."""

    stage2_started: torch.Tensor  # () float32 buffer, 0 or 1 (register_buffer in __init__)

    def __init__(self, config: CodeFormerConfig):
        super().__init__()
        self.config = config
        self.fidelity = float(config.fidelity)
        self.encoder = Encoder(config)
        self.quantizer = Quantizer(config.n_codes, config.code_dim, config.ema_decay)
        self.decoder = Decoder(config)
        self.lq_encoder = Encoder(config)
        self.predictor = CodePredictor(config)
        # output = x + blend · (decoded − x), blend = BLEND_RATE · blend_raw starts at 0: identity until stage 2
        self.blend_raw = nn.Parameter(torch.zeros(1))
        # 1 once lq_encoder was initialised from the stage-1 encoder (saved with the weights)
        self.register_buffer("stage2_started", torch.zeros(()))

    # -- stages

    def stage1_parameters(self) -> list[nn.Parameter]:
        """The stage-1 VQ autoencoder's parameters: HQ encoder and decoder (its stage-2 fusion layers excluded). The
        codebook is a buffer that only stage 1's EMA moves (stage 2 only looks codes up)."""
        params = list(self.encoder.parameters())
        return params + [p for name, p in self.decoder.named_parameters() if not name.startswith("fuse.")]

    def freeze_stage1(self) -> None:
        """Stop gradients to the stage-1 autoencoder (stage 2 trains E_L, the predictor, the fusion and the blend)."""
        for p in self.stage1_parameters():
            p.requires_grad_(False)
            p.grad = None  # so that no optimiser step (momentum on a zeroed gradient) moves them any more

    @torch.no_grad()
    def start_stage2(self) -> None:
        """Once: initialise the LQ encoder from the trained HQ encoder; every call: freeze the stage-1 parts.
        Parameters are copied in place, so an optimiser built before this call keeps tracking them."""
        if float(self.stage2_started) == 0.0:
            for dst, src in zip(self.lq_encoder.parameters(), self.encoder.parameters()):
                dst.copy_(src)
            self.stage2_started.fill_(1.0)
        self.freeze_stage1()

    @property
    def blend(self) -> torch.Tensor:
        return BLEND_RATE * self.blend_raw

    def set_fidelity(self, w: float) -> None:
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"fidelity must be in [0, 1], got {w}")
        self.fidelity = float(w)

    # -- paths

    def autoencode(self, hq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage 1 on frames (N, 3, S, S): (reconstruction, indices, commitment loss)."""
        z, _ = self.encoder(hq)
        if self.training and float(self.quantizer.initialised) == 0.0:
            self.quantizer.init_from(z)
        zq, idx, commitment = self.quantizer(z)
        return self.decoder(zq), idx, commitment

    def predict(self, lq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Frames (N, 3, S, S) -> (code logits (N, h·w, n_codes), LQ latent (N, D, h, w), LQ skip features)."""
        z, skips = self.lq_encoder(lq)
        return self.predictor(z), z, skips

    def decode_logits(self, logits: torch.Tensor, grid: tuple[int, int], skips: list[torch.Tensor],
                      w: float) -> torch.Tensor:
        """Most likely codes -> codebook lookup -> decoder with fidelity fusion at w. -> (N, 3, S, S)."""
        idx = logits.argmax(dim=-1).view(logits.shape[0], *grid)
        return self.decoder(self.quantizer.lookup(idx), skips, w)

    def restore_frames(self, lq: torch.Tensor, w: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (N, 3, S, S) -> (output = lq + blend · (decoded − lq), decoded)."""
        logits, z, skips = self.predict(lq)
        decoded = self.decode_logits(logits, (z.shape[2], z.shape[3]), skips, w)
        return lq + self.blend * (decoded - lq), decoded

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        frames, b, t = to_frames(x)
        out, _ = self.restore_frames(frames, self.fidelity)
        return from_frames(out, b, t)


# ----------------------------------------------------------------------------------------------- training


def stage1_loss(net: CodeFormer, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
    """VQ autoencoder on HQ frames: L1 reconstruction + β · commitment (the codebook itself follows by EMA)."""
    hq, _, _ = to_frames(batch.hq)
    recon, idx, commitment = net.autoencode(hq)
    l1 = (recon - hq).abs().mean()
    loss = l1 + net.config.beta * commitment
    return loss, {"l1": float(l1.detach()), "commitment": float(commitment.detach()),
                  "codes_used": float(idx.unique().numel())}


def stage2_loss(net: CodeFormer, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
    """Code prediction from LQ with the HQ codes as targets (stage-1 parts frozen): cross-entropy + latent loss +
    L1 of the decoded and of the blended output, at a fidelity w ~ U(0, 1) drawn per step."""
    net.start_stage2()
    lq, _, _ = to_frames(batch.lq)
    hq, _, _ = to_frames(batch.hq)
    with torch.no_grad():
        z_hq, _ = net.encoder(hq)
        target = net.quantizer.nearest(z_hq)
        zq_hq = net.quantizer.lookup(target)
    logits, z_lq, skips = net.predict(lq)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
    feat = F.mse_loss(F.normalize(z_lq, dim=1), zq_hq)  # on the unit sphere, where the codes live
    w = float(torch.rand(()))
    decoded = net.decode_logits(logits, (z_lq.shape[2], z_lq.shape[3]), skips, w)
    out = lq + net.blend * (decoded - lq)
    l1_decoded = (decoded - hq).abs().mean()
    l1_out = (out - hq).abs().mean()
    cfg = net.config
    loss = ce + cfg.feat_weight * feat + cfg.l1_weight * (l1_decoded + l1_out)
    acc = (logits.detach().argmax(-1) == target.reshape(target.shape[0], -1)).float().mean()
    return loss, {"ce": float(ce.detach()), "feat": float(feat.detach()), "l1_decoded": float(l1_decoded.detach()),
                  "l1_out": float(l1_out.detach()), "code_acc": float(acc), "blend": float(net.blend.detach()),
                  "w": w}


def codeformer_training_loss(net: CodeFormer, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
    """Dispatch on ``net.config.stage`` (1: VQ autoencoder on batch.hq; 2: code prediction from batch.lq)."""
    if net.config.stage == 1:
        return stage1_loss(net, batch)
    if net.config.stage == 2:
        return stage2_loss(net, batch)
    raise ConfigError(f"codeformer: stage must be 1 or 2, got {net.config.stage}")


def build_codeformer(config: CodeFormerConfig) -> CodeFormer:
    """The network for ``config``; one-line :class:`ConfigError` for options it cannot honour."""
    if config.stage not in (1, 2):
        raise ConfigError(f"codeformer: stage must be 1 or 2, got {config.stage}")
    if not 0.0 <= config.fidelity <= 1.0:
        raise ConfigError(f"codeformer: fidelity must be in [0, 1], got {config.fidelity}")
    if config.tf_dim % 4 or config.tf_dim % config.heads:
        raise ConfigError(f"codeformer: tf_dim must be a multiple of 4 (2-D positions) and of heads, got "
                          f"tf_dim={config.tf_dim}, heads={config.heads}")
    if not config.mults or not 0.0 < config.ema_decay < 1.0:
        raise ConfigError("codeformer: mults must name at least one level and ema_decay be in (0, 1)")
    return CodeFormer(config)


PRESETS = {
    # measured with FlopCounterMode (forward = stage-2 inference; convs and matmuls), per frame:
    # fast: latent /8 (16×16 tokens at 128²), ~0.79 GFLOP, 0.59 M parameters;
    # quality: latent /16 (16×16 tokens at 256²), 1024 codes × 256 as CodeFormer, ~53 GFLOP, 18.5 M parameters.
    "fast": (128, CodeFormerConfig(channels=8, mults=(1, 2, 4), code_dim=64, n_codes=512, tf_dim=128, tf_depth=2,
                                   heads=4)),
    "quality": (256, CodeFormerConfig(channels=32, mults=(1, 2, 4, 8), code_dim=256, n_codes=1024, tf_dim=256,
                                      tf_depth=6, heads=8)),
    # tiny (tests): latent /4 (8×8 tokens at 32²); a faster EMA (0.9) because test runs are 50 steps long
    "tiny": (32, CodeFormerConfig(channels=16, mults=(1, 2), code_dim=16, n_codes=64, tf_dim=32, tf_depth=1,
                                  heads=2, ema_decay=0.9)),
}

CODEFORMER = ArchSpec(
    name="codeformer", kind="transformer", temporal="per-frame",
    description="generative codebook prior (CodeFormer-style): VQ autoencoder on HQ faces, transformer code "
                "prediction from LQ, frozen decoder with controllable fidelity fusion w",
    config=CodeFormerConfig, build=build_codeformer, presets=PRESETS,
    tags=("generative-assisted", "codebook", "vq"), feed_forward=True, training_loss=codeformer_training_loss,
)

ARCHS = (CODEFORMER,)
