from __future__ import annotations

import numpy as np
import pytest

from fvr.errors import ConfigError
from fvr.faces import (
    FFHQ_TEMPLATE_512,
    FaceTracks,
    OneEuroFilter,
    SmoothingConfig,
    Track,
    gaussian_smooth,
    is_causal,
    one_euro_smooth,
    savgol_smooth,
    smooth_tracks,
)


def _noisy_line(n: int = 200, noise: float = 1.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (n, 5, 2) moving along a straight line at 1.2 px/frame, and the same with white jitter."""
    t = np.arange(n, dtype=np.float64)[:, None, None]
    clean = FFHQ_TEMPLATE_512[None].astype(np.float64) * 0.4 + t * np.array([1.2, -0.5])
    noisy = clean + np.random.default_rng(seed).normal(0, noise, size=clean.shape)
    return clean, noisy


def _track(landmarks: np.ndarray, start: int = 0, track_id: int = 0) -> Track:
    n = len(landmarks)
    lm = landmarks.astype(np.float32)
    return Track(
        id=track_id, frames=np.arange(start, start + n), landmarks=lm.copy(), raw_landmarks=lm,
        boxes=np.tile([0, 0, 100, 100], (n, 1)), scores=np.full(n, 0.99), detected=np.ones(n, bool),
    )


def test_gaussian_removes_jitter_and_keeps_mean() -> None:
    clean, noisy = _noisy_line()
    out = gaussian_smooth(noisy, 3.0)
    assert out.shape == noisy.shape
    inner = slice(10, -10)  # the line bends at the clamped ends
    before = np.var((noisy - clean)[inner])
    after = np.var((out - clean)[inner])
    assert after < before / 6
    assert np.allclose(out.mean(axis=0), noisy.mean(axis=0), atol=0.1)
    assert np.array_equal(gaussian_smooth(noisy, 0), noisy)
    assert gaussian_smooth(noisy[:1], 3.0).shape == (1, 5, 2)


def test_savgol_short_sequences_and_polynomials() -> None:
    t = np.arange(30, dtype=np.float64)
    quad = (0.3 * t**2 - 2 * t + 5)[:, None]
    assert np.allclose(savgol_smooth(quad, 9, 2), quad)  # a local quadratic fit keeps quadratics exactly
    for n in range(1, 10):
        x = np.random.default_rng(n).normal(size=(n, 5, 2))
        out = savgol_smooth(x, 9, 2)
        assert out.shape == x.shape and np.all(np.isfinite(out))
        if n < 3:
            assert np.array_equal(out, x)
    _, noisy = _noisy_line()
    clean, _ = _noisy_line(noise=0.0)
    assert np.var(savgol_smooth(noisy, 9, 2) - clean) < np.var(noisy - clean) / 1.8
    assert savgol_smooth(noisy, 8, 2).shape == noisy.shape  # even windows are made odd


def test_one_euro_is_causal() -> None:
    _, noisy = _noisy_line(120)
    out = one_euro_smooth(noisy, 25.0, min_cutoff=1.0, beta=0.05)
    t = 60
    changed = noisy.copy()
    changed[t + 1 :] += np.random.default_rng(9).normal(0, 50, size=changed[t + 1 :].shape)
    out2 = one_euro_smooth(changed, 25.0, min_cutoff=1.0, beta=0.05)
    assert np.array_equal(out[: t + 1], out2[: t + 1])
    assert not np.allclose(out[t + 1 :], out2[t + 1 :])


def test_one_euro_streaming_matches_sequence_and_smooths() -> None:
    clean, noisy = _noisy_line(200)
    seq = one_euro_smooth(noisy, 30.0, min_cutoff=1.0, beta=0.01)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.01, d_cutoff=1.0, fps=30.0)
    stream = np.stack([f(x, i / 30.0) for i, x in enumerate(noisy)])
    assert np.allclose(seq, stream)
    jitter = lambda x: np.std(np.diff(x - clean, 2, axis=0)[20:])  # noqa: E731
    assert jitter(seq) < jitter(noisy) / 3
    f.reset()
    assert np.array_equal(f(noisy[0]), noisy[0])  # the first sample passes through
    const = one_euro_smooth(np.full((50, 3), 7.0), 25.0, beta=1.0)
    assert np.allclose(const, 7.0)
    with pytest.raises(ConfigError):
        OneEuroFilter(min_cutoff=0)


def test_smooth_tracks_keeps_raw_and_other_fields() -> None:
    _, noisy = _noisy_line(80)
    tracks = FaceTracks([_track(noisy), _track(noisy[:4] + 300, start=10, track_id=1)], 100, [50])
    for method in ("gaussian", "savgol", "one-euro"):
        out = smooth_tracks(tracks, SmoothingConfig(method=method), fps=25.0)
        assert out.num_frames == 100 and out.scene_cuts == [50] and [t.id for t in out.tracks] == [0, 1]
        for before, after in zip(tracks.tracks, out.tracks):
            assert np.array_equal(after.raw_landmarks, before.raw_landmarks)
            assert after.landmarks.dtype == np.float32 and after.landmarks.shape == before.landmarks.shape
            assert np.array_equal(after.frames, before.frames) and np.array_equal(after.boxes, before.boxes)
        assert not np.allclose(out.tracks[0].landmarks, tracks.tracks[0].raw_landmarks)
        # Smoothing always starts from the raw landmarks: applying it twice changes nothing.
        again = smooth_tracks(out, SmoothingConfig(method=method), fps=25.0)
        assert np.array_equal(again.tracks[0].landmarks, out.tracks[0].landmarks)
    none = smooth_tracks(tracks, SmoothingConfig(method="none"), fps=25.0)
    assert np.array_equal(none.tracks[0].landmarks, tracks.tracks[0].raw_landmarks)
    assert tracks.tracks[0].landmarks is not none.tracks[0].landmarks  # the input is not modified
    assert smooth_tracks(FaceTracks([], 10, []), SmoothingConfig(), 25.0).tracks == []


def test_smoothing_config() -> None:
    assert is_causal(SmoothingConfig(method="one-euro")) and is_causal(SmoothingConfig(method="none"))
    assert not is_causal(SmoothingConfig()) and not is_causal(SmoothingConfig(method="savgol"))
    tracks = FaceTracks([], 10, [])
    for bad in ({"method": "kalman"}, {"sigma": -1}, {"window": 0}, {"method": "one-euro", "min_cutoff": 0}):
        with pytest.raises(ConfigError):  # refused as the config is built, before any smoothing
            smooth_tracks(tracks, SmoothingConfig(**bad), 25.0)
