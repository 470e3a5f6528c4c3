"""The training loop: ArchSpec + preset -> network; AdamW with warm-up + cosine LR, gradient clipping, EMA of the
weights, reconstruction losses (or the architecture's own ``training_loss``), optional GAN; checkpoints that
resume exactly, validation with fvr.metrics, ``log.jsonl`` + ``curves.png``, and the final EMA weights as an fvr
weight file (``out/model.safetensors``, what ``fvr restore --model FILE`` loads).

Run folder (``run.out``)::

    checkpoints/step-XXXXXX.safetensors, checkpoints/latest   (see fvr.train.checkpoint)
    log.jsonl          one JSON object per line: step, lr, losses, seconds; validation rows: val/* metrics
    curves.png         losses and validation metrics vs step
    model.safetensors  EMA weights (save_weights), with the architecture, config and crop size in its metadata
    train_config.toml  the config this run used (absolute paths, CLI overrides applied)
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from fvr.errors import ConfigError, OutputError, reason
from fvr.models.registry import resolve_device
from fvr.train.checkpoint import (
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    write_latest,
)
from fvr.train.config import OptimSection, TrainConfig, config_to_toml
from fvr.train.data import (
    ClipSampler,
    Sample,
    check_scales,
    load_data,
    resolve_codec,
    validation_samples,
)

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int, Mapping[str, float]], None]
"""progress(stage, done, total, info): stage "cache <clip>" while caching, "train" per step (info: loss, lr)."""

PSNR_CAP = 100.0  # identical crops have infinite PSNR; logs and means need a number


@dataclass
class TrainResult:
    out_dir: Path
    weights: Path
    steps: int
    start_step: int
    losses: dict[str, float] = field(default_factory=dict)
    val: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    device: str = "cpu"
    params: int = 0


# ----------------------------------------------------------------------------------------------- setup


def lr_at(step: int, optim: OptimSection) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from lr to lr * min_lr_ratio at ``steps``."""
    if optim.warmup and step < optim.warmup:
        return optim.lr * (step + 1) / optim.warmup
    if optim.schedule == "constant":
        return optim.lr
    progress = min(1.0, (step - optim.warmup) / max(1, optim.steps - optim.warmup))
    floor = optim.lr * optim.min_lr_ratio
    return floor + (optim.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def ema_decay(step: int, decay: float) -> float:
    """EMA decay ramp (1 + t) / (10 + t), capped at ``decay``: early averages are not dominated by the random
    initialisation."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, net: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), net.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for eb, b in zip(ema.buffers(), net.buffers()):
        eb.copy_(b)


def init_network(arch, path: str, options: Mapping[str, Any]) -> tuple[Any, int, nn.Module]:
    """(config, crop size, network) from a weights file of ``arch``, its config updated by ``options``."""
    from fvr.models.nets.core import load_weights, read_metadata

    found = read_metadata(path).get("arch")
    if found != arch.name:
        raise ConfigError(f"model.init: {path} holds weights of {found!r}, not of {arch.name!r}")
    loaded = load_weights(path, {arch.name: arch}, options=options)
    return loaded.config, loaded.crop_size, loaded.net


def _bind_base(net: nn.Module) -> None:
    """A network trained around a frozen base model (the learned stabiliser) builds that base with the registry."""
    from fvr.models import builtin_registry
    from fvr.models.nets.stabiliser import StabiliserNet

    if isinstance(net, StabiliserNet):
        net.set_base_resolver(builtin_registry().base_restorer)


def build_network(arch, preset: str, options: Mapping[str, Any]) -> tuple[Any, int, nn.Module]:
    """(config, preset crop size, network) for an architecture preset with option overrides."""
    from fvr.models.nets.core import config_from_dict, config_to_dict

    size, default = arch.preset(preset)
    cfg = config_from_dict(arch.config, {**config_to_dict(default), **dict(options)}) if options else default
    return cfg, size, arch.build(cfg)


def load_teacher(teacher: str, crop: int, device: torch.device) -> nn.Module:
    """The frozen network of ``model.teacher`` (a weights file or a shipped model's name), checked to take
    ``crop``-sized aligned crops; (B, T, 3, S, S) in, (B, T, 3, S, S) out like any fvr face network."""
    from fvr.models.learned import shipped_weights
    from fvr.models.nets import architectures
    from fvr.models.nets.core import load_weights
    from fvr.train.config import is_weights_file

    path = Path(teacher) if is_weights_file(teacher) else shipped_weights(teacher)
    if path is None:
        raise ConfigError(f"model.teacher: {teacher!r} is neither a .safetensors file nor a model shipped with fvr")
    loaded = load_weights(path, architectures(), device=str(device))
    if loaded.arch.uses_prior or loaded.arch.frame_model or loaded.arch.training_loss is not None:
        raise ConfigError(f"model.teacher: {teacher} ({loaded.arch.name}) is not a plain face network")
    scale = int(getattr(loaded.config, "scale", 1))
    if loaded.crop_size != crop and (loaded.arch.pretrained is None or crop % scale):
        raise ConfigError(f"model.teacher: {teacher} takes {loaded.crop_size}² crops, the student {crop}²")
    return loaded.net.eval().requires_grad_(False)


def resolve_crop_size(config: TrainConfig, archs: Mapping[str, Any] | None = None) -> int:
    """data.crop_size, or the crop size of the architecture's preset when it is 0."""
    if config.data.crop_size:
        return config.data.crop_size
    if archs is None:
        from fvr.models import nets

        archs = nets.architectures()
    if config.model.arch not in archs:
        raise ConfigError(f"model.arch: unknown architecture {config.model.arch!r}; known: "
                          f"{', '.join(sorted(archs)) or 'none'}")
    return archs[config.model.arch].preset(config.model.preset)[0]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check_combination(config: TrainConfig, arch, crop: int) -> None:
    frames = config.data.mode == "frames"
    if frames and arch.uses_prior:
        raise ConfigError(f"{arch.name} uses facial priors, which need face crops: set data.mode = \"faces\"")
    if frames and config.loss.component > 0:
        raise ConfigError("loss.component needs face landmarks: not available in data.mode = \"frames\"")
    if config.loss.stlpips > 0 and crop < 32:
        raise ConfigError(f"loss.stlpips needs crops of at least 32 px, got {crop}")
    if arch.training_loss is not None and config.loss.gan > 0:
        raise ConfigError(f"{arch.name} trains with its own objective; loss.gan must be 0")
    if config.loss.temporal > 0 and config.data.clip_len < 2:
        raise ConfigError("loss.temporal needs data.clip_len >= 2")


# ----------------------------------------------------------------------------------------------- validation


class Validator:
    """Metrics on fixed validation windows: PSNR, SSIM, ST-LPIPS (when its weights are installed) and flicker
    (T > 1), on uint8 crops, plus the PSNR of the degraded input for reference."""

    def __init__(self, samples: list[Sample], batch_size: int, uses_prior: bool, stlpips_weights: str = ""):
        self.samples = samples
        self.batch_size = max(1, batch_size)
        self.uses_prior = uses_prior
        self._stlpips: Any = None
        self._stlpips_weights = stlpips_weights or None
        self.lq_psnr = self._mean_psnr([s.lq for s in samples], [s.hq for s in samples]) if samples else math.nan

    @staticmethod
    def _u8(x: np.ndarray) -> np.ndarray:
        return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)  # (T,S,S,3)

    def _mean_psnr(self, outs: list[np.ndarray], gts: list[np.ndarray]) -> float:
        from fvr.metrics import psnr

        vals = [min(PSNR_CAP, psnr(a, b)) for o, g in zip(outs, gts) for a, b in zip(self._u8(o), self._u8(g))]
        return float(np.mean(vals))

    def _stlpips_metric(self):
        if self._stlpips is None:
            try:
                from fvr.metrics import STLPIPS

                metric = STLPIPS(self._stlpips_weights)
                _ = metric.net  # load now: a missing weight file shows here
                self._stlpips = metric
            except Exception as exc:  # the metric is optional: skip it, say why once
                log.warning("validation without ST-LPIPS: %s", str(exc).splitlines()[0] if str(exc) else exc)
                self._stlpips = False
        return self._stlpips or None

    @torch.no_grad()
    def __call__(self, net: nn.Module, device: torch.device) -> dict[str, float]:
        from fvr.metrics import flicker, psnr, ssim
        from fvr.models.nets.prior import landmark_prior

        was_training = net.training
        net.eval()
        outs: list[np.ndarray] = []
        for i in range(0, len(self.samples), self.batch_size):
            chunk = self.samples[i:i + self.batch_size]
            lq = torch.from_numpy(np.stack([s.lq for s in chunk])).to(device)
            prior = None
            if self.uses_prior:
                lm = torch.from_numpy(np.stack([s.landmarks for s in chunk])).to(device)
                prior = landmark_prior(lm, lq.shape[-1])
            outs.extend(net(lq, prior).float().clamp(0, 1).cpu().numpy())
        net.train(was_training)
        p, s, f = [], [], []
        out_frames, gt_frames = [], []
        for out, sample in zip(outs, self.samples):
            o8, g8 = self._u8(out), self._u8(sample.hq)
            p += [min(PSNR_CAP, psnr(a, b)) for a, b in zip(o8, g8)]
            s += [ssim(a, b) for a, b in zip(o8, g8)]
            f += [flicker(o8[t - 1], o8[t], g8[t - 1], g8[t]) for t in range(1, len(o8))]
            out_frames.append(o8)
            gt_frames.append(g8)
        metrics = {"val/psnr": float(np.mean(p)), "val/ssim": float(np.mean(s)), "val/lq_psnr": self.lq_psnr}
        if f:
            metrics["val/flicker"] = float(np.mean(f))
        metric = self._stlpips_metric() if min(outs[0].shape[-2:]) >= 32 else None
        if metric is not None:
            metrics["val/stlpips"] = float(np.mean(metric.batch(np.concatenate(out_frames),
                                                                np.concatenate(gt_frames))))
        return metrics


# ----------------------------------------------------------------------------------------------- logging


class RunLog:
    """``log.jsonl`` (append, one object per line) and ``curves.png``."""

    def __init__(self, out_dir: Path, resume_step: int | None):
        self.path = out_dir / "log.jsonl"
        self.png = out_dir / "curves.png"
        if resume_step is None:
            self.path.write_text("", encoding="utf-8")
        elif self.path.is_file():  # drop rows a killed run wrote after its last checkpoint
            rows = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            self.path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")

    def write(self, row: Mapping[str, Any]) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {reason(exc)}") from None

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.path.read_text(encoding="utf-8").splitlines() if x.strip()]

    def plot(self) -> None:
        plot_curves(self.rows(), self.png)


def plot_curves(rows: list[dict[str, Any]], png: Path) -> None:
    """Loss terms (log scale) and each validation metric vs step, one panel each (matplotlib, Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    loss_keys = sorted({k for r in rows for k in r if k == "loss" or k.startswith("loss/")})
    # the degraded input's PSNR is drawn as a reference line in the PSNR panel, not as a panel of its own
    val_keys = sorted({k for r in rows for k in r if k.startswith("val/") and k != "val/lq_psnr"})
    panels = 1 + len(val_keys)
    fig = Figure(figsize=(4.2 * min(panels, 3), 3.2 * math.ceil(panels / 3)), dpi=100)
    FigureCanvasAgg(fig)
    cols = min(panels, 3)
    ax = fig.add_subplot(math.ceil(panels / 3), cols, 1)
    for k in loss_keys:
        pts = [(r["step"], r[k]) for r in rows if k in r and r[k] is not None and r[k] > 0]
        if pts:
            ax.plot(*zip(*pts), label=k, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("training losses")
    if loss_keys:
        ax.legend(fontsize=7)
    for i, k in enumerate(val_keys, start=2):
        ax = fig.add_subplot(math.ceil(panels / 3), cols, i)
        pts = [(r["step"], r[k]) for r in rows if k in r and r[k] is not None and math.isfinite(r[k])]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, lw=1, label=k)
        ref = [r["val/lq_psnr"] for r in rows if k == "val/psnr" and math.isfinite(r.get("val/lq_psnr", math.nan))]
        if ref:
            ax.axhline(ref[-1], color="grey", ls="--", lw=1, label="degraded input")
            ax.legend(fontsize=7)
        ax.set_title(k)
        ax.set_xlabel("step")
    fig.tight_layout()
    tmp = png.with_name(f".{png.name}.fvr-tmp")
    fig.savefig(tmp, format="png")
    tmp.replace(png)


# ----------------------------------------------------------------------------------------------- the loop


class Trainer:
    """State of one run; :func:`train` drives it."""

    def __init__(self, config: TrainConfig, archs: Mapping[str, Any], progress: Progress | None):
        self.config = config
        self.progress = progress
        if config.model.arch not in archs:
            raise ConfigError(f"model.arch: unknown architecture {config.model.arch!r}; known: "
                              f"{', '.join(sorted(archs)) or 'none'}")
        self.arch = archs[config.model.arch]
        self.pretrained_source = ""
        if config.model.init:
            self.net_config, preset_size, self.net = init_network(self.arch, config.model.init, config.model.options)
        else:
            self.net_config, preset_size, self.net = build_network(self.arch, config.model.preset,
                                                                   config.model.options)
            if config.model.pretrained:
                if self.arch.pretrained is None:
                    raise ConfigError(f"model.pretrained: architecture {self.arch.name!r} has no pretrained weights "
                                      "(architectures built on one: "
                                      f"{', '.join(sorted(n for n, a in archs.items() if a.pretrained)) or 'none'})")
                self.pretrained_source = self.arch.pretrained(self.net, self.net_config)
        _bind_base(self.net)
        self.crop = config.data.crop_size or preset_size
        _check_combination(config, self.arch, self.crop)
        check_scales(config, self.crop)
        self.device = torch.device(resolve_device(config.run.device, "run.device"))
        self.out = Path(config.run.out)
        self.ckpt_dir = self.out / "checkpoints"

    def _cache_progress(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(f"cache {stage}", done, total, {})

    def setup(self, resume: bool) -> None:
        c = self.config
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create run folder {self.out}: {reason(exc)}") from None
        self.resume_from = latest_checkpoint(self.ckpt_dir) if resume else None
        if not resume and latest_checkpoint(self.ckpt_dir) is not None:
            raise ConfigError(f"{self.out} already holds a training run: pass --resume to continue it, or set "
                              "another run.out")
        if resume and self.resume_from is None:
            log.warning("nothing to resume in %s: starting from step 0", self.ckpt_dir)
        data = load_data(c, self.crop, self._cache_progress)
        use_codec = resolve_codec(c)
        self.codec = "libx264" if use_codec else "jpeg-standin"
        self.sampler = ClipSampler(data.train, c, self.crop, uses_prior=self.arch.uses_prior, use_codec=use_codec,
                                   num_workers=c.run.num_workers)
        val = validation_samples(self.sampler, data.val, c.data.val_windows)
        if not val:
            log.warning("no validation clips (data.val_clips): training without validation")
        self.validator = Validator(val, c.optim.batch_size, self.arch.uses_prior, c.loss.stlpips_weights)
        self.data_names = data.names

        self.net.to(self.device).train()
        self.ema = copy.deepcopy(self.net).requires_grad_(False) if c.optim.ema > 0 else None
        o = c.optim
        self.trained_params = [p for p in self.net.parameters() if p.requires_grad]  # a frozen head has none
        betas = cast(tuple[float, float], tuple(o.betas))  # validate() checked that there are two
        self.opt = torch.optim.AdamW(self.trained_params, lr=o.lr, betas=betas, weight_decay=o.weight_decay)
        from fvr.train.losses import PatchDiscriminator, ReconstructionLoss

        self.rec = ReconstructionLoss(c.loss).to(self.device) if self.arch.training_loss is None else None
        self.teacher = load_teacher(c.model.teacher, self.crop, self.device) if c.model.teacher else None
        self.disc = self.opt_d = None
        if c.loss.gan > 0:
            self.disc = PatchDiscriminator(c.loss.disc_channels).to(self.device).train()
            self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=o.disc_lr, betas=(0.5, 0.99))
        self.step = 0
        self.seconds = 0.0
        self.acc: dict[str, float] = {}
        self.acc_n = 0
        self.last_val: dict[str, float] = {}
        if self.resume_from is not None:
            state = load_checkpoint(self.resume_from, modules=self._modules(), optimizers=self._optimizers())
            self.step, self.seconds = int(state["step"]), float(state["seconds"])
            self.acc, self.acc_n = dict(state.get("acc", {})), int(state.get("acc_n", 0))
            self.last_val = dict(state.get("val", {}))
            log.info("resumed %s at step %d", self.resume_from, self.step)
        self.start_step = self.step
        self.runlog = RunLog(self.out, self.step if self.resume_from is not None else None)

    def _modules(self) -> dict[str, nn.Module]:
        mods = {"model": self.net}
        if self.ema is not None:
            mods["ema"] = self.ema
        if self.disc is not None:
            mods["disc"] = self.disc
        return mods

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts: dict[str, torch.optim.Optimizer] = {"optim": self.opt}
        if self.opt_d is not None:
            opts["disc_optim"] = self.opt_d
        return opts

    # -- one step ------------------------------------------------------------------------------------------------

    def _to_device(self, batch):
        from fvr.models.nets.core import TrainBatch

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(self.device, non_blocking=True)

        return TrainBatch(move(batch.lq), move(batch.hq), move(batch.landmarks), move(batch.prior), batch.step)

    def train_step(self) -> dict[str, float]:
        from fvr.train.losses import charbonnier, disc_loss, frames_of, gen_loss, hq_flows

        c = self.config
        cpu_batch = self.sampler.batch(self.step)
        flows = hq_flows(cpu_batch.hq) if self.rec is not None and self.rec.needs_flows else None
        batch = self._to_device(cpu_batch)
        lr = lr_at(self.step, c.optim)
        for group in self.opt.param_groups:
            group["lr"] = lr
        logs: dict[str, float] = {}
        if self.arch.training_loss is not None:
            loss, own = self.arch.training_loss(self.net, batch)
            logs.update({f"loss/{k}": float(v) for k, v in own.items()})
            pred = None
        else:
            if self.rec is None:  # built whenever the architecture has no objective of its own
                raise TypeError("'NoneType' object is not callable: no reconstruction loss")
            pred = self.net(batch.lq, batch.prior)
            loss, terms = self.rec(pred, batch.hq, batch.landmarks, flows)
            if self.teacher is not None:
                with torch.no_grad():
                    taught = self.teacher(batch.lq, None).clamp(0.0, 1.0)
                terms["distill"] = c.loss.distill * charbonnier(pred, taught, c.loss.charbonnier_eps)
                loss = loss + terms["distill"]
            logs.update({f"loss/{k}": float(v.detach()) for k, v in terms.items()})
        # the discriminator and its optimiser from loss.gan_start on (None: no GAN loss, or not yet)
        disc, opt_d = (self.disc, self.opt_d) if self.step >= c.loss.gan_start else (None, None)
        if disc is not None:
            if pred is None or opt_d is None:  # _check_combination refuses loss.gan with an own objective
                raise ConfigError(f"{self.arch.name} trains with its own objective; loss.gan must be 0")
            disc.requires_grad_(False)  # the generator's step must not touch the discriminator
            g = c.loss.gan * gen_loss(disc(frames_of(pred)), c.loss.gan_kind)
            disc.requires_grad_(True)
            loss = loss + g
            logs["loss/gan"] = float(g.detach())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {float(loss)} at step {self.step} (lower optim.lr?)")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if c.optim.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.trained_params, c.optim.grad_clip)
            logs["grad_norm"] = float(norm)
        self.opt.step()
        if disc is not None and pred is not None and opt_d is not None:  # the same as above: checked there
            d = disc_loss(disc(frames_of(batch.hq)), disc(frames_of(pred.detach())), c.loss.gan_kind)
            opt_d.zero_grad(set_to_none=True)
            d.backward()
            opt_d.step()
            logs["disc"] = float(d.detach())
        if self.ema is not None:
            ema_update(self.ema, self.net, ema_decay(self.step, c.optim.ema))
        logs["loss"] = float(loss.detach())
        logs["lr"] = lr
        self.step += 1
        return logs

    # -- periodic work -------------------------------------------------------------------------------------------

    def _eval_net(self) -> nn.Module:
        return self.ema if self.ema is not None else self.net

    def validate(self) -> None:
        if not self.validator.samples:
            return
        self.last_val = self.validator(self._eval_net(), self.device)
        self.runlog.write({"step": self.step, **self.last_val, "seconds": round(self.seconds, 3)})
        self.runlog.plot()

    def checkpoint(self) -> Path:
        path = self.ckpt_dir / checkpoint_name(self.step)
        state = {"step": self.step, "seconds": self.seconds, "acc": self.acc, "acc_n": self.acc_n,
                 "val": self.last_val, "lr_schedule": {"kind": self.config.optim.schedule,
                                                       "lr": self.config.optim.lr, "warmup": self.config.optim.warmup,
                                                       "steps": self.config.optim.steps},
                 "sampler": {"seed": self.config.run.seed, "next_step": self.step},
                 "arch": self.arch.name, "preset": self.config.model.preset, "crop_size": self.crop,
                 "net_config": asdict(self.net_config), "config_toml": config_to_toml(self.config)}
        save_checkpoint(path, modules=self._modules(), optimizers=self._optimizers(), state=state)
        write_latest(self.ckpt_dir, path)
        prune_checkpoints(self.ckpt_dir, self.config.run.keep_checkpoints)
        return path

    def _log_step(self, logs: dict[str, float], t0: float, steps_since: int) -> None:
        for k, v in logs.items():
            self.acc[k] = self.acc.get(k, 0.0) + v
        self.acc_n += 1
        every = self.config.run.log_every
        if every and (self.step % every == 0 or self.step == self.config.optim.steps):
            row = {"step": self.step, **{k: v / self.acc_n for k, v in self.acc.items()}, "lr": logs["lr"],
                   "seconds": round(self.seconds, 3), "it_s": round(steps_since / max(time.perf_counter() - t0,
                                                                                      1e-9), 3)}
            self.runlog.write(row)
            self.acc, self.acc_n = {}, 0

    def run(self, stop_after: int | None) -> TrainResult:
        c = self.config
        total = c.optim.steps
        end = min(total, stop_after) if stop_after is not None else total
        if self.step == 0:
            self.runlog.write({"step": 0, "event": "start", "arch": self.arch.name, "preset": c.model.preset,
                               "crop_size": self.crop, "device": str(self.device), "params": self.params,
                               "train_clips": len(self.sampler.clips), "val_windows": len(self.validator.samples),
                               "degrade_codec": self.codec})
        t0, since = time.perf_counter(), 0
        last_ckpt = None
        while self.step < end:
            ts = time.perf_counter()
            logs = self.train_step()
            self.seconds += time.perf_counter() - ts
            since += 1
            self._log_step(logs, t0, since)
            if self.progress is not None:
                self.progress("train", self.step, total, {"loss": logs["loss"], "lr": logs["lr"]})
            if c.run.val_every and self.step % c.run.val_every == 0 and self.step < end:
                self.validate()
            if c.run.ckpt_every and self.step % c.run.ckpt_every == 0 and self.step < end:
                last_ckpt = self.checkpoint()
        self.validate()
        if last_ckpt is None or last_ckpt.name != checkpoint_name(self.step):
            self.checkpoint()
        weights = self.export()
        self.runlog.plot()
        loss_rows = [r for r in self.runlog.rows() if "loss" in r]
        final = {k: v for k, v in (loss_rows[-1] if loss_rows else {}).items() if k.startswith("loss")}
        return TrainResult(self.out, weights, self.step, self.start_step, final, dict(self.last_val),
                           self.seconds, str(self.device), self.params)

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def export(self) -> Path:
        from fvr.models.nets.core import save_weights

        c = self.config
        extra = {"trained_steps": self.step, "pretrained": self.pretrained_source, "teacher": c.model.teacher,
                 "train_seconds": round(self.seconds, 1),
                 "permissive_only": c.data.permissive_only, "train_clips": [Path(n).name for n in self.data_names],
                 "val": self.last_val, "weights": "ema" if self.ema is not None else "raw",
                 "degrade": dict(c.degrade.presets), "degrade_codec": self.codec,
                 "degrade_scales": dict(c.degrade.scales) or (
                     {str(c.degrade.overrides["scale"]): 1.0} if "scale" in c.degrade.overrides else {})}
        path = save_weights(self.out / "model.safetensors", self.arch, self.net_config, self._eval_net(), self.crop,
                            c.model.preset, extra=extra)
        (self.out / "train_config.toml").write_text(config_to_toml(c), encoding="utf-8")
        return path

    def close(self) -> None:
        sampler = getattr(self, "sampler", None)
        if sampler is not None:
            sampler.close()


def train(config: TrainConfig, *, archs: Mapping[str, Any] | None = None, progress: Progress | None = None,
          resume: bool = False, stop_after: int | None = None) -> TrainResult:
    """Train ``config.model.arch`` as the config says; returns where everything was written.

    archs: name -> ArchSpec (default: :func:`fvr.models.nets.architectures`). resume: continue from
    ``run.out/checkpoints/latest`` exactly (same weights as an uninterrupted run). stop_after: stop once this many
    steps are done (checkpoint + export as at the end; the LR schedule still spans ``optim.steps``), as if the run
    were interrupted there.
    """
    if archs is None:
        from fvr.models import nets

        archs = nets.architectures()
    seed_everything(config.run.seed)
    trainer = Trainer(config, archs, progress)
    try:
        trainer.setup(resume)
        return trainer.run(stop_after)
    finally:
        trainer.close()
