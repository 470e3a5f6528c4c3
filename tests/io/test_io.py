"""Streaming I/O: timestamps, packet copy, rotation, odd sizes, image sequences, atomic writes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from fvr.errors import InputError, OutputError
from fvr.io import EncodeOptions, MediaSource, check_output_path, open_sink, probe
from fvr.io.sink import subtitle_text
from media import face_clip, read_frames, read_packets, write_video


def _copy(src_path: Path, dst: Path, transform=lambda rgb: rgb, options: EncodeOptions = EncodeOptions(crf=10)) -> None:
    with MediaSource(src_path) as src:
        with open_sink(dst, src.info, (src.info.width, src.info.height), options, src.copyable_streams) as sink:
            for item in src.media():
                if isinstance(item, av.Packet):
                    sink.copy_packet(item)
                else:
                    sink.write(transform(item.rgb), item.pts)


def test_vfr_timestamps_and_audio_survive(tmp_path: Path) -> None:
    pts = [0, 40, 80, 200, 230, 300, 500, 540, 580, 900]  # ms: irregular (variable frame rate)
    src = write_video(tmp_path / "in.mp4", face_clip(len(pts), 128), pts=pts, audio=True)
    dst = tmp_path / "out.mp4"
    _copy(src, dst)
    frames_in, times_in = read_frames(src)
    frames_out, times_out = read_frames(dst)
    assert len(frames_out) == len(frames_in) == len(pts)
    assert times_out == pytest.approx([p / 1000 for p in pts], abs=1e-6)
    audio_in, audio_out = read_packets(src, "audio"), read_packets(dst, "audio")
    assert len(audio_in) > 10
    assert [p for _, p in audio_out] == [p for _, p in audio_in]  # bit-identical payloads, same order
    assert [t for t, _ in audio_out] == [t for t, _ in audio_in]


def test_subtitles_copied_untouched(tmp_path: Path) -> None:
    src = write_video(tmp_path / "in.mkv", face_clip(8, 64), subtitles=True)
    dst = tmp_path / "out.mkv"
    _copy(src, dst)
    subs = read_packets(dst, "subtitle")
    assert [p for _, p in subs] == [b"first line", b"second line"]


def test_subrip_into_mp4_becomes_mov_text(tmp_path: Path) -> None:
    src = write_video(tmp_path / "in.mkv", face_clip(8, 64), subtitles=True)
    dst = tmp_path / "out.mp4"  # mp4 holds mov_text only, not SubRip
    _copy(src, dst)
    assert read_frames(dst)[0].shape[0] == 8
    with av.open(str(dst)) as c:
        (stream,) = [s for s in c.streams if s.type == "subtitle"]
        assert stream.codec_context.name == "mov_text"
    texts = [subtitle_text(p, "mov_text") for _, p in read_packets(dst, "subtitle")]
    assert [t for t in texts if t] == ["first line", "second line"]  # the muxer adds empty cues in the gaps
    times = [t for t, p in read_packets(dst, "subtitle") if subtitle_text(p, "mov_text")]
    assert times == [0, 500]


def test_subtitle_text_of_each_format() -> None:
    assert subtitle_text(b"0,0,Default,,0,0,0,,{\\i1}Hello{\\i0}\\Nworld", "ass") == "Hello\nworld"
    assert subtitle_text(b"\x00\x05hello", "mov_text") == "hello"
    assert subtitle_text("caf\u00e9".encode(), "subrip") == "caf\u00e9"


def test_unsupported_audio_is_left_out_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = write_video(tmp_path / "in.mp4", face_clip(8, 64), audio=True)  # AAC: not storable in WebM
    dst = tmp_path / "out.webm"
    _copy(src, dst, options=EncodeOptions(crf=30, preset=None))
    assert read_frames(dst)[0].shape[0] == 8
    assert "left out" in caplog.text


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path: Path, rotation: int) -> None:
    img = np.zeros((4, 32, 48, 3), np.uint8)
    img[:, :8, :8] = 255  # white block at the top-left of the coded picture
    src = write_video(tmp_path / "rot.mp4", img, rotation=rotation)
    info = probe(src)
    assert info.rotation == rotation
    frames, _ = read_frames(src)
    expected = np.rot90(img[0], k=rotation // 90)
    assert frames[0].shape == expected.shape
    assert (info.width, info.height) == (expected.shape[1], expected.shape[0])
    bright = frames[0].mean(axis=2) > 128
    assert (bright == (expected.mean(axis=2) > 128)).mean() > 0.97


def test_odd_size_padded_to_even_for_players(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clip = face_clip(5, 64)[:, :63, :61]
    src = write_video(tmp_path / "odd.mkv", clip, pix_fmt="yuv444p")
    dst = tmp_path / "out.mp4"
    _copy(src, dst)
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    frames, _ = read_frames(dst)
    assert frames.shape == (5, 64, 62, 3)  # one edge row and column repeated
    assert np.abs(frames[:, :63, :61].astype(int) - clip.astype(int)).mean() < 5  # 4:2:0 chroma
    assert np.abs(frames[:, 63].astype(int) - frames[:, 62].astype(int)).mean() < 3
    assert "padded to 62x64" in caplog.text


def test_odd_size_kept_exactly_with_yuv444p(tmp_path: Path) -> None:
    clip = face_clip(5, 64)[:, :63, :61]
    src = write_video(tmp_path / "odd.mkv", clip, pix_fmt="yuv444p")
    dst = tmp_path / "out.mp4"
    _copy(src, dst, options=EncodeOptions(crf=10, pix_fmt="yuv444p"))
    frames, _ = read_frames(dst)
    assert frames.shape == (5, 63, 61, 3)
    assert np.abs(frames.astype(int) - clip.astype(int)).mean() < 3


def test_grayscale_input(tmp_path: Path) -> None:
    clip = face_clip(4, 64)
    src = write_video(tmp_path / "gray.mkv", clip, codec="ffv1", pix_fmt="gray")
    frames, _ = read_frames(src)
    assert frames.shape == (4, 64, 64, 3)
    assert np.array_equal(frames[..., 0], frames[..., 1])


def test_image_sequence_in_and_out(tmp_path: Path) -> None:
    import cv2

    folder = tmp_path / "seq"
    folder.mkdir()
    clip = face_clip(12, 64)
    for i, rgb in enumerate(clip):  # natural order: frame_2 sorts before frame_10
        cv2.imwrite(str(folder / f"frame_{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    info = probe(folder, sequence_fps=30)
    assert info.is_image_sequence and info.num_frames == 12 and info.fps == 30
    dst = tmp_path / "out_seq"
    _copy(folder, dst)
    assert sorted(p.name for p in dst.iterdir())[:2] == ["000000.png", "000001.png"]
    frames, _ = read_frames(dst)
    assert np.array_equal(frames, clip)  # PNG is lossless


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    src = write_video(tmp_path / "in.mp4", face_clip(6, 64), audio=True)
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"previous output")

    def boom(rgb: np.ndarray) -> np.ndarray:
        raise RuntimeError("simulated failure mid-way")

    with pytest.raises(RuntimeError):
        _copy(src, dst, transform=boom)
    assert dst.read_bytes() == b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


def test_output_checks(tmp_path: Path) -> None:
    src = write_video(tmp_path / "in.mp4", face_clip(3, 64))
    with pytest.raises(OutputError, match="is the input"):
        check_output_path(src, src)
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "out.mp4", src)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.access(ro, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("permissions are not enforced for this user")
        with pytest.raises(OutputError, match="not writable"):
            check_output_path(ro / "out.mp4", src)
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "cannot open"),
        (b"this is plain text, not a video\n" * 50, "cannot open"),
    ],
)
def test_not_a_video(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        probe(path)


def test_truncated_video(tmp_path: Path) -> None:
    src = write_video(tmp_path / "in.mp4", face_clip(20, 128))
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # moov atom (at the end) is lost
    with pytest.raises(InputError):
        with MediaSource(cut) as s:
            list(s.frames())


def test_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "empty.mkv"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()
    with pytest.raises(InputError):
        probe(path)


def test_frames_stream_lazily(tmp_path: Path) -> None:
    src = write_video(tmp_path / "in.mp4", face_clip(30, 64))
    with MediaSource(src) as s:
        it = s.frames()
        first = next(it)
        assert first.index == 0 and first.rgb.shape == (64, 64, 3)
        # a generator, not a list: nothing forces all frames into memory
        assert not isinstance(it, list)
        assert sum(1 for _ in it) == 29


def test_second_pass_rewinds(tmp_path: Path) -> None:
    src = write_video(tmp_path / "in.mp4", face_clip(10, 64), audio=True)
    with MediaSource(src) as s:
        a = [f.pts for f in s.frames()]
        s.rewind()
        assert len(s.copyable_streams) == 1
        b = [item.pts for item in s.media() if not isinstance(item, av.Packet)]
    assert a == b and len(a) == 10


def test_time_base_kept(tmp_path: Path) -> None:
    src = write_video(tmp_path / "in.mp4", face_clip(5, 64), time_base=Fraction(1, 90000))
    info = probe(src)
    assert info.fps == 25


class _ClosingProbe:
    """Stands in for a source's container at close time and records FFmpeg's log level then."""

    def __init__(self, container: av.container.InputContainer):
        self.container, self.level_at_close = container, "not closed"
        self.streams = container.streams  # the decoders are drained through them before the close

    def close(self) -> None:
        self.level_at_close = av.logging.get_level()
        self.container.close()


def test_abandoned_pass_ends_before_its_container_closes(tmp_path: Path) -> None:
    """A pass left mid-way (a failed segment, --resume) is ended, and the container is closed with FFmpeg's
    logging off: closing joins frame threads under the GIL, and a thread logging then would hang for ever."""
    import av.logging

    src = write_video(tmp_path / "in.mp4", face_clip(30, 64))
    before = av.logging.get_level()
    s = MediaSource(src)
    it = s.frames()
    next(it)
    assert av.logging.get_level() == av.logging.ERROR  # the pass captures FFmpeg's error reports
    probe_ = _ClosingProbe(s._container)
    s._container = probe_  # type: ignore[assignment]
    s.close()
    assert probe_.level_at_close is None
    assert av.logging.get_level() == before  # the abandoned pass's clean-up ran at close, not at GC
    assert list(it) == []  # and it yields nothing more


def test_closing_one_source_keeps_another_pass_capturing(tmp_path: Path) -> None:
    """Closing a second source (a segment's reader) mid-way through a pass must not switch that pass's error
    capture off: corrupt data after that point would go unreported."""
    import av.logging

    a = write_video(tmp_path / "a.mp4", face_clip(12, 64))
    b = write_video(tmp_path / "b.mp4", face_clip(12, 64))
    before = av.logging.get_level()
    with MediaSource(a) as sa:
        frames_a = sa.frames()
        next(frames_a)
        with MediaSource(b) as sb:
            next(sb.frames())
        assert av.logging.get_level() == av.logging.ERROR
        assert sum(1 for _ in frames_a) == 11
    assert av.logging.get_level() == before


def test_seek_pass_ends_on_close(tmp_path: Path) -> None:
    import av.logging

    src = write_video(tmp_path / "in.mp4", face_clip(30, 64))
    before = av.logging.get_level()
    with MediaSource(src) as s:
        pts = np.array([f.pts for f in s.frames()])
        it = s.frames_from(10, pts)
        assert next(it).index == 10
    assert av.logging.get_level() == before
    assert list(it) == []


def test_passes_ending_out_of_order_put_the_log_level_back(tmp_path: Path) -> None:
    """The benchmark reads several videos in step and their passes end in any order: FFmpeg's log level (one per
    process) must come back to what it was before the first pass, not to a level some other pass saved."""
    import av.logging

    a = write_video(tmp_path / "a.mp4", face_clip(6, 64))
    b = write_video(tmp_path / "b.mp4", face_clip(9, 64))
    before = av.logging.get_level()
    with MediaSource(a) as sa, MediaSource(b) as sb:
        pa, pb = sa.frames(), sb.frames()
        next(pa)
        next(pb)  # b starts while a runs ...
        assert sum(1 for _ in pa) == 5  # ... a ends first
        assert av.logging.get_level() == av.logging.ERROR  # b still captures
        assert sum(1 for _ in pb) == 8
    assert av.logging.get_level() == before


def _x264_settings(path: Path) -> str:
    """The settings x264 writes into its first packet (an SEI text: "... mbtree=0 ...")."""
    first = read_packets(path, "video")[0][1]
    start = first.find(b"x264 - core")
    return first[start:first.find(b"\x00", start)].decode("ascii", "replace")


def test_x264_encodes_repeatably_unless_told_otherwise(tmp_path: Path) -> None:
    """fvr turns x264's macroblock tree off (its bytes depended on thread timing: docs/provenance.md); an
    ``x264-params`` of the user's replaces that choice."""
    frames = face_clip(6, 64)
    with MediaSource(write_video(tmp_path / "in.mp4", frames)) as src:
        info = src.info
    for name, extra, expected in (("a.mp4", {}, "mbtree=0"), ("b.mp4", {"x264-params": "mbtree=1"}, "mbtree=1")):
        with open_sink(tmp_path / name, info, (64, 64), EncodeOptions(extra=extra)) as sink:
            for i, frame in enumerate(frames):
                sink.write(frame, i)
        assert expected in _x264_settings(tmp_path / name)
