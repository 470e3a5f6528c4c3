"""Any ONNX face restorer run with onnxruntime: ``fvr restore --model path/to/model.onnx``.

fvr hands a restorer aligned crops ``(T, 3, S, S)`` float32 RGB in [0, 1] (see :mod:`fvr.models.base`); third-party
graphs (GFPGAN, CodeFormer, GPEN, RestoreFormer exports, ...) take ``(N, 3, S, S)`` in their own convention. This
module finds that convention — the :class:`OnnxIO` — and converts on the way in and out.

Where each setting comes from, first match wins:

1. ``--model-opt KEY=VALUE`` options (``registry.create(path, KEY=VALUE)``);
2. a JSON sidecar next to the model, ``model.onnx.json``, with the same keys;
3. the model's ``metadata_props``: ``fvr.range``, ``fvr.channels``, ``fvr.size``;
4. the graph: the image input is the one 4-D float input ``(N, 3, H, W)``; S is its static H = W; the range is
   "-1,1" when the output is produced by Tanh, "0,1" by Sigmoid / HardSigmoid / Clip(0, 1);
5. defaults: range "-1,1" (GFPGAN, CodeFormer, GPEN and RestoreFormer all normalise with mean = std = 0.5),
   channels "rgb", S = 512 when the graph's H, W are dynamic.

Every other graph input is an *extra* input fed a constant: its value is the option named like the input
(``--model-opt w=0.7``); a scalar input named like a fidelity weight (``w``, ``weight``, ``*fidelity*``, as in
CodeFormer) defaults to 0.5; any other extra input without a value is an error that says how to set it.

Every failure (not an ONNX file, truncated, no usable image input, a bad option) is a one-line
:class:`~fvr.errors.ConfigError` naming the file and what was expected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fvr.errors import ConfigError, reason
from fvr.models.base import Restorer, RestorerSpec

RANGES = ("0,1", "-1,1")
CHANNELS = ("rgb", "bgr")
DEFAULT_RANGE = "-1,1"  # mean = std = 0.5 normalisation of the common face restorers
DEFAULT_CHANNELS = "rgb"
DEFAULT_SIZE = 512  # the crop side of GFPGAN / CodeFormer / GPEN-512 / RestoreFormer when the graph does not say
FIDELITY_DEFAULT = 0.5  # CodeFormer's default fidelity weight
META_KEYS = {"range": "fvr.range", "channels": "fvr.channels", "size": "fvr.size"}
SETTING_KEYS = ("size", "crop_size", "range", "channels", "image_input", "output")
FIDELITY_ALIAS = "fidelity"  # the spandrel loader's name for the same knob; accepted when the graph has one such input

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool",
}
_FLOATS = ("float32", "float64", "float16")
_EXTRA_DTYPES = ("float32", "float64", "float16", "int64", "int32")


@dataclass(frozen=True)
class OnnxIO:
    """The I/O convention of an ONNX image restorer.

    size: S, the side of the square input ``image_input`` of shape (N, 3, S, S).
    range: value range of the input and of the output: "0,1" or "-1,1" (x_model = 2·x − 1).
    channels: colour order of the input and of the output: "rgb" or "bgr".
    image_input: name of the image input, (N, 3, S, S) float (float32, float16 or float64).
    output: name of the restored image output, (N, 3, H', W') in the same range and colour order; H', W' may differ
        from S (models that also up-sample), fvr resizes it back to S.
    extra: name -> value of every other input, fed as a constant of that input's shape and dtype (e.g.
        CodeFormer's fidelity weight ``w``).
    batch: whether N is dynamic (a whole clip runs in one call); False means N = 1 (frame by frame).
    origin: setting -> where it came from ("option", "sidecar", "metadata", "graph", "default"), for messages.
    """

    size: int
    range: str = DEFAULT_RANGE
    channels: str = DEFAULT_CHANNELS
    image_input: str = "input"
    output: str = "output"
    extra: Mapping[str, float] = field(default_factory=dict)
    batch: bool = False
    origin: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line, e.g. ``512x512, range -1,1 (default), rgb (default), batch 1, w=0.5``."""
        def src(key: str) -> str:
            return f" ({self.origin[key]})" if self.origin.get(key) in ("default", "metadata", "sidecar") else ""

        extras = "".join(f", {k}={v:g}" for k, v in self.extra.items())
        batch = "dynamic batch" if self.batch else "batch 1"
        return (f"{self.size}x{self.size}{src('size')}, range {self.range}{src('range')}, "
                f"{self.channels}{src('channels')}, {batch}{extras}")


@dataclass(frozen=True)
class _Tensor:
    """One graph input or output: name, shape (None for a dynamic or unknown dim; None shape if rank unknown), dtype."""

    name: str
    shape: tuple[int | None, ...] | None
    dtype: str

    @property
    def numel(self) -> int | None:
        if self.shape is None or any(d is None for d in self.shape):
            return None
        return math.prod(d for d in self.shape if d is not None)

    def shape_text(self) -> str:
        if self.shape is None:
            return "unknown shape"
        return "(" + ",".join("?" if d is None else str(d) for d in self.shape) + ")"


@dataclass(frozen=True)
class _Graph:
    """What detection needs from a model or a session: its inputs, outputs, metadata and (from a model only)
    the nodes, to see which operator produces the output."""

    inputs: tuple[_Tensor, ...]
    outputs: tuple[_Tensor, ...]
    metadata: Mapping[str, str]
    model: Any = None  # onnx.ModelProto, or None when built from an InferenceSession

    def image_candidates(self) -> list[_Tensor]:
        return [t for t in self.inputs if t.dtype in _FLOATS and t.shape is not None and len(t.shape) == 4]


# ---------------------------------------------------------------------------------------------------------------
# reading the graph


def _dim(d: Any) -> int | None:
    """An ONNX shape dim (a proto Dimension or an onnxruntime int/str/None) as an int, None when dynamic."""
    if isinstance(d, int):
        return d if d > 0 else None
    if hasattr(d, "HasField"):
        return int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None
    return None


def _proto_tensor(value_info: Any) -> _Tensor:
    import onnx

    tt = value_info.type.tensor_type
    shape = tuple(_dim(d) for d in tt.shape.dim) if tt.HasField("shape") else None
    try:
        dtype = str(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else "unknown"
    except (KeyError, ValueError, TypeError):
        dtype = "unknown"
    return _Tensor(value_info.name, shape, dtype)


def _ort_tensor(arg: Any) -> _Tensor:
    shape = tuple(_dim(d) for d in arg.shape) if arg.shape is not None else None
    return _Tensor(arg.name, shape, _ORT_TYPES.get(arg.type, arg.type))


def _graph_of(model_or_session: Any) -> _Graph:
    """A :class:`_Graph` from an ``onnx.ModelProto`` or an ``onnxruntime.InferenceSession``."""
    if hasattr(model_or_session, "get_inputs"):  # an InferenceSession
        meta = dict(model_or_session.get_modelmeta().custom_metadata_map)
        return _Graph(tuple(_ort_tensor(a) for a in model_or_session.get_inputs()),
                      tuple(_ort_tensor(a) for a in model_or_session.get_outputs()), meta)
    graph = model_or_session.graph
    # models of IR version < 4 list their weights as inputs too: those are not inputs to feed
    weights = {init.name for init in graph.initializer}
    inputs = tuple(_proto_tensor(v) for v in graph.input if v.name not in weights)
    outputs = tuple(_proto_tensor(v) for v in graph.output)
    meta = {p.key: p.value for p in model_or_session.metadata_props}
    return _Graph(inputs, outputs, meta, model_or_session)


def _constant(model: Any, name: str) -> float | None:
    """The scalar value of initializer / Constant node output ``name``, else None."""
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            arr = numpy_helper.to_array(init)
            return float(arr.reshape(-1)[0]) if arr.size == 1 else None
    for node in model.graph.node:
        if node.op_type == "Constant" and name in node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    arr = numpy_helper.to_array(attr.t)
                    return float(arr.reshape(-1)[0]) if arr.size == 1 else None
                if attr.name == "value_float":
                    return float(attr.f)
    return None


def _clip_bounds(model: Any, node: Any) -> tuple[float | None, float | None]:
    """(min, max) of a Clip node: attributes before opset 11, constant inputs after."""
    lo = hi = None
    for attr in node.attribute:
        if attr.name == "min":
            lo = float(attr.f)
        elif attr.name == "max":
            hi = float(attr.f)
    if len(node.input) > 1 and node.input[1]:
        lo = _constant(model, node.input[1])
    if len(node.input) > 2 and node.input[2]:
        hi = _constant(model, node.input[2])
    return lo, hi


def _range_from_output_op(model: Any, output: str) -> str | None:
    """"-1,1" / "0,1" when the operator producing ``output`` bounds it so (Tanh, Sigmoid, Clip), else None.
    Identity and Cast are looked through: they do not change the range."""
    producers = {out: node for node in model.graph.node for out in node.output}
    name, seen = output, set()
    while name in producers and name not in seen:
        seen.add(name)
        node = producers[name]
        if node.op_type in ("Identity", "Cast"):
            name = node.input[0]
            continue
        if node.op_type == "Tanh":
            return "-1,1"
        if node.op_type in ("Sigmoid", "HardSigmoid"):
            return "0,1"
        if node.op_type == "Clip":
            lo, hi = _clip_bounds(model, node)
            if lo is not None and hi is not None and abs(hi - 1) < 1e-6:
                if abs(lo) < 1e-6:
                    return "0,1"
                if abs(lo + 1) < 1e-6:
                    return "-1,1"
        return None
    return None


# ---------------------------------------------------------------------------------------------------------------
# options


def _is_fidelity(name: str) -> bool:
    lowered = name.lower()
    return lowered in ("w", "weight") or "fidelity" in lowered


def _fidelity_inputs(extras: Sequence[_Tensor]) -> list[_Tensor]:
    return [t for t in extras if _is_fidelity(t.name) and (t.numel is None or t.numel <= 1)]


def valid_keys(graph: _Graph) -> list[str]:
    """The option / sidecar keys a model accepts: the settings, its extra inputs' names (and ``fidelity`` when it
    has exactly one fidelity-like input)."""
    candidates = graph.image_candidates()
    image = candidates[0].name if len(candidates) == 1 else None  # with several, the user picks: all may be keys
    names = [t.name for t in graph.inputs if t.name != image]
    keys = [*SETTING_KEYS, *names]
    if len(_fidelity_inputs([t for t in graph.inputs if t.name in names])) == 1 and FIDELITY_ALIAS not in keys:
        keys.append(FIDELITY_ALIAS)
    return keys


def _check_keys(keys: Sequence[str], graph: _Graph, where: str) -> None:
    valid = valid_keys(graph)
    unknown = [k for k in keys if k not in valid]
    if unknown:
        raise ConfigError(f"{where}: unknown option {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}")


def _as_size(value: object, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or int(value) < 16:
        raise ConfigError(f"{where}: {key} must be an integer >= 16 (the square input side), got {value!r}")
    return int(value)


def _as_range(value: object, where: str) -> str:
    text = re.sub(r"[\s\[\]()]", "", str(value)).replace("..", ",")
    if text not in RANGES:
        raise ConfigError(f"{where}: range must be 0,1 or -1,1, got {value!r}")
    return text


def _as_channels(value: object, where: str) -> str:
    text = str(value).strip().lower()
    if text not in CHANNELS:
        raise ConfigError(f"{where}: channels must be rgb or bgr, got {value!r}")
    return text


def _as_number(value: object, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {key} must be a number (--model-opt {key}=VALUE), got {value!r}")
    return float(value)


def _merge_size_keys(layer: Mapping[str, object], where: str) -> dict[str, object]:
    """``crop_size`` (what the pipeline and ``--crop-size`` pass) is another name for ``size``: one key per layer,
    so that an option's crop_size overrides a sidecar's size."""
    out = dict(layer)
    if "crop_size" in out:
        crop = out.pop("crop_size")
        if "size" in out and out["size"] != crop:
            raise ConfigError(f"{where}: size and crop_size disagree ({out['size']!r} vs {crop!r})")
        out["size"] = crop
    return out


def read_sidecar(path: Path) -> dict[str, object]:
    """The settings of ``<model>.onnx.json`` next to the model (an empty dict when there is none).

    A JSON object with the option keys, e.g. ``{"range": "-1,1", "channels": "bgr", "size": 512, "w": 0.7}``.
    """
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{sidecar}: not a readable JSON file ({reason(exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{sidecar}: expected a JSON object of settings like {{\"range\": \"-1,1\"}}")
    return data


def sidecar_path(path: Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    return path.with_name(path.name + ".json")


# ---------------------------------------------------------------------------------------------------------------
# detection


def _pick_image_input(graph: _Graph, given: object, where: str) -> _Tensor:
    if given is not None:
        found = [t for t in graph.inputs if t.name == given]
        if not found:
            names = ", ".join(t.name for t in graph.inputs) or "none"
            raise ConfigError(f"{where}: image_input {given!r} is not an input of the graph (inputs: {names})")
        tensor = found[0]
        if tensor.dtype not in _FLOATS or tensor.shape is None or len(tensor.shape) != 4:
            raise ConfigError(f"{where}: image_input {given!r} is {tensor.shape_text()} {tensor.dtype}, expected a "
                              "4-D float (N,3,H,W) image")
        return tensor
    candidates = graph.image_candidates()
    if not candidates:
        got = "; ".join(f"{t.name} {t.shape_text()} {t.dtype}" for t in graph.inputs) or "no inputs"
        hint = " (fvr's own exported graphs are 5-D: use their .safetensors instead)" if "fvr_arch" in graph.metadata \
            else ""
        raise ConfigError(f"{where}: expected an image restorer with a 4-D float input (N,3,H,W), got {got}{hint}")
    if len(candidates) > 1:
        names = ", ".join(t.name for t in candidates)
        raise ConfigError(f"{where}: several 4-D inputs ({names}); choose the image with --model-opt image_input=NAME")
    return candidates[0]


def _pick_output(graph: _Graph, given: object, where: str) -> _Tensor:
    if given is not None:
        found = [t for t in graph.outputs if t.name == given]
        if not found:
            names = ", ".join(t.name for t in graph.outputs)
            raise ConfigError(f"{where}: output {given!r} is not an output of the graph (outputs: {names})")
        return found[0]
    if not graph.outputs:
        raise ConfigError(f"{where}: the graph has no outputs; expected an image output (N,3,H,W)")
    # multi-output exports (CodeFormer's logits, feature maps) list the image first; a 3-channel 4-D one is it
    for tensor in graph.outputs:
        if tensor.shape is None or (len(tensor.shape) == 4 and tensor.shape[1] in (3, None)):
            return tensor
    got = "; ".join(f"{t.name} {t.shape_text()}" for t in graph.outputs)
    raise ConfigError(f"{where}: expected an image output (N,3,H,W), got {got}")


def _check_image_shape(image: _Tensor, where: str) -> None:
    assert image.shape is not None
    n, c, h, w = image.shape
    if c is not None and c != 3:
        layout = " (an NHWC graph? fvr needs NCHW)" if image.shape[3] == 3 else ""
        raise ConfigError(f"{where}: input {image.name!r} has {c} channel(s) {image.shape_text()}, expected a "
                          f"3-channel colour image (N,3,H,W){layout}")
    if n is not None and n != 1:
        raise ConfigError(f"{where}: input {image.name!r} has a fixed batch of {n} {image.shape_text()}, expected "
                          "1 or a dynamic batch")
    if h is not None and w is not None and h != w:
        raise ConfigError(f"{where}: input {image.name!r} is {h}x{w}, expected a square input (N,3,S,S)")


def _size(image: _Tensor, settings: Mapping[str, tuple[object, str]], metadata: Mapping[str, str],
          where: str) -> tuple[int, str]:
    """S and its origin. A static graph size is authoritative: a different size option is an error."""
    assert image.shape is not None
    given = (_as_size(settings["size"][0], where, "size/crop_size"), settings["size"][1]) if "size" in settings \
        else None
    h, w = image.shape[2], image.shape[3]
    if h is not None and h == w:
        if given is not None and given[0] != h:
            raise ConfigError(f"{where}: the model's input is fixed at {h}x{h}; size/crop_size {given[0]} cannot "
                              f"change it (leave it out or use {h})")
        return h, "graph"
    if given is not None:
        return given
    if META_KEYS["size"] in metadata:
        return _as_size(_meta_int(metadata[META_KEYS["size"]]), f"{where} metadata", META_KEYS["size"]), "metadata"
    return DEFAULT_SIZE, "default"


def _meta_int(text: str) -> object:
    try:
        return int(text)
    except ValueError:
        return text


def _range(graph: _Graph, output: str, settings: Mapping[str, tuple[object, str]], where: str) -> tuple[str, str]:
    if "range" in settings:
        value, src = settings["range"]
        return _as_range(value, where), src
    if META_KEYS["range"] in graph.metadata:
        return _as_range(graph.metadata[META_KEYS["range"]], f"{where} metadata"), "metadata"
    if graph.model is not None and (found := _range_from_output_op(graph.model, output)):
        return found, "graph"
    return DEFAULT_RANGE, "default"


def _channels(graph: _Graph, settings: Mapping[str, tuple[object, str]], where: str) -> tuple[str, str]:
    if "channels" in settings:
        value, src = settings["channels"]
        return _as_channels(value, where), src
    if META_KEYS["channels"] in graph.metadata:
        return _as_channels(graph.metadata[META_KEYS["channels"]], f"{where} metadata"), "metadata"
    return DEFAULT_CHANNELS, "default"


def _extras(extras: Sequence[_Tensor], settings: Mapping[str, tuple[object, str]], where: str) -> dict[str, float]:
    fidelity = _fidelity_inputs(extras)
    alias = fidelity[0].name if len(fidelity) == 1 else None
    values: dict[str, float] = {}
    for tensor in extras:
        if tensor.dtype not in _EXTRA_DTYPES:
            raise ConfigError(f"{where}: extra input {tensor.name!r} is {tensor.dtype}; fvr can feed only "
                              f"{', '.join(_EXTRA_DTYPES)} constants")
        if tensor.name in settings:
            values[tensor.name] = _as_number(settings[tensor.name][0], where, tensor.name)
        elif tensor.name == alias and FIDELITY_ALIAS in settings:
            values[tensor.name] = _as_number(settings[FIDELITY_ALIAS][0], where, FIDELITY_ALIAS)
        elif tensor in fidelity:
            values[tensor.name] = FIDELITY_DEFAULT
        else:
            raise ConfigError(f"{where}: extra input {tensor.name!r} {tensor.shape_text()} {tensor.dtype} needs a "
                              f"value: --model-opt {tensor.name}=VALUE (or \"{tensor.name}\" in the sidecar "
                              f"<model>.onnx.json)")
    return values


def detect_io(model_or_session: Any, overrides: Mapping[str, object] | None = None, *, where: str = "model",
              origins: Mapping[str, str] | None = None) -> OnnxIO:
    """The :class:`OnnxIO` of an ``onnx.ModelProto`` or an ``onnxruntime.InferenceSession``.

    overrides: settings that win over the graph (options merged over the sidecar; keys as in
    :data:`SETTING_KEYS` plus extra input names); origins: key -> "option" / "sidecar", for messages.
    where: the file name that starts every error message.

    Detection rules (module docstring): the image input is the one 4-D float input (N,3,H,W) with H = W = S, or
    S = 512 when H, W are dynamic and neither an override nor ``fvr.size`` metadata sets it; range from
    ``fvr.range`` metadata, else the output's operator (Tanh "-1,1"; Sigmoid, Clip(0,1) "0,1"; only a ModelProto
    has the nodes to look at), else "-1,1"; channels from ``fvr.channels`` metadata, else "rgb".
    """
    graph = _graph_of(model_or_session)
    overrides = dict(overrides or {})
    _check_keys(list(overrides), graph, where)
    overrides = _merge_size_keys(overrides, where)
    origins = origins or {}
    settings = {k: (v, origins.get(k, "option")) for k, v in overrides.items()}
    image = _pick_image_input(graph, overrides.get("image_input"), where)
    _check_image_shape(image, where)
    output = _pick_output(graph, overrides.get("output"), where)
    if output.shape is not None and len(output.shape) != 4:
        raise ConfigError(f"{where}: output {output.name!r} is {output.shape_text()}, expected an image (N,3,H,W)")
    size, size_from = _size(image, settings, graph.metadata, where)
    value_range, range_from = _range(graph, output.name, settings, where)
    channels, channels_from = _channels(graph, settings, where)
    extra = _extras([t for t in graph.inputs if t.name != image.name], settings, where)
    return OnnxIO(size=size, range=value_range, channels=channels, image_input=image.name, output=output.name,
                  extra=extra, batch=image.shape[0] is None,  # type: ignore[index]
                  origin={"size": size_from, "range": range_from, "channels": channels_from})


# ---------------------------------------------------------------------------------------------------------------
# conversion


def to_model(clip: np.ndarray, io: OnnxIO) -> np.ndarray:
    """(T,3,S,S) float32 RGB [0,1] -> the model's colour order and range, float32."""
    x = clip[:, ::-1] if io.channels == "bgr" else clip
    x = x * 2.0 - 1.0 if io.range == "-1,1" else x
    return np.ascontiguousarray(x, dtype=np.float32)


def from_model(y: np.ndarray, io: OnnxIO) -> np.ndarray:
    """(N,3,H,W) in the model's colour order and range -> float32 RGB, clipped to [0,1]."""
    y = y.astype(np.float32, copy=False)
    y = (y + 1.0) * 0.5 if io.range == "-1,1" else y
    y = y[:, ::-1] if io.channels == "bgr" else y
    return np.clip(y, 0.0, 1.0)


def resize_to(y: np.ndarray, size: int) -> np.ndarray:
    """(N,3,H,W) float32 -> (N,3,size,size): INTER_AREA when shrinking (models that also up-sample: averaging
    avoids aliasing), bicubic when growing."""
    import cv2

    n, _, h, w = y.shape
    if (h, w) == (size, size):
        return y
    interp = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_CUBIC
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        hwc = np.ascontiguousarray(y[i].transpose(1, 2, 0))
        out[i] = cv2.resize(hwc, (size, size), interpolation=interp).transpose(2, 0, 1)
    return out


# ---------------------------------------------------------------------------------------------------------------
# the restorer


def providers_for(device: str, where: str) -> list[str]:
    """onnxruntime execution providers for ``device``: "cpu"; "cuda" (CUDA first, then the CPU for any operator
    CUDA lacks; an error when onnxruntime has no CUDA provider, i.e. onnxruntime-gpu is not installed); "auto"
    (CUDA when onnxruntime has it, else the CPU)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        return cuda if "CUDAExecutionProvider" in available else ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ConfigError(f"{where}: device cuda needs onnxruntime's CUDAExecutionProvider (install "
                              f"onnxruntime-gpu, or use --device cpu); available: {', '.join(available)}")
        return cuda
    raise ConfigError(f"{where}: device must be cpu, cuda or auto, got {device!r}")


class OnnxRestorer(Restorer):
    """A per-frame face restorer from an ONNX graph, run with onnxruntime (see the module docstring).

    restore_clip: (T,3,S,S) float32 RGB [0,1] -> the same, S = ``io.size``; the whole clip runs in one call when
    the graph's batch is dynamic, frame by frame otherwise.
    """

    def __init__(self, path: Path, session: Any, io: OnnxIO):
        self.path = path
        self.session = session
        self.io = io
        inputs = {t.name: t for t in (_ort_tensor(a) for a in session.get_inputs())}
        self.input_dtype = np.dtype(inputs[io.image_input].dtype)
        self._extra_feed = {name: _constant_feed(inputs[name], value) for name, value in io.extra.items()}
        self.spec = RestorerSpec(
            name=path.stem, kind="external", temporal="per-frame", crop_size=io.size,
            description=f"ONNX model {path.name}: {io.describe()}", tags=("onnx",),
        )

    def restore_clip(self, clip: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        x = to_model(clip, self.io)
        step = len(x) if self.io.batch else 1
        outs = [self._run(x[i : i + step]) for i in range(0, len(x), step)]
        y = resize_to(from_model(np.concatenate(outs), self.io), self.io.size)
        return np.clip(y, 0.0, 1.0)

    def _run(self, x: np.ndarray) -> np.ndarray:
        feed = {self.io.image_input: x.astype(self.input_dtype, copy=False), **self._extra_feed}
        try:
            (y,) = self.session.run([self.io.output], feed)
        except Exception as exc:
            raise ConfigError(f"{self.path}: onnxruntime failed on a {x.shape} input: {reason(exc)}") from None
        if y.ndim != 4 or y.shape[0] != len(x) or y.shape[1] != 3:
            raise ConfigError(f"{self.path}: output {self.io.output!r} is {y.shape} for a {x.shape} input, "
                              "expected (N,3,H,W)")
        return y


def _constant_feed(tensor: _Tensor, value: float) -> np.ndarray:
    """value as an array of the input's shape and dtype (dynamic dims as 1)."""
    shape = tuple(1 if d is None else d for d in (tensor.shape or ()))
    return np.full(shape, value, dtype=np.dtype(tensor.dtype))


def _load_model(path: Path) -> Any:
    """The graph of ``path`` without its weights' external data (detection reads only shapes and nodes)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable ONNX model ({reason(exc)}); expected an .onnx image "
                          "restorer") from None
    if not model.ir_version or not model.HasField("graph") or not model.graph.node:
        raise ConfigError(f"{path}: not an ONNX model (no graph); expected an .onnx image restorer")
    return model


def _session(path: Path, device: str) -> Any:
    import onnxruntime as ort

    providers = providers_for(device, str(path))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # onnxruntime's warnings (unused initialisers, ...) are not the user's business
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as exc:
        raise ConfigError(f"{path}: onnxruntime cannot load it ({reason(exc)}); expected a valid ONNX image "
                          "restorer") from None


def load_onnx_restorer(path: Path, *, device: str = "cpu", **options: object) -> OnnxRestorer:
    """An :class:`OnnxRestorer` from an ``.onnx`` file. options (``--model-opt``): ``size`` / ``crop_size``,
    ``range``, ``channels``, ``image_input``, ``output`` and a value per extra input (e.g. ``w=0.7``); they win
    over ``<path>.json`` (the sidecar), which wins over the graph's metadata and detection."""
    path = Path(path)
    where = str(path)
    model = _load_model(path)
    graph = _graph_of(model)
    sidecar = read_sidecar(path)
    _check_keys(list(sidecar), graph, str(sidecar_path(path)))
    _check_keys(list(options), graph, where)
    sidecar = _merge_size_keys(sidecar, str(sidecar_path(path)))
    options = _merge_size_keys(options, where)
    origins = {**{k: "sidecar" for k in sidecar}, **{k: "option" for k in options}}
    io = detect_io(model, {**sidecar, **options}, where=where, origins=origins)
    del model, graph  # the session holds its own copy of the graph
    return OnnxRestorer(path, _session(path, device), io)
