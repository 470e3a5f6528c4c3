"""Training checkpoints as safetensors only (no pickle): everything needed to continue a run exactly.

One file ``out/checkpoints/step-XXXXXX.safetensors`` holds

- tensors: every module's state dict under ``<module>/<key>`` (``model``, ``ema``, ``disc``); every optimiser's
  per-parameter state under ``<optimiser>/state/<param index>/<name>`` (AdamW's ``step``, ``exp_avg``,
  ``exp_avg_sq``); the random states as uint8 byte tensors: ``rng/torch``, ``rng/cuda/<i>``, ``rng/numpy``
  (MT19937 key bytes), ``rng/python`` (Mersenne Twister words as bytes);
- metadata (strings): ``format``; ``state`` (JSON: step, LR schedule, data sampler position, log accumulators, the
  run's config); ``optim`` (JSON: param groups and non-tensor per-parameter state); ``rng`` (JSON: the non-byte
  parts of the numpy and python states).

``out/checkpoints/latest`` is a one-line text file naming the newest checkpoint (written after the file is
complete, atomically), so a run killed mid-write resumes from the previous one.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fvr.errors import ConfigError, OutputError, reason

FORMAT = "fvr-train-checkpoint-1"
LATEST = "latest"
_NAME = re.compile(r"^step-(\d{6,})\.safetensors$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}.safetensors"


# ----------------------------------------------------------------------------------------------- RNG


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The torch (CPU and CUDA), numpy-global and python ``random`` states: byte tensors + JSON extras."""
    tensors = {"rng/torch": torch.get_rng_state().clone()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s.clone()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng/numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.uint32).view(np.uint8).copy())
    version, words, gauss_next = random.getstate()
    tensors["rng/python"] = torch.from_numpy(np.asarray(words, dtype=np.uint32).view(np.uint8).copy())
    extra = {"numpy": [kind, int(pos), int(has_gauss), float(cached)], "python": [version, gauss_next]}
    return tensors, extra


def set_rng_state(tensors: Mapping[str, torch.Tensor], extra: Mapping[str, Any]) -> None:
    torch.set_rng_state(tensors["rng/torch"].to(torch.uint8))
    cuda = sorted((k for k in tensors if k.startswith("rng/cuda/")), key=lambda k: int(k.rsplit("/", 1)[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k].to(torch.uint8) for k in cuda][: torch.cuda.device_count()])
    kind, pos, has_gauss, cached = extra["numpy"]
    keys = tensors["rng/numpy"].numpy().view(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    version, gauss_next = extra["python"]
    words = tuple(int(w) for w in tensors["rng/python"].numpy().view(np.uint32))
    random.setstate((version, words, gauss_next))


# ----------------------------------------------------------------------------------------------- optimisers


def flatten_optimizer(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{name}/state/{idx}/{key}"] = value.detach().cpu().clone().contiguous()
            else:
                plain.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "state": plain}


def unflatten_optimizer(name: str, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"{name}/state/"
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, field = key[len(prefix):].split("/", 1)
            state.setdefault(int(idx), {})[field] = value
    for idx, values in meta.get("state", {}).items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


# ----------------------------------------------------------------------------------------------- files


def save_checkpoint(path: str | Path, *, modules: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer], state: Mapping[str, Any]) -> Path:
    """Write modules, optimisers, RNG states and the JSON ``state`` to ``path`` (atomic: temp + rename)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"{name}/{key}"] = value.detach().cpu().clone().contiguous()  # clone: no shared storage
    optim_meta = {}
    for name, opt in optimizers.items():
        t, m = flatten_optimizer(name, opt)
        tensors.update(t)
        optim_meta[name] = m
    rng_tensors, rng_extra = rng_state()
    tensors.update(rng_tensors)
    meta = {"format": FORMAT, "state": json.dumps(state), "optim": json.dumps(optim_meta),
            "rng": json.dumps(rng_extra)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.fvr-tmp")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write checkpoint {path}: {reason(exc)}") from None
    return path


def load_checkpoint(path: str | Path, *, modules: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer], restore_rng: bool = True) -> dict[str, Any]:
    """Load what :func:`save_checkpoint` wrote into the given modules/optimisers (strictly), restore the RNG
    states, and return the JSON ``state``."""
    from safetensors import safe_open

    from fvr.models.formats.state import load_state_checked

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # a safetensors handle, not a dict
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise ConfigError(f"{path} is not a readable checkpoint ({type(exc).__name__})") from None
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{path} is not an fvr training checkpoint")
    for name, module in modules.items():
        prefix = f"{name}/"
        own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        load_state_checked(module, {k: v.to(device) for k, v in own.items()}, f"{path} [{name}]")
    optim_meta = json.loads(meta["optim"])
    for name, opt in optimizers.items():
        if name not in optim_meta:
            raise ConfigError(f"{path} has no state for optimiser {name!r} (was the run's config changed?)")
        opt.load_state_dict(unflatten_optimizer(name, tensors, optim_meta[name]))
    if restore_rng:
        set_rng_state(tensors, json.loads(meta["rng"]))
    return json.loads(meta["state"])


def write_latest(ckpt_dir: Path, path: Path) -> None:
    tmp = ckpt_dir / f".{LATEST}.fvr-tmp"
    tmp.write_text(path.name + "\n", encoding="utf-8")
    tmp.replace(ckpt_dir / LATEST)


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The checkpoint ``latest`` names (or the highest step present when the pointer is missing)."""
    ckpt_dir = Path(ckpt_dir)
    pointer = ckpt_dir / LATEST
    if pointer.is_file():
        path = ckpt_dir / pointer.read_text(encoding="utf-8").strip()
        if path.is_file():
            return path
    found = list_checkpoints(ckpt_dir)
    return found[-1] if found else None


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    if not ckpt_dir.is_dir():
        return []
    named = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(named)]


def prune_checkpoints(ckpt_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (never the one ``latest`` names)."""
    latest = latest_checkpoint(ckpt_dir)
    for path in list_checkpoints(ckpt_dir)[:-keep]:
        if path != latest:
            path.unlink(missing_ok=True)
