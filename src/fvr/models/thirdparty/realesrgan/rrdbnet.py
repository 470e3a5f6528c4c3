"""RRDBNet — the ESRGAN / Real-ESRGAN generator — in plain torch, and its weights converted from ncnn files.

The module layout and parameter names are those of the public ``RRDBNet_arch`` (BasicSR / Real-ESRGAN):
``conv_first``, ``body.N.rdb{1,2,3}.conv{1..5}``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``,
``conv_last``, so a state dict of the original PyTorch release (converted to safetensors) loads as is.

:func:`rrdbnet_from_ncnn` maps an ncnn export of the network onto those names: its Convolution layers, in graph
order, are exactly the network's convolutions in module order (conv_first; per block rdb1..rdb3 conv1..conv5;
conv_body, conv_up1, conv_up2, conv_hr, conv_last), and every other layer (Split, Concat, the 0.2-scaled residual
Eltwise sums, the global skip BinaryOp, the two nearest x2 Interp) is checked against what the torch module does.
:func:`cached_rrdbnet_from_ncnn` converts once and keeps the result as safetensors (no pickle anywhere).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fvr.errors import ConfigError
from fvr.models.formats.ncnn import NcnnLayer, NcnnModel, read_ncnn
from fvr.models.formats.state import (
    cache_target,
    load_safetensors_state,
    load_state_checked,
    save_cached_state,
)

log = logging.getLogger(__name__)

CONVERTER_VERSION = "1"
_LRELU = 0.2
_RESIDUAL = 0.2


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs with dense connections (growth ``num_grow_ch``); output = x + 0.2 * conv5(...)."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        g = num_grow_ch
        self.conv1 = nn.Conv2d(num_feat, g, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + g, g, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * g, g, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * g, g, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * g, num_feat, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x1 = F.leaky_relu(self.conv1(x), _LRELU)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), _LRELU)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), _LRELU)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), _LRELU)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * _RESIDUAL + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, output = x + 0.2 * rdb3(rdb2(rdb1(x)))."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * _RESIDUAL + x


class RRDBNet(nn.Module):
    """x4 generator: (N, num_in_ch, h, w) -> (N, num_out_ch, 4h, 4w). Real-ESRGAN x4plus is the default config."""

    scale = 4

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32):
        super().__init__()
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), _LRELU)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), _LRELU)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), _LRELU))

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor], source: str = "state dict") -> RRDBNet:
        """Build a network sized to ``state`` (block count, widths inferred) and load it strictly."""
        try:
            model = cls(**rrdbnet_config(state))
        except KeyError as exc:
            raise ConfigError(f"{source} is not an RRDBNet state dict: no {exc.args[0]} (expected conv_first, "
                              "body.N.rdbK.convJ, conv_body, conv_up1/2, conv_hr, conv_last)") from None
        load_state_checked(model, state, source, network="RRDBNet", dtype=torch.float32)
        return model


def rrdbnet_config(state: dict[str, Tensor]) -> dict[str, int]:
    """RRDBNet constructor arguments that match the shapes in ``state``."""
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))}
    return {
        "num_in_ch": int(state["conv_first.weight"].shape[1]),
        "num_out_ch": int(state["conv_last.weight"].shape[0]),
        "num_feat": int(state["conv_first.weight"].shape[0]),
        "num_block": max(blocks) + 1 if blocks else 0,
        "num_grow_ch": int(state["body.0.rdb1.conv1.weight"].shape[0]) if blocks else 32,
    }


# --- ncnn -> torch ------------------------------------------------------------------------------------------------

_GRAPH_TYPES = {"Input", "Convolution", "Split", "Concat", "Eltwise", "BinaryOp", "Interp"}
_LEAKY = ("conv1", "conv2", "conv3", "conv4", "conv_up1", "conv_up2", "conv_hr")


def rrdbnet_from_ncnn(param_path: str | Path, bin_path: str | Path) -> dict[str, Tensor]:
    """Convert an ncnn export of RRDBNet (e.g. Real-ESRGAN x4plus) to an RRDBNet state dict (float32).

    The graph is checked layer by layer (types, counts, conv geometry and activations, residual coefficients,
    nearest x2 up-sampling); anything RRDBNet does not do — an input normalisation, another activation, another
    up-sampler — is a one-line :class:`ConfigError` rather than a silently different network.
    """
    model = read_ncnn(param_path, bin_path)
    src = Path(param_path).name
    convs = _check_graph(model, src)
    n_block = (len(convs) - 6) // 15
    first = convs[0].weights["weight"]
    reference = RRDBNet(num_in_ch=first.shape[1], num_out_ch=convs[-1].int_param(0), num_feat=first.shape[0],
                        num_block=n_block, num_grow_ch=convs[1].int_param(0) if n_block else 32)
    names = [k[: -len(".weight")] for k in reference.state_dict() if k.endswith(".weight")]
    if len(names) != len(convs):  # cannot happen given the count check; kept as an invariant
        raise ConfigError(f"{src}: {len(convs)} convolutions for {len(names)} RRDBNet convs")
    state: dict[str, Tensor] = {}
    ref_state = reference.state_dict()
    for name, layer in zip(names, convs):
        _check_conv(layer, name, src)
        weight, bias = layer.weights["weight"], layer.weights.get("bias")
        if bias is None:
            raise ConfigError(f"{src}: {layer.name} ({name}) has no bias; RRDBNet convs have one")
        for key, value in ((f"{name}.weight", weight), (f"{name}.bias", bias)):
            if tuple(value.shape) != tuple(ref_state[key].shape):
                raise ConfigError(f"{src}: {layer.name} maps to {key} but has shape {tuple(value.shape)}, "
                                  f"expected {tuple(ref_state[key].shape)}")
            state[key] = torch.from_numpy(value.copy())
    return state


def _check_graph(model: NcnnModel, src: str) -> list[NcnnLayer]:
    odd = sorted({layer.type for layer in model.layers} - _GRAPH_TYPES)
    if odd:
        raise ConfigError(f"{src}: layer type(s) {', '.join(odd)} are not part of RRDBNet "
                          f"(expected only {', '.join(sorted(_GRAPH_TYPES))})")
    convs = model.of_type("Convolution")
    if len(convs) < 6 or (len(convs) - 6) % 15:
        raise ConfigError(f"{src}: {len(convs)} convolutions; RRDBNet has 15 per block + 6")
    n_block = (len(convs) - 6) // 15
    counts = {"Input": 1, "Eltwise": 4 * n_block, "Concat": 12 * n_block, "BinaryOp": 1, "Interp": 2}
    for layer_type, expected in counts.items():
        got = len(model.of_type(layer_type))
        if got != expected:
            raise ConfigError(f"{src}: {got} {layer_type} layers, expected {expected} for {n_block} RRDB blocks")
    inputs, outputs = model.input_blobs, model.output_blobs
    if len(outputs) != 1 or convs[0].inputs != tuple(inputs) or convs[-1].outputs != tuple(outputs):
        raise ConfigError(f"{src}: the first/last convolutions are not the graph's input/output")
    for layer in model.of_type("Eltwise"):
        coeffs = layer.array_param(1)
        if layer.int_param(0) != 1 or len(coeffs) != 2 or abs(coeffs[0] - _RESIDUAL) > 1e-6 or coeffs[1] != 1.0:
            raise ConfigError(f"{src}: {layer.name} is not the residual sum 0.2 * x + skip "
                              f"(op {layer.param(0)}, coefficients {layer.param(1)})")
    skip = model.of_type("BinaryOp")[0]
    if skip.int_param(0) != 0 or convs[-5].outputs[0] not in skip.inputs or convs[0].outputs[0] not in \
            _split_sources(model, skip.inputs):
        raise ConfigError(f"{src}: {skip.name} is not the global skip conv_first + conv_body")
    for layer in model.of_type("Interp"):
        if layer.int_param(0) != 1 or layer.param(1) != 2.0 or layer.param(2) != 2.0:
            raise ConfigError(f"{src}: {layer.name} is not a nearest x2 up-sampling "
                              f"(resize_type {layer.param(0)}, scales {layer.param(1)}, {layer.param(2)})")
    producers = {b: layer for layer in model.layers for b in layer.outputs}
    for index in (-4, -3):  # conv_up1, conv_up2 read an Interp
        if producers[convs[index].inputs[0]].type != "Interp":
            raise ConfigError(f"{src}: {convs[index].name} does not follow a nearest x2 Interp")
    return convs


def _split_sources(model: NcnnModel, blobs: tuple[str, ...]) -> set[str]:
    """Blobs, with Split outputs traced back to the blob that was split."""
    split_of = {out: layer.inputs[0] for layer in model.of_type("Split") for out in layer.outputs}
    return {split_of.get(b, b) for b in blobs}


def _check_conv(layer: NcnnLayer, name: str, src: str) -> None:
    geometry = {"kernel": (layer.int_param(1), layer.int_param(11, layer.int_param(1))),
                "stride": (layer.int_param(3, 1), layer.int_param(13, layer.int_param(3, 1))),
                "dilation": (layer.int_param(2, 1), layer.int_param(12, layer.int_param(2, 1))),
                "pad": (layer.int_param(4), layer.int_param(14, layer.int_param(4)))}
    expected = {"kernel": (3, 3), "stride": (1, 1), "dilation": (1, 1), "pad": (1, 1)}
    if geometry != expected or layer.int_param(15, layer.int_param(4)) != 1 or \
            layer.int_param(16, layer.int_param(14, layer.int_param(4))) != 1:
        raise ConfigError(f"{src}: {layer.name} ({name}) is not a 3x3 stride-1 pad-1 convolution: {geometry}")
    act = layer.int_param(9)
    leaky = name.rsplit(".", 1)[-1] in _LEAKY
    params = layer.array_param(10)
    if leaky and not (act == 2 and len(params) == 1 and abs(params[0] - _LRELU) < 1e-6):
        raise ConfigError(f"{src}: {layer.name} ({name}) should end in LeakyReLU(0.2), has activation {act} {params}")
    if not leaky and act != 0:
        raise ConfigError(f"{src}: {layer.name} ({name}) should have no activation, has activation {act}")


# --- cache --------------------------------------------------------------------------------------------------------

def cached_rrdbnet_from_ncnn(param_path: str | Path, bin_path: str | Path,
                             cache: str | Path | None = None) -> dict[str, Tensor]:
    """:func:`rrdbnet_from_ncnn`, converted once and kept as ``<cache>/<stem>-<sha256[:16]>.safetensors``.

    The key is the sha256 of both source files (and the converter version), so a changed file converts again. A
    corrupt cache file is converted again and replaced; an unwritable cache only costs the conversion each time.
    """
    param_path, bin_path = Path(param_path), Path(bin_path)
    target, key = cache_target(param_path, bin_path, cache, version=CONVERTER_VERSION)
    if target.is_file():
        try:
            return load_safetensors_state(target, "an RRDBNet state dict")
        except ConfigError as exc:
            log.warning("converting again: %s", exc)
    state = rrdbnet_from_ncnn(param_path, bin_path)
    save_cached_state(state, target, {"source": bin_path.name, "sha256_key": key,
                                      "converter": f"fvr.models.thirdparty.realesrgan.rrdbnet v{CONVERTER_VERSION}"})
    return state
