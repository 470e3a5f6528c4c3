"""``fvr export WEIGHTS.safetensors --onnx OUT.onnx``: a trained feed-forward network as one ONNX graph.

The graph takes ``x`` (B, T, 3, S, S) float32 RGB in [0, 1] (and ``prior`` (B, T, 8, S, S) for prior-driven
architectures, see :mod:`fvr.models.nets.prior`) and returns ``y`` (B, T, 3, S, S), unclamped (clamp to [0, 1]
after it, as fvr's restorers do). The batch axis is dynamic; T and S are fixed at export. The model's
``metadata_props`` record the architecture, preset, crop size, T, context, range, colour order and layout.
After writing, the file is checked with onnxruntime against torch on a random input (batch 2): the largest
absolute difference must be <= 1e-4, else the file is removed and the export fails.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fvr.errors import ConfigError, FvrError, OutputError, reason

OPSET = 17
TOLERANCE = 1e-4


class ExportError(FvrError):
    """The exported graph does not reproduce the network (onnxruntime disagrees with torch)."""

    exit_code = 5


@dataclass
class ExportResult:
    path: Path
    arch: str
    frames: int
    size: int
    uses_prior: bool
    max_abs_diff: float


def _inputs(batch: int, frames: int, size: int, uses_prior: bool, seed: int) -> tuple[torch.Tensor, ...]:
    from fvr.faces import face_template
    from fvr.models.nets.prior import landmark_prior

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, frames, 3, size, size, generator=g)
    if not uses_prior:
        return (x,)
    lm = torch.from_numpy(face_template(size)).expand(batch, frames, 5, 2).clone()
    lm = lm + torch.randn(batch, frames, 5, 2, generator=g) * (size / 128.0)  # not exactly the template
    return x, landmark_prior(lm, size)


def export_onnx(weights: str | Path, out: str | Path, *, frames: int | None = None, size: int | None = None,
                archs: Mapping[str, Any] | None = None) -> ExportResult:
    """Export the network of an fvr weight file to ONNX (opset 17, TorchScript exporter), write metadata, verify.

    frames: T (default past + 1 + future of the architecture); size: S (default the crop size it was trained at).
    """
    from fvr.models import nets
    from fvr.models.nets.core import load_weights

    archs = nets.architectures() if archs is None else archs
    loaded = load_weights(weights, archs)
    arch = loaded.arch
    if not arch.feed_forward:
        raise ConfigError(f"{arch.name} is not feed-forward (its ArchSpec says feed_forward=False): it cannot be "
                          "exported as one ONNX graph")
    past, future = arch.context(loaded.config)
    t = int(frames) if frames else past + 1 + future
    s = int(size) if size else loaded.crop_size
    if t < 1 or s < 16:
        raise ConfigError(f"--frames must be >= 1 and --size >= 16, got {t} and {s}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"the output must be an .onnx file, got {out.name}")
    if out.resolve() == Path(weights).resolve():
        raise OutputError("the ONNX output must not overwrite the weights file")
    if not out.parent.is_dir():
        raise OutputError(f"output folder {out.parent} does not exist")
    net = loaded.net.eval()
    names = ["x", "prior"] if arch.uses_prior else ["x"]
    example = _inputs(1, t, s, arch.uses_prior, seed=0)
    model = _export(net, example, names)
    _add_metadata(model, loaded, t, s, past, future, names)
    _save(model, out)
    diff = verify(out, net, _inputs(2, t, s, arch.uses_prior, seed=1), names)
    if not diff <= TOLERANCE:
        out.unlink(missing_ok=True)
        raise ExportError(f"onnxruntime differs from torch by {diff:.3g} (> {TOLERANCE:g}) on {arch.name}; "
                          "the file was not kept")
    return ExportResult(out, arch.name, t, s, arch.uses_prior, diff)


def _export(net: torch.nn.Module, example: tuple[torch.Tensor, ...], names: list[str]):
    import onnx

    buf = io.BytesIO()
    dynamic = {n: {0: "batch"} for n in [*names, "y"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy-exporter deprecation and tracer warnings are not the user's
        try:
            # the legacy exporter (dynamo=False) writes to a file object too; torch annotates f as a path only
            torch.onnx.export(net, example, buf,  # type: ignore[arg-type]
                              opset_version=OPSET, dynamo=False, input_names=names,
                              output_names=["y"], dynamic_axes=dynamic, do_constant_folding=True)
        except Exception as exc:  # an unsupported operator etc.: one line, not a traceback
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"torch.onnx.export failed: {msg}") from None
    return onnx.load_model_from_string(buf.getvalue())


def _add_metadata(model, loaded, frames: int, size: int, past: int, future: int, names: list[str]) -> None:
    from fvr import __version__

    meta = {
        "fvr_arch": loaded.arch.name, "fvr_preset": loaded.preset, "fvr_version": __version__,
        "fvr_config": loaded.metadata.get("config", ""),
        "crop_size": str(size), "trained_crop_size": str(loaded.crop_size), "frames": str(frames),
        "past": str(past), "future": str(future), "inputs": ",".join(names),
        "input_range": "[0, 1]", "output_range": "unclamped, clamp to [0, 1]", "color": "RGB",
        "layout": "B,T,3,S,S", "prior_layout": "B,T,8,S,S" if "prior" in names else "",
    }
    del model.metadata_props[:]
    for key, value in meta.items():
        if value:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value


def _save(model, out: Path) -> None:
    import onnx

    tmp = out.with_name(f".{out.name}.fvr-tmp")
    try:
        onnx.save_model(model, str(tmp))
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {out}: {reason(exc)}") from None


def verify(source: Path | bytes, net: torch.nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str]) -> float:
    """Max |onnxruntime(source) − net| on ``inputs``; source is an .onnx file or a serialised model."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    model = source if isinstance(source, bytes) else str(source)
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    got = session.run(["y"], {n: t.numpy() for n, t in zip(names, inputs)})[0]
    with torch.no_grad():
        want = net(*inputs).numpy()
    if got.shape != want.shape:
        raise ExportError(f"onnxruntime returned shape {got.shape}, torch {want.shape}")
    return float(np.max(np.abs(got - want)))


def onnx_parity(net: torch.nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str] | None = None) -> float:
    """Export ``net`` in memory exactly as ``fvr export`` does and return max |onnxruntime − torch| on ``inputs``.
    names: the graph's input names (default "x", then "prior")."""
    names = names or ["x", "prior"][: len(inputs)]
    model = _export(net.eval(), inputs, names)
    return verify(model.SerializeToString(), net, inputs, names)


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The metadata_props of an ONNX file, as a dict."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
