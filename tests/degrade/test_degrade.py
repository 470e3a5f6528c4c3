"""fvr.degrade: preset distributions (VFHQ-Test), kernels, noise, sizes, streaming codec pass, files, CLI."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from fvr.cli import main
from fvr.degrade import (
    PRESETS,
    BlurParams,
    DegradeParams,
    NoiseParams,
    add_gaussian_noise,
    degrade_frame,
    degrade_frames,
    degrade_video,
    frame_rng,
    gaussian_kernel,
    gt_crop,
    lq_size,
    motion_kernel,
    sample_params,
    sidecar_path,
)
from fvr.errors import ConfigError, InputError
from media import face_clip, read_frames, read_packets, write_video

# -- parameters -------------------------------------------------------------------------------------------------


def test_vfhq_ranges_and_frequencies() -> None:
    draws = [sample_params("vfhq", seed) for seed in range(1000)]
    for p in draws:
        assert p.preset == "vfhq" and p.scale == 4 and p.codec == "libx264" and p.pix_fmt == "yuv420p"
        assert p.blur.kernel_size == 21 and p.blur.kind in ("iso", "aniso")
        assert 0.1 <= p.blur.sigma_x <= 10 and 0.1 <= p.blur.sigma_y <= 10
        if p.blur.kind == "iso":
            assert p.blur.sigma_x == p.blur.sigma_y
        else:
            assert 0 <= p.blur.theta < math.pi
        assert 0 <= p.noise_before.sigma <= 10 and 0 <= p.noise_after.sigma <= 10
        assert isinstance(p.crf, int) and 18 <= p.crf <= 24
        assert p.jpeg_quality is None and p.film is None
    n = len(draws)
    # 1000 Bernoulli draws: standard error <= 0.016, so 0.05 is > 3 standard errors
    assert abs(sum(p.blur.kind == "iso" for p in draws) / n - 0.7) < 0.05
    interp = Counter(p.interpolation for p in draws)
    for name, prob in (("area", 0.2), ("linear", 0.4), ("cubic", 0.4)):
        assert abs(interp[name] / n - prob) < 0.05, interp
    assert abs(sum(p.noise_before.gray for p in draws) / n - 0.5) < 0.05
    assert abs(sum(p.noise_after.gray for p in draws) / n - 0.5) < 0.05
    assert set(Counter(p.crf for p in draws)) == set(range(18, 25))  # every integer CRF, nothing else
    aniso = [p.blur for p in draws if p.blur.kind == "aniso"]
    assert abs(np.mean([b.sigma_x for b in aniso]) - 5.05) < 0.6  # uniform on [0.1, 10]
    assert abs(np.mean([p.noise_before.sigma for p in draws]) - 5.0) < 0.4
    # two independent noise draws, not one value used twice
    assert np.corrcoef([p.noise_before.sigma for p in draws], [p.noise_after.sigma for p in draws])[0, 1] < 0.15


def test_same_seed_same_params_different_seed_different() -> None:
    for preset in PRESETS:
        assert sample_params(preset, 7) == sample_params(preset, 7)
        assert sample_params(preset, 7) != sample_params(preset, 8)
    assert len({json.dumps(sample_params("vfhq", s).to_dict()) for s in range(50)}) == 50


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_and_json_round_trip(preset: str) -> None:
    for seed in range(20):
        p = sample_params(preset, seed)
        text = json.dumps(p.to_dict())
        assert DegradeParams.from_dict(json.loads(text)) == p
        assert json.loads(text) == p.to_dict()  # what the benchmark's cache compares
    p = sample_params(preset, 0)
    if preset == "heavy":
        assert p.scale == 4 and 28 <= p.crf <= 35 and p.noise_after.sigma >= 5
    if preset == "jpeg":
        assert p.crf is None and 10 <= p.jpeg_quality <= 40 and p.scale == 4
    if preset == "motion-blur":
        assert p.blur.kind == "motion" and 0 < p.blur.motion_length <= p.blur.kernel_size - 1
    if preset == "old-film":
        assert p.scale == 2 and p.film is not None and p.film.grain > 0 and p.crf is not None


def test_overrides_and_validation() -> None:
    base = sample_params("vfhq", 3)
    p = sample_params("vfhq", 3, crf=20, scale=2)
    assert p.crf == 20 and p.scale == 2
    assert p.blur == base.blur and p.noise_after == base.noise_after  # overrides do not shift the other draws
    q = sample_params("vfhq", 3, blur_sigma=2.5, noise=4, noise_after_gray=True, film_grain=6)
    assert q.blur == BlurParams("iso", 21, 2.5, 2.5)
    assert q.noise_before.sigma == q.noise_after.sigma == 4 and q.noise_after.gray
    assert q.film is not None and q.film.grain == 6
    assert sample_params("vfhq", 3, blur_sigma=0).blur.kind == "none"
    assert sample_params("jpeg", 1, crf=22).crf == 22
    bad = [{"crf": 99}, {"crf": 20.5}, {"scale": 0}, {"interpolation": "nearest"}, {"bogus": 1},
           {"blur_kind": "box"}, {"noise": -1}, {"blur_kernel_size": 20}, {"jpeg_quality": 0}, {"codec": "mpeg4"},
           {"noise_after_gray": "yes"}, {"film_fade": 2}]
    for kwargs in bad:
        with pytest.raises(ConfigError):
            sample_params("vfhq", 3, **kwargs)
    with pytest.raises(ConfigError, match="unknown degradation preset"):
        sample_params("nope", 1)
    with pytest.raises(ConfigError):
        sample_params("vfhq", -1)
    with pytest.raises(ConfigError, match="unknown"):
        DegradeParams.from_dict({**base.to_dict(), "extra": 1})


# -- per-frame operations -----------------------------------------------------------------------------------------


def _principal_angle(k: np.ndarray) -> float:
    """Direction (radians, display convention: x right, y up) of a kernel's long axis, in [0, pi)."""
    r = k.shape[0] // 2
    ax = np.arange(-r, r + 1)
    x, rows = np.meshgrid(ax, ax)
    y = -rows
    cov = np.array([[(k * x * x).sum(), (k * x * y).sum()], [(k * x * y).sum(), (k * y * y).sum()]])
    vals, vecs = np.linalg.eigh(cov)
    v = vecs[:, int(np.argmax(vals))]
    return math.atan2(v[1], v[0]) % math.pi


def _angle_diff(a: float, b: float) -> float:
    d = abs(a - b) % math.pi
    return min(d, math.pi - d)


def test_blur_kernels() -> None:
    iso = gaussian_kernel(21, 2.0, 2.0)
    assert iso.shape == (21, 21) and iso.dtype == np.float32
    assert abs(float(iso.sum()) - 1) < 1e-5 and np.allclose(iso, iso.T) and np.allclose(iso, iso[::-1])
    assert np.unravel_index(iso.argmax(), iso.shape) == (10, 10)
    for theta in (0.0, math.pi / 6, math.pi / 2, 2.5):
        k = gaussian_kernel(21, 4.0, 1.0, theta)
        assert abs(float(k.sum()) - 1) < 1e-5
        assert _angle_diff(_principal_angle(k), theta) < 0.02
        m = motion_kernel(21, 15.0, theta)
        assert abs(float(m.sum()) - 1) < 1e-5 and (m >= 0).all()
        assert _angle_diff(_principal_angle(m), theta) < 0.05
    # sigma_x is the spread along theta: at theta = 0 the kernel is wide horizontally
    k = gaussian_kernel(21, 4.0, 1.0, 0.0)
    assert k[10, 14] > 10 * k[14, 10]
    assert motion_kernel(21, 0.0, 1.0)[10, 10] == 1.0


@pytest.mark.parametrize("gray", [False, True])
def test_noise_sigma_on_flat_image(gray: bool) -> None:
    flat = np.full((256, 256, 3), 128, np.uint8)
    for sigma in (2.0, 8.0):
        noisy = add_gaussian_noise(flat, sigma, gray, np.random.default_rng(0))
        assert noisy.dtype == np.uint8
        diff = noisy.astype(np.float64) - 128
        assert abs(diff.std() - sigma) < 0.04 * sigma + 0.1
        assert abs(diff.mean()) < 0.1
        spread = np.abs(diff[..., 0] - diff[..., 1]).max()
        assert (spread == 0) if gray else (spread > sigma)
    assert add_gaussian_noise(flat, 0.0, False, np.random.default_rng(0)) is flat


def test_odd_sizes_are_cropped_to_even_lq() -> None:
    assert gt_crop(701, 523, 4) == (696, 520) and lq_size(701, 523, 4) == (174, 130)
    assert gt_crop(701, 523, 2) == (700, 520) and lq_size(701, 523, 2) == (350, 130 * 2)
    for w, h, s in ((701, 523, 4), (33, 17, 2), (64, 48, 4), (1921, 1081, 3)):
        lw, lh = lq_size(w, h, s)
        cw, ch = gt_crop(w, h, s)
        assert lw % 2 == 0 and lh % 2 == 0 and (cw, ch) == (lw * s, lh * s) and cw <= w and ch <= h
    with pytest.raises(InputError, match="too small"):
        lq_size(7, 100, 4)
    rgb = np.random.default_rng(1).integers(0, 256, (523, 701, 3), dtype=np.uint8)
    params = sample_params("vfhq", 2)
    assert degrade_frame(rgb, params, frame_rng(2, 0)).shape == (130, 174, 3)
    out = list(degrade_frames([rgb, rgb], params, 2))  # through the real yuv420p codec pass
    assert [o.shape for o in out] == [(130, 174, 3)] * 2 and all(o.dtype == np.uint8 for o in out)


def test_degrade_frame_keeps_top_left_content() -> None:
    # no blur/noise, x2 area: each LQ pixel is the mean of its 2x2 block of the cropped top-left region
    rgb = np.random.default_rng(3).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    params = DegradeParams(scale=2, interpolation="area")
    lq = degrade_frame(rgb, params, frame_rng(0, 0))
    crop = rgb[:36, :44].astype(np.float64)
    expected = crop.reshape(18, 2, 22, 2, 3).mean(axis=(1, 3))
    assert lq.shape == (18, 22, 3) and np.abs(lq - expected).max() <= 0.5 + 1e-6
    with pytest.raises(InputError):
        degrade_frame(rgb.astype(np.float32), params, frame_rng(0, 0))


# -- clips in memory ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frames7() -> list[np.ndarray]:
    return list(face_clip(7, 128))


def test_degrade_frames_count_and_determinism(frames7: list[np.ndarray]) -> None:
    params = sample_params("vfhq", 5)
    assert params.crf is not None
    a = list(degrade_frames(frames7, params, 5))
    b = list(degrade_frames(iter(frames7), params, 5))  # a one-shot generator instead of a list
    assert len(a) == len(b) == 7 and a[0].shape == (32, 32, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for _ in range(5):  # x264's CPU-specific paths once made repeated encodes differ now and then
        assert all(np.array_equal(x, y) for x, y in zip(a, degrade_frames(frames7, params, 5)))
    c = list(degrade_frames(frames7, params, 6))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    for n in (1, 2, 17):  # the encoder buffers frames: flushing must return every one of them
        clip = (frames7 * 3)[:n]
        assert len(list(degrade_frames(clip, params, 1))) == n


def test_frame_noise_does_not_depend_on_iteration(frames7: list[np.ndarray]) -> None:
    params = sample_params("vfhq", 9, crf=None)  # without the codec each frame stands alone
    whole = list(degrade_frames(frames7, params, 9))
    part = list(degrade_frames(frames7[:3], params, 9))
    assert all(np.array_equal(x, y) for x, y in zip(part, whole[:3]))
    for i in (0, 4, 6):
        assert np.array_equal(whole[i], degrade_frame(frames7[i], params, frame_rng(9, i)))
    assert not np.array_equal(whole[0], whole[1])
    # a different frame index draws different noise even for the same image
    assert not np.array_equal(degrade_frame(frames7[0], params, frame_rng(9, 0)),
                              degrade_frame(frames7[0], params, frame_rng(9, 1)))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / mse)


def test_stronger_blur_gives_lower_psnr(frames7: list[np.ndarray]) -> None:
    gt = frames7[0]
    scores = []
    for sigma in (2.0, 3.0, 5.0, 8.0):  # from 2 up: below that, x4 down-sampling aliases and PSNR rises with blur
        params = DegradeParams(blur=BlurParams("iso", 21, sigma, sigma), scale=4, interpolation="cubic")
        lq = degrade_frame(gt, params, frame_rng(0, 0))
        up = cv2.resize(lq, (128, 128), interpolation=cv2.INTER_CUBIC)
        scores.append(_psnr(up, gt))
    assert all(a > b for a, b in itertools.pairwise(scores)), scores


def test_codec_and_jpeg_degrade(frames7: list[np.ndarray]) -> None:
    clean = DegradeParams(scale=2)
    ref = list(degrade_frames(frames7, clean, 0))
    for params in (DegradeParams(scale=2, crf=40), DegradeParams(scale=2, jpeg_quality=10)):
        out = list(degrade_frames(frames7, params, 0))
        psnr = np.mean([_psnr(a, b) for a, b in zip(out, ref)])
        assert 20 < psnr < 45, (params, psnr)


def test_old_film_damage_changes_every_frame(frames7: list[np.ndarray]) -> None:
    params = sample_params("old-film", 4, film_scratches=5, film_dust=20, crf=None)
    assert params.scale == 2
    a = degrade_frame(frames7[0], params, frame_rng(4, 0))
    b = degrade_frame(frames7[0], params, frame_rng(4, 1))
    assert a.shape == (64, 64, 3) and not np.array_equal(a, b)
    plain = degrade_frame(frames7[0], params.replace(film=None), frame_rng(4, 0))
    assert _psnr(a, plain) < 35  # the look is visible
    # sepia: the faded frame's channels are ordered R >= G >= B on average
    faded = degrade_frame(frames7[0], params.replace(film_grain=0, film_scratches=0, film_dust=0, film_flicker=0,
                                                     film_fade=1.0), frame_rng(4, 0))
    r, g, b_ = (faded[..., i].astype(float).mean() for i in range(3))
    assert r > g > b_


# -- files and CLI ------------------------------------------------------------------------------------------------

_PTS = [0, 40, 90, 120, 160, 210, 240, 280, 330, 360]  # variable frame rate, milliseconds


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = face_clip(10, 128)[:, :118, :126]  # 126x118: cropped to 120x112 for x4
    return write_video(tmp_path_factory.mktemp("degrade") / "clip.mp4", frames, pts=_PTS, audio=True)


def test_degrade_video_writes_video_and_sidecar(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "lq.mp4"
    params = sample_params("vfhq", 3)
    record = degrade_video(clip, out, params, 3).to_dict()
    side = sidecar_path(out)
    assert side.name == "lq.mp4.json" and json.loads(side.read_text()) == record
    assert record["params"] == params.to_dict() and DegradeParams.from_dict(record["params"]) == params
    assert record["seed"] == 3 and record["preset"] == "vfhq" and record["fvr"]
    assert record["input_size"] == [126, 118] and record["output_size"] == [30, 28]
    assert record["crop"] == {"x": 0, "y": 0, "width": 120, "height": 112}
    assert record["frames"] == 10 and record["codec"]["crf"] == params.crf and record["fps"] > 0
    frames, times = read_frames(out)
    assert frames.shape == (10, 28, 30, 3)
    assert np.allclose(times, [p / 1000 for p in _PTS], atol=1e-3)  # input timestamps kept
    assert read_packets(out, "audio") == []  # audio dropped on purpose
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lq.mp4", "lq.mp4.json"]


def test_degrade_video_is_deterministic(clip: Path, tmp_path: Path) -> None:
    params = sample_params("vfhq", 11)
    for name in ("a.mp4", "b.mp4"):
        degrade_video(clip, tmp_path / name, params, 11, max_frames=6)
    a, _ = read_frames(tmp_path / "a.mp4")
    b, _ = read_frames(tmp_path / "b.mp4")
    assert a.shape[0] == 6 and np.array_equal(a, b)
    degrade_video(clip, tmp_path / "c.mp4", params, 12, max_frames=6)
    assert not np.array_equal(a, read_frames(tmp_path / "c.mp4")[0])


def test_no_codec_preset_is_stored_near_losslessly(clip: Path, tmp_path: Path) -> None:
    params = sample_params("jpeg", 1)
    record = degrade_video(clip, tmp_path / "j.mkv", params, 1, max_frames=3).to_dict()
    assert record["codec"] is None and record["storage"]["crf"] == 1
    stored, _ = read_frames(tmp_path / "j.mkv")
    expected = list(degrade_frames(read_frames(clip)[0][:3], params, 1))
    assert np.mean([_psnr(a, b) for a, b in zip(stored, expected)]) > 40


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_cli_degrade_and_reproduce(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.mp4"
    code = main(["degrade", str(clip), "-o", str(out), "--preset", "vfhq", "--seed", "3", "--frames", "6",
                 "--crf", "20", "--blur-sigma", "1.5"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "wrote" in captured.err and "crf 20" in captured.err
    record = json.loads(sidecar_path(out).read_text())
    assert record["frames"] == 6 and record["seed"] == 3 and record["params"]["crf"] == 20
    assert record["params"]["blur"]["sigma_x"] == 1.5
    again = tmp_path / "again.mkv"
    code = main(["degrade", str(clip), "-o", str(again), "--params", str(sidecar_path(out)), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["params"] == record["params"]
    assert np.array_equal(read_frames(out)[0], read_frames(again)[0])


def test_cli_bad_input_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "text.mp4"
    bad.write_text("not a video at all\n" * 100)
    out = tmp_path / "out.mp4"
    for argv in (["degrade", str(bad), "-o", str(out), "-q"],
                 ["degrade", str(bad), "-o", str(out), "--preset", "nope"],
                 ["degrade", str(bad), "-o", str(out), "--params", str(tmp_path / "missing.json")],
                 ["degrade", str(bad), "-o", str(out), "--params", str(bad)]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code != 0
        _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.mp4"]  # no output, no sidecar, no temp file


def test_sequence_output_is_refused(clip: Path, tmp_path: Path) -> None:
    from fvr.errors import OutputError

    with pytest.raises(OutputError, match="video file"):
        degrade_video(clip, tmp_path / "frames", sample_params("vfhq", 0), 0)
    assert list(tmp_path.iterdir()) == []


def test_noise_params_are_validated() -> None:
    with pytest.raises(ConfigError):
        NoiseParams(sigma=300)
    with pytest.raises(ConfigError):
        BlurParams("iso", 21, 0.0, 0.0)


def test_degrade_record_round_trips_through_its_sidecar(clip: Path, tmp_path: Path) -> None:
    """The typed record and the JSON sidecar hold the same: reading the sidecar back gives the record."""
    from fvr.degrade import DegradeRecord

    out = tmp_path / "rt.mp4"
    record = degrade_video(clip, out, sample_params("heavy", 5), 5, max_frames=4)
    assert DegradeRecord.from_dict(json.loads(sidecar_path(out).read_text())) == record
    assert record.frames == 4 and record.output_size == (30, 28) and record.crop[2:] == (120, 112)
