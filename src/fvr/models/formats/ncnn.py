"""A small, generic reader of ncnn model files (``.param`` text + ``.bin`` weights), with numpy only.

The ``.param`` text is::

    7767517                                   magic
    <layer count> <blob count>
    <type> <name> <n inputs> <n outputs> <input blobs...> <output blobs...> <k=v ...>

Parameter values are ints, floats (the text holds ``.``, ``e`` or ``E``) or arrays: a key ``-23300 - k`` means
parameter ``k`` is an array written ``n,v1,...,vn``.

The ``.bin`` file is the weights of the layers that have any, concatenated in layer order with no index. Each
blob is read as one of ncnn's two load types:

* type 1 ("raw"): ``n`` little-endian float32 values (biases, batch-norm statistics, ...);
* type 0 ("auto"): a 4-byte tag, then the data: tag ``0x01306B47`` = float16 (padded to 4 bytes), ``0x000D4B38`` =
  int8 (padded to 4 bytes), ``0x0002C056`` = float32, ``0`` = float32, any other non-zero tag = 8-bit indices into a
  256-entry float32 table that follows the tag (indices padded to 4 bytes).

Convolution-like layers store their weight with type 0 (``weight_data_size`` = parameter 6 values, laid out like
PyTorch's ``(out, in / groups, kh, kw)``) and then, with ``bias_term`` (parameter 5) set, ``num_output`` (parameter
0) type-1 biases. Layers this module does not know are assumed weightless; the whole ``.bin`` must be consumed
exactly, so a wrong assumption fails loudly instead of shifting every later weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fvr.errors import ConfigError, reason

MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056
_ARRAY_KEY_BASE = -23300

ParamValue = int | float | tuple[int | float, ...]


@dataclass
class NcnnLayer:
    """One layer line of a ``.param`` file, plus its weights once read from the ``.bin``."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, ParamValue] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def param(self, key: int, default: ParamValue | None = None) -> ParamValue | None:
        return self.params.get(key, default)

    def int_param(self, key: int, default: int = 0) -> int:
        value = self.params.get(key, default)
        if not isinstance(value, (int, float)):
            raise ConfigError(f"ncnn layer {self.name}: parameter {key} is an array, expected a number")
        return int(value)

    def float_param(self, key: int, default: float = 0.0) -> float:
        value = self.params.get(key, default)
        if not isinstance(value, (int, float)):
            raise ConfigError(f"ncnn layer {self.name}: parameter {key} is an array, expected a number")
        return float(value)

    def array_param(self, key: int) -> tuple[float, ...]:
        """An array parameter as floats (empty when absent); a single number is a one-element array."""
        value = self.params.get(key, ())
        return tuple(float(v) for v in value) if isinstance(value, tuple) else (float(value),)


@dataclass
class NcnnModel:
    """The layers of an ncnn model in file order (which is a valid execution order)."""

    layers: list[NcnnLayer]
    blob_count: int

    @property
    def input_blobs(self) -> list[str]:
        return [b for layer in self.layers if layer.type == "Input" for b in layer.outputs]

    @property
    def output_blobs(self) -> list[str]:
        """Blobs that some layer produces and no layer consumes."""
        consumed = {b for layer in self.layers for b in layer.inputs}
        return [b for layer in self.layers for b in layer.outputs if b not in consumed]

    def of_type(self, layer_type: str) -> list[NcnnLayer]:
        return [layer for layer in self.layers if layer.type == layer_type]


def _parse_number(text: str) -> int | float:
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def parse_param(text: str, source: str = "<param>") -> tuple[list[NcnnLayer], int]:
    """Parse ``.param`` text -> (layers without weights, blob count). Raises a one-line ConfigError when malformed."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    try:
        if int(lines[0]) != MAGIC:
            raise ValueError(f"magic {lines[0]} is not {MAGIC}")
        layer_count, blob_count = (int(v) for v in lines[1].split())
        layers = [_parse_layer(ln) for ln in lines[2:]]
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"cannot parse ncnn param file {source}: {reason(exc)}") from None
    if len(layers) != layer_count:
        raise ConfigError(f"ncnn param file {source} declares {layer_count} layers but holds {len(layers)}")
    return layers, blob_count


def _parse_layer(line: str) -> NcnnLayer:
    tokens = line.split()
    layer_type, name = tokens[0], tokens[1]
    n_in, n_out = int(tokens[2]), int(tokens[3])
    blobs = tokens[4:4 + n_in + n_out]
    if len(blobs) != n_in + n_out:
        raise ValueError(f"layer {name} lists fewer blobs than {n_in} + {n_out}")
    params: dict[int, ParamValue] = {}
    for item in tokens[4 + n_in + n_out:]:
        key_text, _, value_text = item.partition("=")
        key = int(key_text)
        if key <= _ARRAY_KEY_BASE:
            values = value_text.split(",")
            count = int(values[0])
            if len(values) - 1 != count:
                raise ValueError(f"layer {name}: array parameter {item!r} does not hold {count} values")
            params[_ARRAY_KEY_BASE - key] = tuple(_parse_number(v) for v in values[1:])
        else:
            params[key] = _parse_number(value_text)
    return NcnnLayer(layer_type, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params)


class _BinReader:
    """Sequential reader of a ``.bin`` buffer with ncnn's load types 0 (tagged) and 1 (raw float32)."""

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.pos = 0
        self.source = source

    def _take(self, nbytes: int, what: str) -> bytes:
        if self.pos + nbytes > len(self.data):
            raise ConfigError(f"ncnn weights {self.source} end early: {what} needs {nbytes} bytes at offset "
                              f"{self.pos} of {len(self.data)} (the .bin does not match the .param)")
        chunk = self.data[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def raw(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self._take(4 * count, what), "<f4").astype(np.float32)

    def tagged(self, count: int, what: str) -> np.ndarray:
        tag_bytes = self._take(4, what)
        tag = int.from_bytes(tag_bytes, "little")
        if tag == TAG_FP16:
            data = self._take(_align4(2 * count), what)
            return np.frombuffer(data[:2 * count], "<f2").astype(np.float32)
        if tag == TAG_INT8:
            data = self._take(_align4(count), what)
            return np.frombuffer(data[:count], np.int8).astype(np.float32)
        if tag in (0, TAG_FP32_SCALED):
            return self.raw(count, what)
        if tag_bytes[0] == 0:  # sum of bytes non-zero but f0 == 0 cannot happen with a real quantised table
            raise ConfigError(f"ncnn weights {self.source}: unknown tag 0x{tag:08X} for {what}")
        table = np.frombuffer(self._take(256 * 4, what), "<f4")
        indices = np.frombuffer(self._take(_align4(count), what)[:count], np.uint8)
        return table[indices].astype(np.float32)


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _read_layer_weights(layer: NcnnLayer, reader: _BinReader) -> None:
    t = layer.type
    what = f"layer {layer.name} ({t})"
    if t in ("Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise"):
        if layer.int_param(19) == 1:  # dynamic_weight: the weight is an input blob
            return
        if layer.int_param(8) != 0:
            raise ConfigError(f"ncnn {what}: int8-quantised convolutions (int8_scale_term) are not supported")
        num_output, size = layer.int_param(0), layer.int_param(6)
        kw = layer.int_param(1)
        kh = layer.int_param(11, kw)
        weight = reader.tagged(size, what)
        if num_output <= 0 or size % (num_output * kh * kw):
            raise ConfigError(f"ncnn {what}: weight_data_size {size} is not num_output {num_output} x {kh}x{kw} x n")
        if t == "Convolution" or t == "ConvolutionDepthWise":
            weight = weight.reshape(num_output, size // (num_output * kh * kw), kh, kw)
        layer.weights["weight"] = weight
        if layer.int_param(5):
            layer.weights["bias"] = reader.raw(num_output, what + " bias")
    elif t == "InnerProduct":
        if layer.int_param(8) != 0:
            raise ConfigError(f"ncnn {what}: int8-quantised inner products are not supported")
        num_output, size = layer.int_param(0), layer.int_param(2)
        layer.weights["weight"] = reader.tagged(size, what).reshape(num_output, -1)
        if layer.int_param(1):
            layer.weights["bias"] = reader.raw(num_output, what + " bias")
    elif t == "BatchNorm":
        channels = layer.int_param(0)
        for key in ("slope", "mean", "var", "bias"):
            layer.weights[key] = reader.raw(channels, f"{what} {key}")
    elif t == "Scale":
        size = layer.int_param(0)
        if size != -233:  # -233: the scale is a second input blob
            layer.weights["scale"] = reader.raw(size, what)
        if layer.int_param(1):
            layer.weights["bias"] = reader.raw(size, what + " bias")
    elif t == "Bias":
        layer.weights["bias"] = reader.raw(layer.int_param(0), what)
    elif t == "PReLU":
        layer.weights["slope"] = reader.raw(layer.int_param(0), what)
    elif t == "MemoryData":
        w, h, d, c = layer.int_param(0), layer.int_param(1), layer.int_param(11), layer.int_param(2)
        shape = tuple(s for s in (c, d, h, w) if s > 0)
        layer.weights["data"] = reader.raw(int(np.prod(shape)) if shape else 0, what).reshape(shape)


def read_ncnn(param_path: str | Path, bin_path: str | Path) -> NcnnModel:
    """Read an ncnn model: every layer of ``param_path`` in order, with numpy float32 weights from ``bin_path``.

    Convolution / ConvolutionDepthWise weights come as ``(out, in/groups, kh, kw)`` arrays, biases as ``(out,)``.
    Raises a one-line :class:`ConfigError` when a file is missing, malformed, or the two do not match.
    """
    param_path, bin_path = Path(param_path), Path(bin_path)
    try:
        text = param_path.read_text(encoding="utf-8")
        data = bin_path.read_bytes()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read ncnn model {param_path.name}/{bin_path.name}: {reason(exc)}") from None
    layers, blob_count = parse_param(text, str(param_path))
    reader = _BinReader(data, str(bin_path))
    for layer in layers:
        _read_layer_weights(layer, reader)
    if reader.pos != len(data):
        types = ", ".join(sorted({layer.type for layer in layers}))
        raise ConfigError(f"ncnn weights {bin_path} hold {len(data) - reader.pos} bytes more than the layers of "
                          f"{param_path.name} use (layer types: {types})")
    return NcnnModel(layers, blob_count)
