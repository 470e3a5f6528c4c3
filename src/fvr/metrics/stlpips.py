"""ST-LPIPS: the shift-tolerant LPIPS of Ghildyal & Liu (ECCV 2022), AlexNet variant, re-implemented in torch.

The ``stlpips-pytorch`` package (v0.0.2) ships the trained weights (``weights/vST0.0/alex_shift_tolerant.pth``)
but its code imports torchvision, torchsummary and IPython, none of which fvr may depend on. This module rebuilds
exactly the network that ``stlpips.LPIPS(net="alex", variant="shift_tolerant")`` builds
(``invariant_networks.alexnet(variant="shift_tolerant")``, "antialiased blur-pool, reflection pad 2, conv1 stride
1, blur after") and loads that file with ``strict=True``; only the file is taken from the package.

Network (layer indices as in the package's ``features`` Sequential, which the state-dict keys carry):

- slice1: 0 Conv 3->64 k11 s1 p2 · 1 BlurPool(64) · 2 ReLU                          -> relu1 (64 ch, /2)
- slice2: 3 MaxPool k3 s1 · 4 BlurPool(64) · 5 Conv 64->192 k5 p2 · 6 ReLU          -> relu2 (192 ch, /4)
- slice3: 7 MaxPool k3 s1 · 8 BlurPool(192) · 9 Conv 192->384 k3 p1 · 10 ReLU       -> relu3 (384 ch, /8)
- slice4: 11 Conv 384->256 k3 p1 · 12 ReLU                                          -> relu4 (256 ch, /8)
- slice5: 13 Conv 256->256 k3 p1 · 14 ReLU                                          -> relu5 (256 ch, /8)

BlurPool = the package's ``Downsample(filt_size=3, stride=2, pad_more=True)``: reflection padding of 2 on every
side, then the normalised binomial [1, 2, 1] ⊗ [1, 2, 1] / 16 filter, depthwise, stride 2. The package builds
the network's tail (MaxPool, BlurPool after relu5) too but never uses it; the weight file does not hold it.

Distance (the package's ``LPIPS.forward``, version "0.1", ``lpips=True``, ``spatial=False``): inputs in [-1, 1]
are scaled by the ScalingLayer ((x - shift) / scale, both from the weight file); for each layer k the features
are unit-normalised over channels (f / (‖f‖₂ + 1e-10)), the squared difference is weighted per channel by the
linear head w_k (a 1x1 conv, no bias; dropout is inactive at evaluation) and averaged over space; the five
averages are summed.

Speed: the stride-1 conv1 at full resolution and the BlurPool after it cost most of the time; they are computed
as one stride-2 13x13 conv with exact border handling (:meth:`AlexShiftTolerant.conv1_blurpool`), which gives the
same features up to float rounding (about 1e-6) at a fifth of the cost. The tests compare distances with the
package's own code to 1e-5.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fvr.metrics.deps import package_file

WEIGHTS = "weights/vST0.0/alex_shift_tolerant.pth"
CHANNELS = (64, 192, 384, 256, 256)
# smallest side for which the fused conv1 + BlurPool path is used (its border strips need 17 pixels)
_FUSED_MIN = 32


class BlurPool(nn.Module):
    """Anti-aliased stride-2 down-sampling: reflect-pad 2, normalised binomial 3x3 blur (depthwise), stride 2."""

    filt: torch.Tensor  # (C, 1, 3, 3) float32 buffer, the same normalised kernel per channel

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = a[:, None] * a[None, :]
        self.register_buffer("filt", (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


def _seq(layers: dict[int, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict((str(k), v) for k, v in layers.items()))


class AlexShiftTolerant(nn.Module):
    """The shift-tolerant AlexNet trunk; ``forward`` returns the five ReLU feature maps."""

    def __init__(self) -> None:
        super().__init__()
        relu = nn.ReLU  # in place, as the package: each ReLU follows a layer whose output nothing else reads
        self.slice1 = _seq({0: nn.Conv2d(3, 64, 11, stride=1, padding=2), 1: BlurPool(64), 2: relu(inplace=True)})
        self.slice2 = _seq(
            {3: nn.MaxPool2d(3, stride=1), 4: BlurPool(64), 5: nn.Conv2d(64, 192, 5, padding=2), 6: relu(inplace=True)}
        )
        self.slice3 = _seq(
            {7: nn.MaxPool2d(3, stride=1), 8: BlurPool(192), 9: nn.Conv2d(192, 384, 3, padding=1), 10: relu(True)}
        )
        self.slice4 = _seq({11: nn.Conv2d(384, 256, 3, padding=1), 12: relu(inplace=True)})
        self.slice5 = _seq({13: nn.Conv2d(256, 256, 3, padding=1), 14: relu(inplace=True)})

    def forward(self, x: torch.Tensor, *, fused: bool = True) -> list[torch.Tensor]:
        """relu1..relu5 for a batch (N, 3, H, W). ``fused``: compute conv1 + BlurPool as one stride-2 conv
        (:meth:`conv1_blurpool`); the same values up to float rounding, about twice as fast."""
        if fused and min(x.shape[2:]) >= _FUSED_MIN:
            x = self.slice1[2](self.conv1_blurpool(x))
        else:
            x = self.slice1(x)
        outs = [x]
        for s in (self.slice2, self.slice3, self.slice4, self.slice5):
            x = s(x)
            outs.append(x)
        return outs

    def conv1_blurpool(self, x: torch.Tensor) -> torch.Tensor:
        """slice1's conv (11x11, stride 1, zero padding 2) followed by its BlurPool, computed at stride 2.

        Both are linear, so away from the borders they equal one 13x13 conv (the conv kernel convolved with the
        3x3 binomial) with stride 2 and zero padding 4. The BlurPool's reflection padding acts on the conv output,
        which that conv does not reproduce at the borders: output row 0 reads conv rows (2, 1, 0) there, so it
        equals row 1 (the taps are symmetric); the last row and column are computed the exact way on a 16- or
        17-pixel strip at the bottom and at the right of the input, whose parity keeps the stride aligned.
        """
        # the layers __init__ put there (a Sequential's items type as plain Modules)
        conv, blur = cast(nn.Conv2d, self.slice1[0]), cast(BlurPool, self.slice1[1])
        c_out, c_in, k, _ = conv.weight.shape
        taps = blur.filt[:1]  # (1, 1, 3, 3), the same for every channel; symmetric, so no flip is needed
        kernel = F.conv2d(conv.weight.reshape(c_out * c_in, 1, k, k), taps, padding=2)
        kernel = kernel.reshape(c_out, c_in, k + 2, k + 2).contiguous(memory_format=torch.channels_last)
        pad = conv.padding[0]
        if isinstance(pad, str):  # conv1 is built with padding=2, never "same"/"valid"
            raise TypeError(f"conv1 needs a numeric padding, got {conv.padding!r}")
        out = F.conv2d(x, kernel, conv.bias, stride=2, padding=pad + 2)
        h, w = x.shape[2:]
        hs, ws = 16 + h % 2, 16 + w % 2
        out[:, :, :, -1:] = self.slice1[1](self.slice1[0](x[:, :, :, w - ws :]))[:, :, :, -1:]
        out[:, :, -1:, :] = self.slice1[1](self.slice1[0](x[:, :, h - hs :, :]))[:, :, -1:, :]
        out[:, :, :, :1] = out[:, :, :, 1:2]
        out[:, :, :1, :] = out[:, :, 1:2, :]
        return out


class ScalingLayer(nn.Module):
    """(x - shift) / scale per RGB channel (LPIPS v0.1 input normalisation); values come from the weight file."""

    shift: torch.Tensor  # (1, 3, 1, 1) float32 buffer
    scale: torch.Tensor  # (1, 3, 1, 1) float32 buffer

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class LinearHead(nn.Module):
    """The per-layer 1x1 conv (no bias) weighting squared feature differences; index 0 was the dropout."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(OrderedDict([("0", nn.Identity()), ("1", nn.Conv2d(channels, 1, 1, bias=False))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def normalize_channels(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """f / (‖f‖₂ over channels + eps), as LPIPS' ``normalize_tensor``."""
    return f / (torch.sqrt(torch.sum(f * f, dim=1, keepdim=True)) + eps)


class STLPIPSNet(nn.Module):
    """Scaling layer, trunk and linear heads; the state-dict keys are those of the package's weight file."""

    def __init__(self) -> None:
        super().__init__()
        self.scaling_layer = ScalingLayer()
        self.net = AlexShiftTolerant()
        self.lin0 = LinearHead(CHANNELS[0])
        self.lin1 = LinearHead(CHANNELS[1])
        self.lin2 = LinearHead(CHANNELS[2])
        self.lin3 = LinearHead(CHANNELS[3])
        self.lin4 = LinearHead(CHANNELS[4])

    def heads(self) -> list[LinearHead]:
        return [self.lin0, self.lin1, self.lin2, self.lin3, self.lin4]

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """Distances (N,) between two batches (N, 3, H, W) in [-1, 1]; both are run through the trunk together."""
        n = x0.shape[0]
        feats = self.net(self.scaling_layer(torch.cat([x0, x1], dim=0)))
        total = torch.zeros(n, dtype=x0.dtype, device=x0.device)
        for f, head in zip(feats, self.heads()):
            f = normalize_channels(f)
            d = (f[:n] - f[n:]) ** 2
            total = total + head(d).mean(dim=(1, 2, 3))
        return total


def default_weights() -> Path:
    """The AlexNet shift-tolerant weight file inside the installed stlpips-pytorch package."""
    return package_file("stlpips_pytorch", WEIGHTS, "ST-LPIPS")


def load_stlpips_net(path: str | Path | None = None) -> STLPIPSNet:
    """An :class:`STLPIPSNet` in eval mode with the package's weights loaded (``strict=True``)."""
    state = torch.load(str(path or default_weights()), map_location="cpu", weights_only=True)
    net = STLPIPSNet()
    net.load_state_dict(state, strict=True)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def to_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB (H, W, 3) or (N, H, W, 3) -> float32 (N, 3, H, W) in [-1, 1] (x / 127.5 - 1, as the package's
    ``im2tensor``); a float torch tensor (3, H, W) or (N, 3, H, W) is taken as already in [-1, 1]."""
    if isinstance(images, torch.Tensor):
        t = images.float()
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"expected a (N, 3, H, W) tensor in [-1, 1], got shape {tuple(images.shape)}")
        return t
    a = np.asarray(images)
    if a.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB images, got {a.dtype}")
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[3] != 3:
        raise ValueError(f"expected (H, W, 3) or (N, H, W, 3) RGB images, got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class STLPIPS:
    """ST-LPIPS distance (lower is better, ↓; unitless, 0 for identical images, typically 0-1).

    d(a, b) = Σ_k mean_hw ( w_k · (f̂_k(a) − f̂_k(b))² ), f̂_k = channel-unit-normalised ReLU features of layer k of the
    shift-tolerant AlexNet (see the module docstring). Not comparable with standard LPIPS values.

    Inputs: uint8 RGB (H, W, 3) images, or float torch tensors (N, 3, H, W) in [-1, 1]; a and b must match in
    shape; H, W >= 32. The network is loaded once, on first use; evaluation runs under ``torch.inference_mode``.
    Instances are thread-safe for loading but torch itself uses all the threads it is given.
    """

    def __init__(self, weights: str | Path | None = None, *, batch_size: int = 4):
        self._weights = weights
        self._net: STLPIPSNet | None = None
        self._lock = threading.Lock()
        self.batch_size = max(1, int(batch_size))

    @property
    def net(self) -> STLPIPSNet:
        if self._net is None:
            with self._lock:
                if self._net is None:
                    # Module.to takes memory_format at run time; torch's overloads of Module.to leave it out
                    self._net = load_stlpips_net(self._weights).to(  # type: ignore[call-overload]
                        memory_format=torch.channels_last)
        return self._net

    def __call__(self, a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
        """The distance between two images (see the class docstring)."""
        d = self.batch(a, b)
        if d.shape != (1,):
            raise ValueError("STLPIPS(a, b) compares one pair; use .batch for several")
        return float(d[0])

    def batch(self, a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
        """Distances (N,) float64 between paired batches: uint8 (N, H, W, 3) or tensors (N, 3, H, W) in [-1, 1]."""
        x0, x1 = to_tensor(a), to_tensor(b)
        if x0.shape != x1.shape:
            raise ValueError(f"ST-LPIPS inputs differ in shape: {tuple(x0.shape)} vs {tuple(x1.shape)}")
        if min(x0.shape[2:]) < 32:
            raise ValueError(f"ST-LPIPS needs images of at least 32 x 32 pixels, got {tuple(x0.shape[2:])}")
        net = self.net
        out = []
        with torch.inference_mode():
            for i in range(0, x0.shape[0], self.batch_size):
                c0 = x0[i : i + self.batch_size].contiguous(memory_format=torch.channels_last)
                c1 = x1[i : i + self.batch_size].contiguous(memory_format=torch.channels_last)
                out.append(net(c0, c1).double().cpu().numpy())
        return np.concatenate(out)
