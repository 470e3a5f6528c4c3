"""State dicts: the one strict loader every network of fvr goes through, safetensors reading with one-line errors,
and the cache of weights converted from other formats (ncnn) to safetensors."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from fvr.errors import ConfigError, reason

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)


def load_state_checked(net: nn.Module, state: Mapping[str, torch.Tensor], source: str, *,
                       network: str = "the network", dtype: torch.dtype | None = None) -> None:
    """``net.load_state_dict(state, strict=True)``, with a one-line :class:`ConfigError` naming ``source``,
    ``network`` and the first missing, unexpected or mis-shaped key instead of torch's multi-line error.
    dtype: cast every tensor to it first (None: as stored)."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        what = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected else
                f"{shapes[0]} has shape {tuple(state[shapes[0]].shape)}, expected {tuple(own[shapes[0]].shape)}")
        raise ConfigError(f"{source}: weights do not match {network} ({what}; {len(missing)} missing, "
                          f"{len(unexpected)} unexpected, {len(shapes)} mis-shaped of {len(own)} keys)")
    tensors = dict(state) if dtype is None else {k: v.to(dtype) for k, v in state.items()}
    net.load_state_dict(tensors, strict=True)


def load_safetensors_state(path: str | Path, expected: str = "a state dict") -> dict[str, torch.Tensor]:
    """Read a safetensors file into a state dict; a missing or corrupt file is a one-line ConfigError saying what
    was ``expected`` in it."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:
        raise ConfigError(f"cannot read weights {path} as safetensors (expected {expected}): {reason(exc)}") from None


# ----------------------------------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """Where converted weights are kept: ``$FVR_CACHE`` or ``~/.cache/fvr``."""
    env = os.environ.get("FVR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fvr"


def files_sha256(*paths: Path, version: str = "1") -> str:
    """sha256 of a converter ``version`` and the bytes of ``paths``, read in 1 MiB blocks."""
    digest = hashlib.sha256(version.encode())
    for path in paths:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_target(param_path: Path, bin_path: Path, cache: str | Path | None = None,
                 salt: str = "", version: str = "1") -> tuple[Path, str]:
    """(cache file, key) for a conversion of the ncnn files: ``<cache>/<bin stem>-<key>.safetensors`` with key the
    sha256 of both files (and ``salt``, e.g. a converter's name and version), so a changed file converts again."""
    try:
        digest = files_sha256(param_path, bin_path, version=version)
    except OSError as exc:
        raise ConfigError(f"cannot read ncnn model {bin_path}: {reason(exc)}") from None
    key = (hashlib.sha256(f"{salt}:{digest}".encode()).hexdigest() if salt else digest)[:16]
    folder = Path(cache) if cache is not None else cache_dir()
    return folder / f"{bin_path.stem.lower()}-{key}.safetensors", key


def save_cached_state(state: dict[str, torch.Tensor], target: Path, metadata: dict[str, str]) -> None:
    """Write converted weights to the cache file ``target`` atomically (temporary file + rename); a cache that
    cannot be written is only a warning (the conversion is then repeated next time)."""
    from safetensors.torch import save_file

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            save_file(state, tmp, metadata=metadata)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        log.warning("cannot cache converted weights in %s: %s", target.parent, reason(exc))
