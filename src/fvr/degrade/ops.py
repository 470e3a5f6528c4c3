"""Pure per-frame degradation operations (numpy/OpenCV), and the crop/size rules.

Images are (H, W, 3) RGB on the 0-255 scale. Every operation keeps the dtype it is given: uint8 in -> uint8 out
(rounded and clipped); float32 in -> float32 out (clipped to [0, 255], not rounded). :func:`fvr.degrade.degrade_frame`
runs the whole chain in float32 and rounds once at the end, as the reference implementation (BasicSR) does; the
uint8 path is for using one operation on its own.

Angles are counter-clockwise from the x axis as the image is displayed (rows grow downwards).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from fvr.degrade.params import BlurParams, FilmParams
from fvr.errors import InputError

_INTERPOLATION = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}
# Classic sepia toning matrix (rows: output R, G, B from input R, G, B).
_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32)


def _float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32, copy=False)


def _like(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Clip to [0, 255]; back to uint8 (rounded) when the input was uint8."""
    out = np.clip(out, 0.0, 255.0)  # a new array: never clip the caller's image in place
    return (out + 0.5).astype(np.uint8) if ref.dtype == np.uint8 else out.astype(np.float32, copy=False)


# -- sizes ------------------------------------------------------------------------------------------------------


def gt_crop(width: int, height: int, scale: int) -> tuple[int, int]:
    """(width, height) of the top-left-anchored crop of a (width x height) frame that the degradation keeps:
    each side rounded down to a multiple of 2*scale, so the low-quality frame is exactly 1/scale of it and has
    even sides (yuv420p). The benchmark crops the ground truth with the same rule."""
    step = 2 * int(scale)
    w, h = int(width) - int(width) % step, int(height) - int(height) % step
    if w <= 0 or h <= 0:
        raise InputError(f"frame {width}x{height} is too small for x{scale} down-sampling (needs {step}x{step})")
    return w, h


def lq_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """(width, height) of the low-quality frames made from (width x height) input frames: even on both sides."""
    w, h = gt_crop(width, height, scale)
    return w // scale, h // scale


def crop_for_scale(img: np.ndarray, scale: int) -> np.ndarray:
    """The :func:`gt_crop` region of an (H, W, C) image (a view, no copy)."""
    w, h = gt_crop(img.shape[1], img.shape[0], scale)
    return img[:h, :w]


# -- blur -------------------------------------------------------------------------------------------------------


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Display coordinates (x right, y up) of the kernel's taps, centred on the middle tap."""
    r = size // 2
    ax = np.arange(-r, r + 1, dtype=np.float64)
    xx, rows = np.meshgrid(ax, ax)
    return xx, -rows


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float = 0.0) -> np.ndarray:
    """(size, size) float32 Gaussian summing to 1, with standard deviation sigma_x along direction theta
    (radians) and sigma_y across it. sigma_x == sigma_y gives the isotropic kernel."""
    x, y = _grid(size)
    along = x * math.cos(theta) + y * math.sin(theta)
    across = -x * math.sin(theta) + y * math.cos(theta)
    k = np.exp(-0.5 * ((along / sigma_x) ** 2 + (across / sigma_y) ** 2))
    return (k / k.sum()).astype(np.float32)


def motion_kernel(size: int, length: float, angle: float) -> np.ndarray:
    """(size, size) float32 kernel summing to 1: a straight line of ``length`` pixels through the centre in
    direction ``angle`` (radians), drawn with sub-pixel (bilinear) precision. length < 1 gives the identity."""
    k = np.zeros((size, size), np.float64)
    c = size // 2
    if length < 1.0:
        k[c, c] = 1.0
        return k.astype(np.float32)
    t = np.linspace(-length / 2, length / 2, math.ceil(length * 16) + 1)
    cols, rows = c + t * math.cos(angle), c - t * math.sin(angle)  # display y is up, rows go down
    c0, r0 = np.floor(cols).astype(int), np.floor(rows).astype(int)
    fc, fr = cols - c0, rows - r0
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rr, cc = np.clip(r0 + dr, 0, size - 1), np.clip(c0 + dc, 0, size - 1)
        np.add.at(k, (rr, cc), w)
    return (k / k.sum()).astype(np.float32)


def blur_kernel(blur: BlurParams) -> np.ndarray | None:
    """The kernel described by ``blur`` (float32, sums to 1), or None for kind "none"."""
    if blur.kind in ("iso", "aniso"):
        return gaussian_kernel(blur.kernel_size, blur.sigma_x, blur.sigma_y, blur.theta)
    if blur.kind == "motion":
        return motion_kernel(blur.kernel_size, blur.motion_length, blur.motion_angle)
    return None


def apply_kernel(img: np.ndarray, kernel: np.ndarray | None) -> np.ndarray:
    """Convolve every channel with ``kernel`` (reflected borders, as cv2.filter2D in BasicSR). None: no-op."""
    if kernel is None:
        return img
    return _like(cv2.filter2D(_float(img), -1, kernel, borderType=cv2.BORDER_REFLECT_101), img)


# -- noise, resize, jpeg -------------------------------------------------------------------------------------


def add_gaussian_noise(img: np.ndarray, sigma: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, sigma^2) noise (0-255 scale): independent per channel, or one value for all channels (gray).
    sigma 0 draws nothing from ``rng``."""
    if sigma <= 0:
        return img
    shape = img.shape[:2] + ((1,) if gray else (img.shape[2],))
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)
    return _like(_float(img) + noise, img)


def resize_down(img: np.ndarray, scale: int, interpolation: str) -> np.ndarray:
    """Down-sample to (W // scale, H // scale) with OpenCV's area, bilinear or bicubic interpolation."""
    if scale == 1:
        return img
    h, w = img.shape[:2]
    out = cv2.resize(_float(img), (w // scale, h // scale), interpolation=_INTERPOLATION[interpolation])
    return _like(out, img)  # bicubic overshoots: clipped here


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` (1-100, OpenCV/libjpeg scale, 4:2:0 chroma) and decode back."""
    u8 = img if img.dtype == np.uint8 else (np.clip(img, 0, 255) + 0.5).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode a frame")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:  # cvtColor would refuse the empty image with the same exception type
        raise cv2.error("OpenCV could not decode the JPEG it had just encoded")
    out = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return out if img.dtype == np.uint8 else out.astype(np.float32)


# -- old film ---------------------------------------------------------------------------------------------------


def fade_colours(img: np.ndarray, amount: float) -> np.ndarray:
    """Blend towards sepia by ``amount`` (0-1) and compress the tonal range (lifted blacks, dimmer whites)."""
    if amount <= 0:
        return img
    f = _float(img)
    sepia = f @ _SEPIA.T
    out = (1 - amount) * f + amount * sepia
    return _like(out * (1 - 0.25 * amount) + 24.0 * amount, img)


def flicker(img: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply the frame's brightness by 1 + amount * U[-1, 1] (a new value every frame)."""
    if amount <= 0:
        return img
    return _like(_float(img) * np.float32(1.0 + amount * rng.uniform(-1.0, 1.0)), img)


def film_grain(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Add gray grain of standard deviation ``strength`` (0-255 scale), slightly blurred so it clumps like
    silver halide rather than looking like sensor noise."""
    if strength <= 0:
        return img
    g = cv2.GaussianBlur(rng.standard_normal(img.shape[:2], dtype=np.float32), (0, 0), 0.7)
    g *= np.float32(strength / max(float(g.std()), 1e-6))
    return _like(_float(img) + g[:, :, None], img)


def _fixed(value: float) -> int:
    """A coordinate in OpenCV's fixed point with shift=4 (1/16 pixel), for sub-pixel drawing."""
    return round(float(value) * 16)


def _draw_scratches(masks: tuple[np.ndarray, np.ndarray], density: float, rng: np.random.Generator) -> None:
    """Poisson(density) near-vertical lines into the (dark, bright) alpha masks, uint8 0-255."""
    h, w = masks[0].shape
    unit = max(1.0, w / 400.0)  # line widths and speck sizes grow with the frame, like damage on the film
    for _ in range(int(rng.poisson(density))):
        x0 = rng.uniform(0, w)
        x1 = x0 + rng.uniform(-1.0, 1.0) * w / 200.0
        y0, y1 = rng.uniform(0, 0.4) * h, rng.uniform(0.6, 1.0) * h
        mask = masks[int(rng.random() < 0.7)]  # mostly bright: scratched emulsion lets the light through
        alpha = int(rng.uniform(0.3, 0.8) * 255)
        thickness = max(1, round(float(unit * rng.uniform(0.5, 1.5))))
        pts = [(_fixed(x), _fixed(y)) for x, y in ((x0, y0), (x1, y1))]
        cv2.line(mask, pts[0], pts[1], alpha, thickness, cv2.LINE_AA, shift=4)


def _draw_dust(masks: tuple[np.ndarray, np.ndarray], density: float, rng: np.random.Generator) -> None:
    """Poisson(density) small specks into the (dark, bright) alpha masks."""
    h, w = masks[0].shape
    unit = max(1.0, w / 320.0)
    for _ in range(int(rng.poisson(density))):
        centre = (_fixed(rng.uniform(0, w)), _fixed(rng.uniform(0, h)))
        axes = (_fixed(unit * rng.uniform(0.5, 2.0)), _fixed(unit * rng.uniform(0.5, 2.0)))
        mask = masks[int(rng.random() < 0.3)]  # mostly dark: dust on the print blocks the light
        cv2.ellipse(mask, centre, axes, rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA, shift=4)


def scratches_and_dust(img: np.ndarray, scratches: float, dust: float, rng: np.random.Generator) -> np.ndarray:
    """Vertical scratches and dust specks, new ones every frame (both drawn from ``rng``)."""
    if scratches <= 0 and dust <= 0:
        return img
    masks = (np.zeros(img.shape[:2], np.uint8), np.zeros(img.shape[:2], np.uint8))
    _draw_scratches(masks, scratches, rng)
    _draw_dust(masks, dust, rng)
    out = _float(img)
    for mask, value in zip(masks, (25.0, 235.0)):
        if mask.any():
            a = (mask.astype(np.float32) / 255.0)[:, :, None]
            out = out * (1 - a) + value * a
    return _like(out, img)


def old_film(img: np.ndarray, film: FilmParams, rng: np.random.Generator) -> np.ndarray:
    """The whole old-film look: colour fade, brightness flicker, grain, scratches and dust (in that order)."""
    out = fade_colours(img, film.fade)
    out = flicker(out, film.flicker, rng)
    out = film_grain(out, film.grain, rng)
    return scratches_and_dust(out, film.scratches, film.dust, rng)
