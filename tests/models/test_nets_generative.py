"""The generative architectures on their `tiny` presets (32² crops, T ≤ 5): the residual diffusion restorer
(:mod:`fvr.models.nets.diffusion`) and the CodeFormer-style codebook prior (:mod:`fvr.models.nets.codebook`).

Shapes, determinism and declared temporal context, weight-file round trips, ONNX parity (codeformer), the fast
presets' cost, and short overfits: diffusion's own objective and codebook stage 1 drop ≥ 5× in 50 Adam steps on a
tiny synthetic clip; stage 2 then runs with the stage-1 parts frozen and its loss decreases.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fvr.errors import ConfigError
from fvr.export import onnx_parity
from fvr.models.nets.codebook import ARCHS as CODEBOOK_ARCHS
from fvr.models.nets.codebook import CodeFormer
from fvr.models.nets.core import TorchRestorer, TrainBatch, load_weights, save_weights
from fvr.models.nets.diffusion import ARCHS as DIFFUSION_ARCHS

DIFFUSION = DIFFUSION_ARCHS[0]
CODEFORMER = CODEBOOK_ARCHS[0]
ARCHS = {a.name: a for a in DIFFUSION_ARCHS + CODEBOOK_ARCHS}
SIZE = 32


def smooth_clip(t: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A tiny synthetic (lq, hq) pair, (1, T, 3, 32, 32) each: hq = a smooth random colour field (6×6 cells,
    bicubic) panning one pixel per frame; lq = hq washed out (contrast 0.7 around 0.5) plus light noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 6, 6, generator=g)
    big = torch.nn.functional.interpolate(base, size=(SIZE + 2 * t, SIZE + 2 * t), mode="bicubic", align_corners=False)
    hq = torch.stack([big[0, :, i:i + SIZE, i:i + SIZE] for i in range(t)], 0)[None].clamp(0, 1)
    g = torch.Generator().manual_seed(seed + 1)
    lq = 0.7 * hq + 0.15 + 0.003 * torch.randn(hq.shape, generator=g)
    return lq, hq


def landmarks(t: int) -> torch.Tensor:
    return torch.zeros(1, t, 5, 2)


def tiny(arch, **overrides):
    size, config = arch.preset("tiny")
    config = dataclasses.replace(config, **overrides)
    torch.manual_seed(0)
    return size, config, arch.build(config)


def train(arch, net, lq, hq, steps: int = 50, opt=None):
    """Adam lr 2e-3 on the architecture's own objective; returns (losses, last logs, optimiser)."""
    net.train()
    opt = opt or torch.optim.Adam(net.parameters(), lr=2e-3)
    losses, logs = [], {}
    torch.manual_seed(1)
    for step in range(steps):
        loss, logs = arch.training_loss(net, TrainBatch(lq=lq, hq=hq, landmarks=landmarks(lq.shape[1]), step=step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return np.array(losses), logs, opt


def gflops_per_frame(net, size: int) -> float:
    x = torch.rand(1, 1, 3, size, size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops() / 1e9


# ----------------------------------------------------------------------------------------------- specs


def test_specs_state_the_taxonomy():
    assert (DIFFUSION.kind, DIFFUSION.temporal) == ("diffusion", "diffusion")
    assert DIFFUSION.tags == ("temporal-attention", "few-step")
    assert not DIFFUSION.feed_forward and DIFFUSION.training_loss is not None
    assert (CODEFORMER.kind, CODEFORMER.temporal) == ("transformer", "per-frame")
    assert CODEFORMER.tags == ("generative-assisted", "codebook", "vq")
    assert CODEFORMER.feed_forward and CODEFORMER.training_loss is not None
    for arch in ARCHS.values():
        assert arch.presets["fast"][0] == 128 and arch.presets["quality"][0] in (256, 512)
        assert arch.presets["tiny"][0] == SIZE
    for preset in ("fast", "quality", "tiny"):
        assert DIFFUSION.context(DIFFUSION.preset(preset)[1]) == (2, 2)
        assert CODEFORMER.context(CODEFORMER.preset(preset)[1]) == (0, 0)
    spec = DIFFUSION.restorer_spec("fast")
    assert spec.name == "diffusion-fast" and spec.past == spec.future == 2 and "preset:fast" in spec.tags


def test_fast_presets_cost_about_a_gflop_per_frame():
    """Whole-sampler cost for diffusion (condition encoder + steps × denoiser), stage-2 inference for codeformer."""
    for arch, limit in ((DIFFUSION, 1.2), (CODEFORMER, 1.0)):
        size, config = arch.preset("fast")
        torch.manual_seed(0)
        assert gflops_per_frame(arch.build(config).eval(), size) <= limit, arch.name


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="steps"):
        tiny(DIFFUSION, steps=9)
    with pytest.raises(ConfigError, match="heads"):
        tiny(DIFFUSION, heads=3)
    with pytest.raises(ConfigError, match="stage"):
        tiny(CODEFORMER, stage=3)
    with pytest.raises(ConfigError, match="fidelity"):
        tiny(CODEFORMER, fidelity=1.5)
    _, _, net = tiny(CODEFORMER)
    with pytest.raises(ValueError, match="fidelity"):
        net.set_fidelity(-0.1)


# ----------------------------------------------------------------------------------------------- diffusion


def test_diffusion_shapes_determinism_and_near_identity_start():
    _, _, net = tiny(DIFFUSION)
    lq, _ = smooth_clip(5)
    with torch.no_grad():
        y = net.eval()(lq)
        again = net(lq)
    assert y.shape == lq.shape and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert torch.equal(y, again)  # seeded initial noise: the sampler is deterministic
    assert (y - lq).abs().mean() < 0.05  # small-initialised output head: an untrained model is near the identity


def test_diffusion_reads_only_its_declared_window():
    """Output i depends on LQ frames i−2 … i+2 only (past = future = window), however many sampler steps run."""
    _, config, net = tiny(DIFFUSION)
    net.eval()
    lq, _ = smooth_clip(5)
    window = config.window
    with torch.no_grad():
        # give the attention non-trivial weights so that neighbours really matter
        for p in net.attn.parameters():
            p.add_(0.1 * torch.randn_like(p))
        y = net(lq)
        for far in (0, 4):
            x2 = lq.clone()
            x2[:, far] = torch.rand_like(x2[:, far])
            y2 = net(x2)
            unaffected = [i for i in range(5) if abs(i - far) > window]
            affected = [i for i in range(5) if 0 < abs(i - far) <= window]
            for i in unaffected:
                assert torch.allclose(y[:, i], y2[:, i], atol=1e-6), f"frame {i} read frame {far}"
            assert any(not torch.allclose(y[:, i], y2[:, i], atol=1e-6) for i in affected), "no temporal mixing"


def test_diffusion_same_frames_same_output_across_chunks():
    """The initial noise is shared by every frame and clip, so a frame with its full window restores the same in
    any chunk that contains that window (what lets the pipeline stitch chunks)."""
    _, _, net = tiny(DIFFUSION)
    net.eval()
    lq, _ = smooth_clip(5)
    with torch.no_grad():
        whole = net(lq)
        shifted = net(torch.cat([torch.rand_like(lq[:, :1]), lq], dim=1))
    assert torch.allclose(whole[:, 2:5], shifted[:, 3:6], atol=1e-6)


def test_diffusion_weight_round_trip_and_restorer(tmp_path):
    size, config, net = tiny(DIFFUSION)
    lq, hq = smooth_clip(5)
    train(DIFFUSION, net, lq, hq, steps=3)
    net.eval()
    path = save_weights(tmp_path / "diffusion.safetensors", DIFFUSION, config, net, size, "tiny")
    loaded = load_weights(path, ARCHS)
    assert loaded.arch.name == "diffusion" and loaded.config == config and loaded.crop_size == size
    with torch.no_grad():
        assert torch.equal(net(lq), loaded.net(lq))
    spec = DIFFUSION.restorer_spec("tiny", config=config)
    out = TorchRestorer(spec, loaded.net)(lq[0].numpy(), landmarks(5)[0].numpy())
    assert out.shape == (5, 3, SIZE, SIZE) and 0.0 <= out.min() and out.max() <= 1.0


def test_diffusion_fifty_step_overfit():
    _, _, net = tiny(DIFFUSION)
    lq, hq = smooth_clip(5)
    losses, logs, _ = train(DIFFUSION, net, lq, hq)
    first, last = losses[:3].mean(), losses[-3:].mean()
    assert last * 5 <= first, f"diffusion loss {first:.4g} -> {last:.4g}"
    assert set(logs) == {"l1_x0", "mse_x0", "l1_identity"}
    with torch.no_grad():  # the full few-step sampler now restores better than the input
        restored = (net.eval()(lq) - hq).abs().mean()
    assert restored < 0.5 * (lq - hq).abs().mean()


# ----------------------------------------------------------------------------------------------- codeformer


def test_codeformer_untrained_is_the_identity_and_per_frame():
    _, _, net = tiny(CODEFORMER)
    lq, _ = smooth_clip(3)
    with torch.no_grad():
        y = net.eval()(lq)
    assert y.shape == lq.shape and torch.equal(y, lq)  # blend gain starts at 0
    with torch.no_grad():
        net.blend_raw.fill_(0.05)
        y = net(lq)
        x2 = lq.clone()
        x2[:, 2] = torch.rand_like(x2[:, 2])
        y2 = net(x2)
    assert not torch.equal(y, lq)
    assert torch.allclose(y[:, :2], y2[:, :2], atol=1e-6)  # per-frame: other frames never matter


def _two_stage(steps1: int = 50, steps2: int = 50):
    """Stage 1 (VQ autoencoder on hq), then stage 2 (code prediction from lq) on the same tiny clip."""
    size, _, net = tiny(CODEFORMER)
    lq, hq = smooth_clip(5)
    losses1, logs1, opt = train(CODEFORMER, net, lq, hq, steps=steps1)
    stage1 = {k: v.clone() for k, v in net.state_dict().items()}
    net.config = dataclasses.replace(net.config, stage=2)
    losses2, logs2, _ = train(CODEFORMER, net, lq, hq, steps=steps2, opt=opt)
    return size, net, lq, hq, (losses1, logs1), (losses2, logs2), stage1


def test_codeformer_stage1_overfits_and_stage2_learns_with_stage1_frozen():
    _, net, lq, hq, (losses1, logs1), (losses2, logs2), stage1 = _two_stage()
    first, last = losses1[:3].mean(), losses1[-3:].mean()
    assert last * 5 <= first, f"codeformer stage 1 loss {first:.4g} -> {last:.4g}"
    assert logs1["codes_used"] >= 16  # data-initialised EMA codebook: no collapse onto a few codes
    # stage 2: its loss decreases, codes are predicted, and the stage-1 autoencoder did not move
    assert losses2[-3:].mean() * 2 <= losses2[:3].mean()
    assert logs2["code_acc"] >= 0.5
    state = net.state_dict()
    for name in stage1:
        if name.startswith(("encoder.", "quantizer.")) or (name.startswith("decoder.")
                                                          and not name.startswith("decoder.fuse.")):
            assert torch.equal(state[name], stage1[name]), f"{name} changed in stage 2"
    assert not torch.equal(state["predictor.head.weight"], stage1["predictor.head.weight"])
    assert float(state["stage2_started"]) == 1.0
    # the output now beats the input, and the fidelity weight w changes it
    net.eval()
    with torch.no_grad():
        outs = {}
        for w in (0.0, 1.0):
            net.set_fidelity(w)
            outs[w] = net(lq)
    assert (outs[1.0] - hq).abs().mean() < (lq - hq).abs().mean()
    assert not torch.allclose(outs[0.0], outs[1.0])


def test_codeformer_stage2_starts_from_the_stage1_encoder():
    _, _, net = tiny(CODEFORMER)
    assert isinstance(net, CodeFormer)
    lq, hq = smooth_clip(3)
    train(CODEFORMER, net, lq, hq, steps=2)
    net.start_stage2()
    for a, b in zip(net.lq_encoder.parameters(), net.encoder.parameters()):
        assert torch.equal(a, b)
    assert all(not p.requires_grad for p in net.stage1_parameters())
    assert all(p.requires_grad for p in net.decoder.fuse.parameters())


def test_codeformer_weight_round_trip_and_onnx_parity(tmp_path):
    pytest.importorskip("onnxruntime")
    size, net, lq, *_ = _two_stage(steps1=10, steps2=10)
    net.eval()
    config = net.config
    path = save_weights(tmp_path / "codeformer.safetensors", CODEFORMER, config, net, size, "tiny")
    loaded = load_weights(path, ARCHS)
    assert loaded.config.stage == 2
    with torch.no_grad():
        want = net(lq[:, :3])
        assert torch.equal(want, loaded.net(lq[:, :3]))
    assert onnx_parity(loaded.net, (lq[:, :3],)) <= 1e-4


def test_weight_files_of_another_architecture_are_refused(tmp_path):
    size, config, net = tiny(CODEFORMER)
    path = save_weights(tmp_path / "cf.safetensors", CODEFORMER, config, net, size, "tiny")
    with pytest.raises(ConfigError, match="codeformer"):
        load_weights(path, {"diffusion": DIFFUSION})
