"""``stabiliser``: a small learned temporal-consistency network around a frozen per-frame restorer.

It refines what the training-free stabiliser (:func:`fvr.models.temporal.stabilise.stabilise_clip`) does. Per frame t it
sees three aligned crops,

    restored_t  the per-frame restorer's output (sharp, flickering),
    fused_t     restored neighbours flow-warped onto t and averaged (stable, softer where the flow is unsure),
    lq_t        the restorer's input (what really changed between frames),

and predicts a per-pixel blend weight m and a small correction r:

    y_t = restored_t + m · (fused_t − restored_t) + r,    m = sigmoid(·) ∈ (0, 1)

so it learns where to trust the fused estimate (still skin, hair) and where to keep the per-frame one (a blink, a
mouth opening the flow missed). The network is a few 3×3 convolutions (``channels`` wide): the temporal work is
done by the flow fusion, the network decides how much of it to use.

Training (``fvr train --config configs/stabiliser.toml``) feeds LQ clips; :meth:`StabiliserNet.forward` runs the
frozen ``base`` restorer (any registry name, e.g. ``image-baseline``; it is not part of the weights) and the flow
fusion without gradients, then the network. At restore time :class:`LearnedStabiliser` wraps *any* restorer
(``fvr restore --model M --stabilise FILE.safetensors``), and ``--model FILE.safetensors`` runs the base it was
trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from fvr.errors import ConfigError
from fvr.models.nets.core import ArchSpec

if TYPE_CHECKING:
    from fvr.models.base import Restorer
    from fvr.models.fusion import StabiliserConfig


BaseResolver = Callable[[str, str, int], "Restorer"]
"""(model name, device, crop size) -> the frozen base restorer of a stabiliser network."""


@dataclass(frozen=True)
class StabiliserNetConfig:
    """base: registry name of the frozen per-frame restorer whose outputs are stabilised during training (and by
    ``--model FILE``). window: neighbours fused on each side. channels / blocks: width and depth of the network.
    flow_preset: DIS preset of the fusion. flow_size: the fusion's flow analysis size (0 = the crop's; 256 on 512²
    crops is the training-free ``flow-fast`` setting)."""

    base: str = "image-baseline"
    window: int = 2
    channels: int = 24
    blocks: int = 3
    flow_preset: str = "fast"
    flow_size: int = 0

    def fusion(self) -> StabiliserConfig:
        """The training-free stabiliser's config of the fused estimate this network refines."""
        from fvr.models.fusion import StabiliserConfig

        return StabiliserConfig(window=self.window, flow_preset=self.flow_preset, flow_size=self.flow_size)


class StabiliserNet(nn.Module):
    """forward(x, prior=None) -> y: x (B, T, 3, S, S) LQ clip in [0, 1] -> (B, T, 3, S, S) stabilised restoration.
    :meth:`refine` is the network alone on (restored, fused, lq)."""

    def __init__(self, config: StabiliserNetConfig):
        super().__init__()
        self.config = config
        c = config.channels
        layers: list[nn.Module] = [nn.Conv2d(9, c, 3, padding=1), nn.LeakyReLU(0.1, inplace=True)]
        for _ in range(config.blocks):
            layers += [nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.1, inplace=True)]
        last = nn.Conv2d(c, 4, 3, padding=1)  # m (blend logit) and r (residual, 3 channels)
        layers.append(last)
        self.body = nn.Sequential(*layers)
        nn.init.zeros_(last.weight)
        assert last.bias is not None  # Conv2d(bias=True)
        nn.init.constant_(last.bias, 0.0)  # starts at m = 0.5, r = 0: half-way to the fused estimate
        self._base: list[Restorer] = []  # a plain list: the frozen restorer is not a sub-module (not saved)
        self._resolve_base: list[BaseResolver] = []

    def set_base(self, restorer: Restorer) -> None:
        """Use ``restorer`` (any :class:`~fvr.models.base.Restorer`) as the frozen per-frame model in forward."""
        self._base[:] = [restorer]

    def set_base_resolver(self, resolve: BaseResolver) -> None:
        """How to build the base restorer ``config.base`` names: ``resolve(name, device, crop size)``. Whoever holds a
        model registry sets it (the registry itself when it loads this network as a model, the trainer): a network
        does not build models by name on its own."""
        self._resolve_base[:] = [resolve]

    def _base_restorer(self, device: torch.device, size: int) -> Restorer:
        """The frozen base restorer for ``size``² crops (built from ``config.base`` on first use)."""
        if not self._base or self._base[0].spec.crop_size != size:
            if not self._resolve_base:
                raise RuntimeError("the stabiliser network has no base restorer: call set_base or set_base_resolver")
            self._base[:] = [self._resolve_base[0](self.config.base, device.type, size)]
        return self._base[0]

    def refine(self, restored: torch.Tensor, fused: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) each, in [0, 1] -> (N, 3, S, S) stabilised frames (not clamped)."""
        out = self.body(torch.cat([restored, fused, lq], dim=1))
        m = torch.sigmoid(out[:, :1])
        return restored + m * (fused - restored) + out[:, 1:]

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        from fvr.faces.align import face_template
        from fvr.models.fusion import stabilise_clip

        b, t, _, s, _ = x.shape
        base = self._base_restorer(x.device, s)
        fusion = self.config.fusion()
        # aligned crops: the 5 landmarks sit on the template, which is what the base restorer's prior expects
        marks = np.broadcast_to(face_template(s), (t, 5, 2)).astype(np.float32)
        restored, fused = [], []
        with torch.no_grad():
            for clip in x.detach().float().clamp(0, 1).cpu().numpy():
                r = base(np.ascontiguousarray(clip), marks)
                restored.append(r)
                fused.append(stabilise_clip(r, clip, fusion))
        rt = torch.from_numpy(np.stack(restored)).to(x.device).flatten(0, 1)
        ft = torch.from_numpy(np.stack(fused)).to(x.device).flatten(0, 1)
        return self.refine(rt, ft, x.flatten(0, 1)).view(b, t, 3, s, s)


def build_stabiliser(config: StabiliserNetConfig) -> StabiliserNet:
    if config.window < 1:
        raise ConfigError(f"stabiliser window must be >= 1, got {config.window}")
    return StabiliserNet(config)


STABILISER = ArchSpec(
    name="stabiliser", kind="cnn", temporal="window",
    description="learned temporal stabiliser: flow-fused neighbours of a frozen per-frame restorer, blended per "
                "pixel by a small CNN (wraps any restorer with --stabilise FILE)",
    config=StabiliserNetConfig, build=build_stabiliser,
    # the fast preset's base must work on its 128² crops: the shipped image baseline is a 256² model
    presets={"fast": (128, StabiliserNetConfig(base="classical", channels=16, blocks=2)),
             "quality": (256, StabiliserNetConfig()),
             "tiny": (32, StabiliserNetConfig(base="classical", window=1, channels=4, blocks=1))},
    past=lambda c: c.window, future=lambda c: c.window, tags=("stabiliser", "flow-alignment"), feed_forward=False,
)

ARCHS: tuple[ArchSpec, ...] = (STABILISER,)


class LearnedStabiliser:
    """A trained ``stabiliser`` as a :class:`fvr.models.temporal.stabilise.Stabiliser`: wraps any restorer's output.

    __call__(restored, guide): (T, 3, S, S) float32 [0, 1] each -> (T, 3, S, S). Crops of another size than the
    network was trained at are fine (it is fully convolutional); ``strength`` blends with the per-frame output.
    """

    def __init__(self, net: StabiliserNet, *, name: str, strength: float = 1.0, device: str = "cpu"):
        self.net = net.to(device).eval()
        self.name = name
        self.strength = strength
        self.device = torch.device(device)
        self.past = self.future = net.config.window

    @classmethod
    def from_file(cls, path: Path, options: dict[str, Any], *, device: str = "cpu",
                  name: str | None = None) -> LearnedStabiliser:
        """Load a trained stabiliser; ``name`` (default ``learned:FILE-STEM``) is how wrapped models are named."""
        from fvr.models.nets import architectures, load_weights

        loaded = load_weights(path, architectures(), device=device)
        if loaded.arch.name != "stabiliser":
            raise ConfigError(f"{path} holds a {loaded.arch.name!r} network, not a trained stabiliser "
                              f"(train one with configs/stabiliser.toml)")
        strength = float(options.pop("strength", 1.0))
        if options:
            raise ConfigError(f"a learned stabiliser takes only the option strength, not {', '.join(options)}")
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"stabiliser strength must be in [0, 1], got {strength}")
        return cls(loaded.net, name=name or f"learned:{path.stem}", strength=strength, device=device)  # type: ignore[arg-type]

    @torch.inference_mode()
    def __call__(self, restored: np.ndarray, guide: np.ndarray) -> np.ndarray:
        from fvr.models.fusion import stabilise_clip

        if len(restored) < 2 or self.strength == 0.0:
            return restored.astype(np.float32, copy=True)
        fused = stabilise_clip(restored, guide, self.net.config.fusion())

        def as_tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)

        r = as_tensor(restored)
        y = self.net.refine(r, as_tensor(fused), as_tensor(guide))
        y = r + self.strength * (y - r)
        return y.clamp_(0.0, 1.0).cpu().numpy()
