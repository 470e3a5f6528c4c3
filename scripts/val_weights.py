"""Score weight files on a training config's fixed validation windows (the ones `fvr train` logs as val/*).

Usage:
    python scripts/val_weights.py CONFIG.toml WEIGHTS.safetensors [more.safetensors ...]
    e.g. python scripts/val_weights.py configs/fvr-quality-stage3.toml runs/fvr-quality-2/model.safetensors

Builds the config's validation samples exactly as a run of it does (its cache, crop size, degradations and seed),
then prints PSNR, SSIM, flicker and ST-LPIPS (when its weights are installed) for each file, next to the degraded
input's PSNR: weights trained at another crop size or degradation can be compared with a run's own log.
"""

from __future__ import annotations

import argparse

import torch

from fvr.models.nets import architectures
from fvr.models.nets.core import load_weights
from fvr.train.config import load_config
from fvr.train.data import ClipSampler, load_data, resolve_codec, validation_samples
from fvr.train.loop import Validator, resolve_crop_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(a.config)
    archs = architectures()
    crop = resolve_crop_size(cfg, archs)
    data = load_data(cfg, crop)
    uses_prior = archs[cfg.model.arch].uses_prior
    sampler = ClipSampler(data.train, cfg, crop, uses_prior=uses_prior, use_codec=resolve_codec(cfg))
    validator = Validator(validation_samples(sampler, data.val, cfg.data.val_windows), cfg.optim.batch_size,
                          uses_prior)
    for path in a.weights:
        net = load_weights(path, archs).net
        scores = validator(net, torch.device("cpu"))
        print(path, " ".join(f"{k.removeprefix('val/')} {v:.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
