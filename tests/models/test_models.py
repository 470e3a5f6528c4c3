"""The restorer contract, the registry, and the two non-learned restorers."""

from __future__ import annotations

import numpy as np
import pytest

from fvr.errors import ConfigError
from fvr.models import ModelRegistry, Restorer, RestorerSpec, builtin_registry
from fvr.models.classical import ClassicalRestorer, estimate_noise_sigma
from fvr.synthetic import moving_face_frames


def _clip(t: int = 3, size: int = 256) -> np.ndarray:
    frames = np.stack(list(moving_face_frames(t, size=size)))
    return frames.transpose(0, 3, 1, 2).astype(np.float32) / 255


def test_builtin_registry_lists_models_and_default() -> None:
    reg = builtin_registry(plugins=False)
    assert {"identity", "classical"} <= set(reg.names())
    assert reg.default_name == "classical"
    spec = reg.spec("identity")
    assert spec.causal and spec.temporal == "per-frame" and spec.kind == "non-learned"
    assert spec.as_dict()["causal"] is True


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown model 'nope'.*classical"):
        builtin_registry(plugins=False).create("nope")
    with pytest.raises(ConfigError, match="identity"):
        builtin_registry(plugins=False).create("identity", bogus_option=1)


def test_spec_validation() -> None:
    with pytest.raises(ValueError):
        RestorerSpec(name="x", kind="magic", temporal="per-frame", crop_size=128)
    with pytest.raises(ValueError):
        RestorerSpec(name="x", kind="cnn", temporal="per-frame", crop_size=128, past=-1)
    assert not RestorerSpec(name="x", kind="cnn", temporal="window", crop_size=128, past=2, future=2).causal


def test_registry_default_is_unique() -> None:
    reg = ModelRegistry()

    class Const(Restorer):
        def __init__(self, name: str) -> None:
            self.spec = RestorerSpec(name=name, kind="non-learned", temporal="per-frame", crop_size=64)

        def restore_clip(self, clip, landmarks):
            return clip

    reg.register(Const("a").spec, lambda: Const("a"), default=True)
    reg.register(Const("b").spec, lambda: Const("b"), default=True)
    assert reg.default_name == "b" and [e.default for e in reg.entries()] == [False, True]
    with pytest.raises(ValueError):
        reg.register(Const("a").spec, lambda: Const("a"))


def test_contract_is_enforced() -> None:
    model = builtin_registry(plugins=False).create("identity", crop_size=128)
    with pytest.raises(ValueError, match="float32"):
        model(np.zeros((2, 3, 128, 128), np.float64), np.zeros((2, 5, 2), np.float32))
    with pytest.raises(ValueError, match="landmarks"):
        model(np.zeros((2, 3, 128, 128), np.float32), np.zeros((3, 5, 2), np.float32))


def test_identity_returns_input() -> None:
    clip = _clip(2, 128)
    out = builtin_registry(plugins=False).create("identity", crop_size=128)(clip, np.zeros((2, 5, 2), np.float32))
    assert np.array_equal(out, clip) and out is not clip


def test_noise_estimate_tracks_true_sigma() -> None:
    clean = _clip(1, 256)[0].mean(0)
    rng = np.random.default_rng(0)
    estimates = [estimate_noise_sigma((clean + rng.normal(0, s, clean.shape)).astype(np.float32))
                 for s in (0.01, 0.03, 0.06)]
    assert estimates[0] < estimates[1] < estimates[2]
    assert estimates[2] == pytest.approx(0.06, rel=0.3)


def test_classical_denoises_and_sharpens() -> None:
    clean = _clip(2, 256)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1).astype(np.float32)
    model = ClassicalRestorer(crop_size=256)
    out = model(noisy, np.zeros((2, 5, 2), np.float32))
    assert out.shape == noisy.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    err_in = float(np.mean((noisy - clean) ** 2))
    err_out = float(np.mean((out - clean) ** 2))
    assert err_out < 0.7 * err_in  # the noise is reduced
    # on a clean but blurred crop, it adds high-frequency energy back
    import cv2

    blurred = np.stack([cv2.GaussianBlur(c.transpose(1, 2, 0), (0, 0), 1.5).transpose(2, 0, 1) for c in clean])
    sharp = model(blurred.astype(np.float32), np.zeros((2, 5, 2), np.float32))
    lap = lambda x: float(np.var(cv2.Laplacian(x[0].mean(0), cv2.CV_32F)))  # noqa: E731
    assert lap(sharp) > 1.3 * lap(blurred)
