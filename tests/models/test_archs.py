"""Every learned architecture against the shared contract, on its `tiny` preset (32² crops).

One parametrised suite so that a new architecture is tested the moment it is listed in ``ARCH_MODULES``:
taxonomy spec and registry names, output shapes, causality where claimed, the restorer contract, a weight-file
round trip and ONNX parity for feed-forward networks. The 50-step overfit of each architecture is in its
family's test file (test_nets_cnn.py, test_nets_temporal.py, test_nets_generative.py), on data its degradation
model can learn.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fvr.errors import ConfigError
from fvr.export import onnx_parity
from fvr.faces import face_template
from fvr.models import KINDS, TEMPORAL_STRATEGIES, builtin_registry
from fvr.models.nets import architectures, load_weights, save_weights
from fvr.models.nets.core import TorchRestorer
from fvr.models.nets.prior import landmark_prior
from fvr.models.nets.stabiliser import StabiliserNet

ARCHS = architectures()
NAMES = sorted(ARCHS)
SIZE = 32


def _clip(t: int, seed: int = 0, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random (1, T, 3, S, S) clip in [0, 1] and (1, T, 5, 2) landmarks of the aligned template."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 1, 3, size // 4, size // 4, generator=g)
    frames = []
    for i in range(t):
        shifted = torch.roll(base, shifts=i % 2, dims=-1)
        frames.append(torch.nn.functional.interpolate(shifted[0], size=(size, size), mode="bilinear",
                                                      align_corners=False))
    x = torch.stack(frames, 1).clamp(0, 1)
    lm = torch.from_numpy(face_template(size)).float().view(1, 1, 5, 2).repeat(1, t, 1, 1)
    return x, lm


def _tiny(name: str):
    arch = ARCHS[name]
    size, config = arch.preset("tiny")
    torch.manual_seed(0)
    net = _bound(arch.build(config).eval())
    return arch, size, config, net


def _bound(net):
    """The network, with the base model resolver a stabiliser network needs (it runs a frozen base model by
    name, which a registry builds: fvr train and the registry bind it the same way)."""
    if isinstance(net, StabiliserNet):
        net.set_base_resolver(builtin_registry(plugins=False).base_restorer)
    return net


def _run(arch, net, x, lm):
    _bound(net)
    prior = landmark_prior(lm, x.shape[-1]) if arch.uses_prior else None
    return net(x, prior)


def _length(arch, config) -> int:
    past, future = arch.context(config)
    return max(3, min(past + future + 1, 5))


@pytest.mark.parametrize("name", NAMES)
def test_fast_preset_runs_at_its_own_crop_size(name):
    """A preset's crop size and its network (and any model it wraps) must agree: `fvr train` and
    scripts/bench_models.py build the preset as it is declared."""
    arch = ARCHS[name]
    size, config = arch.preset("fast")
    torch.manual_seed(0)
    net = arch.build(config).eval()
    x, lm = _clip(_length(arch, config), size=size)
    with torch.inference_mode():
        y = _run(arch, net, x, lm)
    assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_spec_and_registry(name):
    arch = ARCHS[name]
    assert arch.kind in KINDS and arch.temporal in TEMPORAL_STRATEGIES
    assert {"fast", "quality", "tiny"} <= set(arch.presets)
    assert arch.presets["fast"][0] == 128 and arch.presets["quality"][0] in (256, 512)
    registry = builtin_registry(plugins=False)
    for reg_name in (name, f"{name}-fast"):
        spec = registry.spec(reg_name)
        assert spec.kind == arch.kind and spec.temporal == arch.temporal
    assert registry.spec(f"{name}-fast").crop_size == 128
    with pytest.raises(ConfigError, match="no trained weights"):
        registry.create(f"{name}-fast")


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_range(name):
    arch, size, config, net = _tiny(name)
    x, lm = _clip(_length(arch, config))
    with torch.no_grad():
        y = _run(arch, net, x, lm)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", [n for n in NAMES if ARCHS[n].context(ARCHS[n].presets["tiny"][1])[1] == 0])
def test_causal_models_never_read_the_future(name):
    arch, size, config, net = _tiny(name)
    x, lm = _clip(5)
    with torch.no_grad():
        y = _run(arch, net, x, lm)
        for t in range(4):
            x2 = x.clone()
            x2[:, t + 1:] = torch.rand_like(x2[:, t + 1:])
            y2 = _run(arch, net, x2, lm)
            assert torch.allclose(y[:, : t + 1], y2[:, : t + 1], atol=1e-6), f"output {t} read a later frame"


@pytest.mark.parametrize("name", NAMES)
def test_restorer_contract_and_weight_round_trip(name, tmp_path):
    arch, size, config, net = _tiny(name)
    spec = arch.restorer_spec("tiny", name=name, config=config)
    restorer = TorchRestorer(spec, net, uses_prior=arch.uses_prior)
    t = _length(arch, config)
    x, lm = _clip(t, seed=1)
    clip = x[0].numpy().astype(np.float32)
    out = restorer(clip, lm[0].numpy())
    assert out.shape == clip.shape and out.min() >= 0.0 and out.max() <= 1.0
    path = save_weights(tmp_path / f"{name}.safetensors", arch, config, net, size, "tiny")
    loaded = load_weights(path, ARCHS)
    assert loaded.arch.name == name and loaded.crop_size == size
    with torch.no_grad():
        assert torch.equal(_run(arch, net, x, lm), _run(arch, loaded.net, x, lm))
    # the registry loads the same file by path (what `fvr restore --model FILE.safetensors` does); float32, as the
    # network above (pretrained priors compute in bfloat16 by default where the CPU has it)
    again = builtin_registry(plugins=False).create(str(path), precision="float32")
    np.testing.assert_allclose(again(clip, lm[0].numpy()), out, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in NAMES if ARCHS[n].feed_forward])
def test_onnx_parity(name):
    pytest.importorskip("onnxruntime")
    arch, size, config, net = _tiny(name)
    x, lm = _clip(_length(arch, config), seed=2)
    prior = landmark_prior(lm, size) if arch.uses_prior else None
    args = (x,) if prior is None else (x, prior)
    assert onnx_parity(net, args) <= 1e-4
