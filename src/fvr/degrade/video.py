"""Whole-clip degradation: per-frame chain, in-memory codec pass for training, and ``degrade_video`` for files.

Randomness: the clip's parameters come from ``default_rng(seed)`` (:func:`fvr.degrade.sample_params`); the
per-frame noise and old-film damage come from :func:`frame_rng` (seed, frame index), so a frame's degradation
does not depend on how many frames were read before it or how the caller batches them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fvr.degrade.ops import (
    add_gaussian_noise,
    apply_kernel,
    blur_kernel,
    crop_for_scale,
    gt_crop,
    jpeg_roundtrip,
    lq_size,
    old_film,
    resize_down,
)
from fvr.degrade.params import BlurParams, DegradeParams, check_seed, describe
from fvr.errors import ConfigError, InputError, OutputError, reason

if TYPE_CHECKING:
    import av

    from fvr.io import EncodeOptions

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage, done, total): stage is "degrade"; total is the container's frame count (0 when unknown)."""

# Tag of the per-frame random streams: default_rng(seed) (the clip's parameters) and default_rng([seed, 0])
# would share their state (SeedSequence pads with zeros), so frame streams carry a non-zero tag.
_FRAME_STREAM = 1
# Reproducible x264. Its output depends on the thread count, so that is fixed (frame threads, as the ffmpeg
# command line uses). And with its default CPU-specific code paths, x264 (the build PyAV ships, on AVX-512 CPUs)
# gave different bitstreams for identical input from one run to the next; cpu-independent=1 makes it choose the
# same algorithms on every CPU: identical output run to run (tested) and, by design, across CPUs.
X264_OPTIONS = {"threads": "4", "thread_type": "frame", "x264-params": "cpu-independent=1"}
# Storage when the degradation has no codec pass (crf None, e.g. the jpeg preset): near-lossless, full chroma.
STORAGE_CRF = 1
STORAGE_PIX_FMT = "yuv444p"
_VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v")


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of frame ``index`` of a clip degraded with ``seed`` (noise, old-film damage)."""
    return np.random.default_rng([check_seed(seed), _FRAME_STREAM, int(index)])


@lru_cache(maxsize=32)
def _kernel(blur: BlurParams) -> np.ndarray | None:
    return blur_kernel(blur)  # one kernel per clip: build it once, not per frame


def degrade_frame(rgb: np.ndarray, params: DegradeParams, rng: np.random.Generator) -> np.ndarray:
    """Degrade one frame, everything but the codec pass (see :func:`degrade_frames` for that).

    rgb: (H, W, 3) uint8 RGB. Returns (H' / scale, W' / scale, 3) uint8 where (W', H') = gt_crop(W, H, scale):
    the frame is first cropped, top-left anchored, to multiples of 2*scale. ``rng`` supplies the noise and the
    old-film damage (use :func:`frame_rng` for reproducible clips). Computed in float32, rounded once at the end.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputError(f"degrade_frame needs (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    img = crop_for_scale(rgb, params.scale).astype(np.float32)
    img = apply_kernel(img, _kernel(params.blur))
    if params.film is not None:
        img = old_film(img, params.film, rng)  # damage is on the film, so at full resolution
    img = add_gaussian_noise(img, params.noise_before.sigma, params.noise_before.gray, rng)
    img = resize_down(img, params.scale, params.interpolation)
    img = add_gaussian_noise(img, params.noise_after.sigma, params.noise_after.gray, rng)
    if params.jpeg_quality is not None:
        img = jpeg_roundtrip(img, params.jpeg_quality)
    return (np.clip(img, 0, 255) + 0.5).astype(np.uint8)


def x264_options(crf: int, preset: str) -> dict[str, str]:
    """The encoder options of the codec pass (same for the in-memory pass and the file)."""
    return {**X264_OPTIONS, "crf": str(crf), "preset": preset}


def _video_frame(rgb: np.ndarray) -> av.VideoFrame:
    import av

    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")


class CodecPass:
    """libx264 encode + h264 decode in memory, streaming: push RGB frames, get decoded RGB frames back.

    The encoder holds frames back (look-ahead, B-frames, frame threads), so :meth:`push` returns 0..n frames;
    :meth:`flush` drains encoder and decoder. Every pushed frame comes back once, in order.
    """

    def __init__(self, params: DegradeParams):
        if params.crf is None:
            raise ConfigError("the codec pass needs a crf")
        self.params = params
        self._enc: av.VideoCodecContext | None = None
        self._dec: av.VideoCodecContext | None = None
        self._size: tuple[int, int] | None = None
        self.pushed = self.returned = 0

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        """Open encoder and decoder for width x height frames; returns the encoder."""
        import av  # here, not at module level: the in-memory ops of this module work without PyAV

        enc = av.CodecContext.create(self.params.codec, "w")
        if not isinstance(enc, av.VideoCodecContext):  # params.codec is one of CODECS, all video encoders
            raise AttributeError(f"'{type(enc).__name__}' object has no attribute 'width'")
        enc.width, enc.height, enc.pix_fmt = width, height, self.params.pix_fmt
        enc.time_base, enc.framerate = Fraction(1, 25), Fraction(25)  # x264's rate control reads frame durations
        enc.options = x264_options(self.params.crf, self.params.codec_preset)  # type: ignore[arg-type]
        self._enc, self._dec, self._size = enc, av.CodecContext.create("h264", "r"), (width, height)
        return enc

    def _decode(self, packets: Iterable[av.Packet | None]) -> list[np.ndarray]:
        assert self._dec is not None
        out = [f.to_ndarray(format="rgb24") for p in packets for f in self._dec.decode(p)]
        self.returned += len(out)
        return out

    def push(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Encode one (H, W, 3) uint8 frame (H, W even for yuv420p); returns the frames decoded so far."""
        h, w = rgb.shape[:2]
        enc, size = self._enc, self._size  # both set by _open
        if enc is None or size is None:
            enc = self._open(w, h)
        elif size != (w, h):
            raise InputError(f"frame {self.pushed} is {w}x{h}, the clip is {size[0]}x{size[1]}")
        frame = _video_frame(rgb)
        frame.pts = self.pushed
        self.pushed += 1
        return self._decode(enc.encode(frame))

    def flush(self) -> list[np.ndarray]:
        """Drain the encoder (encode(None)) and the decoder (decode(None)): the held-back frames."""
        if self._enc is None:
            return []
        out = self._decode([*self._enc.encode(None), None])
        if self.returned != self.pushed:
            raise RuntimeError(f"codec pass lost frames: {self.pushed} in, {self.returned} out")
        return out


def degrade_frames(frames: Iterable[np.ndarray], params: DegradeParams, seed: int) -> Iterator[np.ndarray]:
    """Degrade a clip in memory, streaming, including the real libx264 pass at ``params.crf``.

    frames: (H, W, 3) uint8 RGB, all the same size. Yields one (H' / scale, W' / scale, 3) uint8 frame per input
    frame, in order (see :func:`degrade_frame` for the crop). Frame i's noise comes from frame_rng(seed, i).
    Memory is bounded by the encoder's look-ahead (a few dozen low-quality frames).
    """
    seed = check_seed(seed)
    codec = CodecPass(params) if params.crf is not None else None
    for i, rgb in enumerate(frames):
        lq = degrade_frame(rgb, params, frame_rng(seed, i))
        if codec is None:
            yield lq
        else:
            yield from codec.push(lq)
    if codec is not None:
        yield from codec.flush()


def sidecar_path(output: str | Path) -> Path:
    """Where :func:`degrade_video` writes its JSON record: ``<output>.json`` (``clip.mp4`` -> ``clip.mp4.json``)."""
    return Path(str(output) + ".json")


def _encode_options(params: DegradeParams) -> EncodeOptions:
    from fvr.io import EncodeOptions

    if params.crf is None:  # no codec in the degradation: store what was made as faithfully as x264 allows
        return EncodeOptions("libx264", STORAGE_CRF, params.codec_preset, STORAGE_PIX_FMT, dict(X264_OPTIONS))
    return EncodeOptions(params.codec, params.crf, params.codec_preset, params.pix_fmt, dict(X264_OPTIONS))


def _check_request(output: str | Path, input: str | Path, seed: int, max_frames: int | None) -> Path:
    check_seed(seed)
    if max_frames is not None and (isinstance(max_frames, bool) or int(max_frames) < 1):
        raise ConfigError(f"max_frames must be at least 1, got {max_frames}")
    from fvr.io import check_output_path

    out = check_output_path(output, input)
    if out.suffix.lower() not in _VIDEO_SUFFIXES:
        raise OutputError(f"output {out} must be a video file ({', '.join(_VIDEO_SUFFIXES)}): the codec pass is "
                          "part of the degradation")
    if sidecar_path(out).is_dir():
        raise OutputError(f"{sidecar_path(out)} is a folder; the JSON record cannot be written")
    return out


AUDIO_NOTE = "dropped (the output is a degraded benchmark/training input; only its frames matter)"


@dataclass(frozen=True)
class DegradeRecord:
    """How a clip was degraded: the JSON sidecar ``<output>.json`` (:meth:`to_dict` is its content, field for
    field), enough to reproduce it (``fvr degrade --params``) and to align it with its ground truth.

    input_size / output_size: (width, height). crop: (x, y, width, height) of the ground truth the degraded frames
    correspond to (the input cut to a multiple of the scale). codec: the x264 pass of the protocol (None for
    presets without one); storage: how a preset without a codec pass is stored (near-losslessly) instead.
    """

    fvr: str
    preset: str
    seed: int
    params: DegradeParams
    summary: str
    input: str
    input_size: tuple[int, int]
    crop: tuple[int, int, int, int]
    output: str
    output_size: tuple[int, int]
    frames: int
    max_frames: int | None
    fps: float
    time_base: str
    codec: dict[str, Any] | None
    storage: dict[str, Any] | None
    audio: str = AUDIO_NOTE

    def to_dict(self) -> dict[str, Any]:
        x, y, w, h = self.crop
        return {
            "fvr": self.fvr, "preset": self.preset, "seed": self.seed, "params": self.params.to_dict(),
            "summary": self.summary, "input": self.input, "input_size": list(self.input_size),
            "crop": {"x": x, "y": y, "width": w, "height": h}, "output": self.output,
            "output_size": list(self.output_size), "frames": self.frames, "max_frames": self.max_frames,
            "fps": self.fps, "time_base": self.time_base, "codec": self.codec, "storage": self.storage,
            "audio": self.audio,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DegradeRecord:
        """A sidecar's content; KeyError/ValueError/TypeError (or ConfigError for its params) when it is not one."""
        crop = data["crop"]
        return cls(
            str(data["fvr"]), str(data["preset"]), int(data["seed"]), DegradeParams.from_dict(data["params"]),
            str(data["summary"]), str(data["input"]), _pair(data["input_size"]),
            (int(crop["x"]), int(crop["y"]), int(crop["width"]), int(crop["height"])), str(data["output"]),
            _pair(data["output_size"]), int(data["frames"]), data["max_frames"], float(data["fps"]),
            str(data["time_base"]), data["codec"], data["storage"], str(data.get("audio", AUDIO_NOTE)),
        )


def _pair(values: Any) -> tuple[int, int]:
    a, b = values
    return int(a), int(b)


def _record(params: DegradeParams, seed: int, input: str | Path, output: Path, info: Any, frames: int,
            max_frames: int | None) -> DegradeRecord:
    from fvr import __version__

    cw, ch = gt_crop(info.width, info.height, params.scale)
    enc = _encode_options(params)
    codec = None if params.crf is None else {"name": enc.codec, "crf": enc.crf, "preset": enc.preset,
                                              "pix_fmt": enc.pix_fmt, **X264_OPTIONS}
    storage = None if codec else {"name": enc.codec, "crf": enc.crf, "pix_fmt": enc.pix_fmt,
                                  "note": "near-lossless storage, not part of the degradation"}
    return DegradeRecord(__version__, params.preset, seed, params, describe(params), str(input),
                         (info.width, info.height), (0, 0, cw, ch), str(output),
                         lq_size(info.width, info.height, params.scale), frames, max_frames, float(info.fps),
                         str(info.time_base), codec, storage)


def _write_temp_json(target: Path, data: dict[str, Any]) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.fvr-tmp-", suffix=".json", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
    except OSError as exc:
        Path(name).unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {reason(exc)}") from None
    return Path(name)


def degrade_video(
    input: str | Path,
    output: str | Path,
    params: DegradeParams,
    seed: int,
    *,
    max_frames: int | None = None,
    progress: ProgressCallback | None = None,
) -> DegradeRecord:
    """Degrade a video (or image-sequence folder) into ``output`` and record how in ``<output>.json``.

    Frames are streamed (bounded memory), read upright (rotation applied) and keep their timestamps. The output is
    encoded once, with libx264 at ``params.crf``: that encode is the protocol's codec pass. With ``crf`` None it is
    stored near-losslessly (x264 CRF 1, yuv444p; the record says ``"codec": null``). Audio and subtitles are
    dropped: the output is a degraded input for benchmarks and training, where only the frames count.
    ``max_frames`` keeps the first N frames. Both files appear only when complete. Returns the record.
    """
    out = _check_request(output, input, seed, max_frames)
    from fvr.io import MediaSource, open_sink

    with MediaSource(input) as source:
        info = source.info
        size = lq_size(info.width, info.height, params.scale)  # InputError for frames smaller than 2*scale
        total = info.num_frames
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        with open_sink(out, info, size, _encode_options(params)) as sink:
            count = 0
            for frame in source.frames():
                if max_frames is not None and count >= max_frames:
                    break
                sink.write(degrade_frame(frame.rgb, params, frame_rng(seed, frame.index)), frame.pts)
                count += 1
                if progress is not None:
                    progress("degrade", count, total)
            record = _record(params, seed, input, out, info, count, max_frames)
            tmp = _write_temp_json(sidecar_path(out), record.to_dict())
            committed = False
            try:
                sink.commit()
                committed = True
                os.replace(tmp, sidecar_path(out))
            except BaseException:
                tmp.unlink(missing_ok=True)
                if committed:
                    out.unlink(missing_ok=True)  # never a video without its record
                raise
    return record
