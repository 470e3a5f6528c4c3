"""The per-frame U-Nets (unet, unet-gan, unet-prior), the short-window model (window, window-prior) and the
face-region model (regional), on their tiny presets (32² crops, T <= 5).

Shapes, identity at initialisation, temporal context (per-frame independence, window radius), the regional
mask/window, weight round trips, ONNX parity, FLOP budgets of the fast presets and a 50-step overfit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fvr.export import onnx_parity
from fvr.faces import face_template
from fvr.models.nets import load_weights, save_weights
from fvr.models.nets import regional as regional_mod
from fvr.models.nets import unet as unet_mod
from fvr.models.nets import window as window_mod
from fvr.models.nets.core import TorchRestorer
from fvr.models.nets.prior import landmark_prior

ARCHS = {a.name: a for mod in (unet_mod, window_mod, regional_mod) for a in mod.ARCHS}
NAMES = sorted(ARCHS)
SIZE = 32


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The CI box is shared: one intra-op thread is faster than fighting for cores (and deterministic)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _landmarks(t: int, size: int = SIZE, b: int = 1) -> torch.Tensor:
    return torch.from_numpy(face_template(size)).float().view(1, 1, 5, 2).repeat(b, t, 1, 1)


def _smooth_clip(t: int, seed: int, size: int = SIZE, b: int = 1) -> torch.Tensor:
    """(B, T, 3, S, S) smooth random frames in [0, 1], drifting one pixel per frame (a little motion)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(b, 3, 5, 5, generator=g)
    big = F.interpolate(base, size=(size + t, size + t), mode="bicubic", align_corners=False).clamp(0, 1)
    return torch.stack([big[:, :, i:i + size, i:i + size] for i in range(t)], dim=1)


def _tiny(name: str, perturb: bool = False):
    """(arch, config, net) for the tiny preset; ``perturb`` adds small noise to every weight so the zero-initialised
    last layers and flow heads are non-zero (otherwise the network is the identity and many checks are vacuous)."""
    arch = ARCHS[name]
    size, config = arch.preset("tiny")
    assert size == SIZE
    torch.manual_seed(0)
    net = arch.build(config).eval()
    if perturb:
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return arch, config, net


def _prior(arch, lm: torch.Tensor) -> torch.Tensor | None:
    return landmark_prior(lm, SIZE) if arch.uses_prior else None


def _t(arch, config) -> int:
    past, future = arch.context(config)
    return max(3, min(past + future + 1, 5))


# ----------------------------------------------------------------------------------------------- specs


def test_specs():
    assert set(NAMES) == {"unet", "unet-gan", "unet-prior", "window", "window-prior", "regional"}
    expect = {
        "unet": ("cnn", "per-frame", ("baseline", "image"), False),
        "unet-gan": ("gan", "per-frame", ("baseline", "image", "adversarial"), False),
        "unet-prior": ("cnn", "per-frame", ("prior-driven", "landmark-heatmaps", "component-masks"), True),
        "window": ("cnn", "window", ("flow-alignment", "fusion"), False),
        "window-prior": ("cnn", "window", ("flow-alignment", "fusion", "prior-driven"), True),
        "regional": ("cnn", "per-frame", ("face-region-specific",), True),
    }
    for name, (kind, temporal, tags, prior) in expect.items():
        arch = ARCHS[name]
        assert (arch.kind, arch.temporal, arch.tags, arch.uses_prior) == (kind, temporal, tags, prior)
        assert arch.feed_forward and arch.training_loss is None
        assert arch.presets["fast"][0] == 128 and arch.presets["quality"][0] == 256 and arch.presets["tiny"][0] == 32
        for preset in ("fast", "quality", "tiny"):
            ctx = arch.context(arch.preset(preset)[1])
            assert ctx == ((2, 2) if temporal == "window" else (0, 0))
        arch.restorer_spec("fast")  # a valid RestorerSpec
    assert ARCHS["unet-gan"].build is ARCHS["unet"].build  # same network, only the training recipe differs
    assert ARCHS["window"].context(window_mod.WindowConfig(radius=1)) == (1, 1)


# ----------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_identity_at_init(name):
    """Output (B, T, 3, S, S) float32; untrained, every model is exactly the identity (zero-initialised heads)."""
    arch, config, net = _tiny(name)
    for b, t in ((2, _t(arch, config)), (1, 1)):
        x = _smooth_clip(t, seed=1, b=b)
        with torch.no_grad():
            y = net(x, _prior(arch, _landmarks(t, b=b)))
        assert y.shape == x.shape and y.dtype == torch.float32
        torch.testing.assert_close(y, x, atol=1e-6, rtol=0)
    _, _, pnet = _tiny(name, perturb=True)
    x = _smooth_clip(3, seed=1)
    with torch.no_grad():
        y = pnet(x, _prior(arch, _landmarks(3)))
    assert torch.isfinite(y).all() and not torch.allclose(y, x)


@pytest.mark.parametrize("name", ["unet-prior", "window", "regional"])
def test_crop_sides_not_divisible_by_the_pyramid(name):
    """A crop side other than the preset's (here 30 = 2 x 15) still gives a same-size output."""
    arch, _config, net = _tiny(name, perturb=True)
    x, lm = torch.rand(1, 3, 3, 30, 30), _landmarks(3, size=30)
    with torch.no_grad():
        y = net(x, landmark_prior(lm, 30) if arch.uses_prior else None)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_prior_required():
    for name in ("unet-prior", "window-prior", "regional"):
        _, _, net = _tiny(name)
        with pytest.raises(ValueError, match="prior"):
            net(_smooth_clip(3, seed=0), None)


# ----------------------------------------------------------------------------------------------- temporal context


@pytest.mark.parametrize("name", ["unet", "unet-prior", "regional"])
def test_per_frame_models_read_only_their_frame(name):
    arch, _config, net = _tiny(name, perturb=True)
    x, lm = _smooth_clip(5, seed=2), _landmarks(5)
    with torch.no_grad():
        y = net(x, _prior(arch, lm))
        for t in range(5):
            x2 = torch.rand_like(x)
            x2[:, t] = x[:, t]
            assert torch.allclose(net(x2, _prior(arch, lm))[:, t], y[:, t], atol=1e-6, rtol=0), \
                f"output {t} read another frame"


@pytest.mark.parametrize("radius", [1, 2])
def test_window_reads_exactly_its_radius(radius):
    """Perturbing frame j changes outputs t with |t - j| <= r and no other (so past = future = r is honest)."""
    config = window_mod.WindowConfig(radius=radius, channels=8, blocks=1, scales=3, flow_ch=4, flow_levels=2)
    torch.manual_seed(0)
    net = window_mod.build_window(config).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = _smooth_clip(5, seed=3)
    with torch.no_grad():
        y = net(x)
        for j in range(5):
            x2 = x.clone()
            x2[:, j] = torch.rand_like(x2[:, j])
            y2 = net(x2)
            for t in range(5):
                same = torch.allclose(y[:, t], y2[:, t], atol=1e-6, rtol=0)
                assert same == (abs(t - j) > radius), f"r={radius}: frame {j} vs output {t}"


def test_window_edges_replicate():
    """At the clip start, the missing past neighbours are frame 0 repeated: output 0 of [f0, f1, f2] equals output 0
    of [f0, f0, f0, f1, f2]'s third frame for r = 2 (same window content: f0 f0 f0 f1 f2)."""
    _, _config, net = _tiny("window", perturb=True)
    x = _smooth_clip(3, seed=4)
    padded = torch.cat([x[:, :1], x[:, :1], x], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(net(x)[:, 0], net(padded)[:, 2], atol=1e-6, rtol=0)


def test_window_concat_fusion_and_full_res_flow():
    config = window_mod.WindowConfig(radius=1, channels=8, blocks=1, scales=2, flow_ch=4, flow_levels=2,
                                     flow_scale=1, fusion="concat")
    net = window_mod.build_window(config).eval()
    x = _smooth_clip(3, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(net(x), x, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="fusion"):
        window_mod.build_window(window_mod.WindowConfig(fusion="max"))


# ----------------------------------------------------------------------------------------------- regional


def test_regional_mask_and_window():
    config = regional_mod.RegionalConfig()
    for size in (32, 128):
        lm = _landmarks(1, size=size)
        prior = landmark_prior(lm, size)[:, 0]
        torch.testing.assert_close(regional_mod.soft_argmax(prior[:, :5]), lm[:, 0], atol=0.05, rtol=0)
        top, left, side = regional_mod.face_window(size, config)
        assert side == int(0.625 * size) and side % 4 == 0 and 0 <= top and top + side <= size
        net = regional_mod.build_regional(config)
        m = net.blend_mask(prior, top, left, side)[0, 0]
        outside = torch.ones_like(m, dtype=torch.bool)
        outside[top:top + side, left:left + side] = False
        assert m.min() >= 0 and m.max() <= 1 and m[outside].abs().max() == 0
        nose = lm[0, 0, 2].long()
        assert m[nose[1], nose[0]] == 1.0  # face centre fully heavy
        assert m[2, 2] == 0.0 and m[-3, -3] == 0.0  # corners (background) fully light
        assert 0.15 < float(m.mean()) < 0.4


def test_regional_heavy_branch_only_touches_its_window():
    _arch, config, net = _tiny("regional", perturb=True)
    x, lm = _smooth_clip(2, seed=6), _landmarks(2)
    prior = landmark_prior(lm, SIZE)
    top, left, side = regional_mod.face_window(SIZE, config)
    with torch.no_grad():
        y = net(x, prior)
        for p in net.heavy.parameters():
            p.add_(0.1 * torch.randn_like(p))
        y2 = net(x, prior)
    diff = (y - y2).abs().amax(dim=(0, 1, 2))
    inside = torch.zeros_like(diff, dtype=torch.bool)
    inside[top:top + side, left:left + side] = True
    assert diff[~inside].max() == 0 and diff[inside].max() > 1e-4


# ---------------------------------------------------------------------------------------------- weights, restorer, ONNX


@pytest.mark.parametrize("name", NAMES)
def test_weight_round_trip_and_restorer(name, tmp_path):
    arch, config, net = _tiny(name, perturb=True)
    t = _t(arch, config)
    x, lm = _smooth_clip(t, seed=7), _landmarks(t)
    path = save_weights(tmp_path / f"{name}.safetensors", arch, config, net, SIZE, "tiny")
    loaded = load_weights(path, ARCHS)
    assert loaded.arch.name == name and loaded.config == config and loaded.crop_size == SIZE
    with torch.no_grad():
        assert torch.equal(net(x, _prior(arch, lm)), loaded.net(x, _prior(arch, lm)))
    restorer = TorchRestorer(arch.restorer_spec("tiny", name=name, config=config), loaded.net,
                             uses_prior=arch.uses_prior)
    out = restorer(x[0].numpy(), lm[0].numpy())
    with torch.no_grad():
        want = net(x, _prior(arch, lm))[0].clamp(0, 1).numpy()
    np.testing.assert_allclose(out, want, atol=1e-5)


@pytest.mark.parametrize("name", ["unet", "unet-prior", "window", "window-prior", "regional"])  # unet-gan == unet
def test_onnx_parity(name):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    arch, config, net = _tiny(name, perturb=True)
    t = _t(arch, config)
    x, lm = _smooth_clip(t, seed=8), _landmarks(t)
    prior = _prior(arch, lm)
    args = (x,) if prior is None else (x, prior)
    assert onnx_parity(net, args) <= 1e-4


# ----------------------------------------------------------------------------------------------- budgets


@pytest.mark.parametrize("name, budget", [("unet", 1.0), ("unet-prior", 1.0), ("regional", 1.0), ("window", 1.5)])
def test_fast_preset_flops(name, budget):
    """GFLOP per frame at 128² (FlopCounterMode: 2 x multiply-accumulates of convs/matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    arch = ARCHS[name]
    size, config = arch.preset("fast")
    net = arch.build(config).eval()
    x, lm = torch.rand(1, 1, 3, size, size), _landmarks(1, size=size)
    prior = landmark_prior(lm, size) if arch.uses_prior else None
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x, prior)
    assert 0.3 < counter.get_total_flops() / 1e9 <= budget


# ----------------------------------------------------------------------------------------------- overfit


def _degrade(hq: torch.Tensor, seed: int) -> torch.Tensor:
    """Contrast loss (x0.6 towards grey) + 3x3 blur + Gaussian noise (sigma 0.005): mostly learnable, so a working
    network and optimiser can cut the error >= 5x on one clip. (Noise-dominated degradations cannot be cut 5x
    by any estimator in 50 steps: the noise floor is irreducible without memorising it.)"""
    g = torch.Generator().manual_seed(seed)
    blurred = F.avg_pool3d(hq, (1, 3, 3), stride=1, padding=(0, 1, 1), count_include_pad=False)
    return 0.6 * blurred + 0.2 + 0.005 * torch.randn(hq.shape, generator=g)


@pytest.mark.parametrize("name", ["unet", "unet-prior", "window", "window-prior", "regional"])  # unet-gan == unet
def test_fifty_step_overfit(name):
    arch, config, net = _tiny(name)
    net.train()
    t = _t(arch, config)
    hq, lm = _smooth_clip(t, seed=9), _landmarks(t)
    lq = _degrade(hq, seed=10)
    prior = _prior(arch, lm)

    def loss_fn():
        return torch.sqrt((net(lq, prior) - hq) ** 2 + 1e-6).mean()  # Charbonnier

    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    with torch.no_grad():
        first = float(loss_fn())
    for _ in range(50):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = float(loss_fn())
    print(f"{name}: loss {first:.4g} -> {last:.4g} ({first / last:.2f}x)")
    assert last * 5 <= first, f"{name}: loss {first:.4g} -> {last:.4g} (less than 5x)"
