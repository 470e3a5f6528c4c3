"""``fvr batch`` (fvr.run.batch): many videos and long ones on a local Ray cluster, outputs equal to one process.

One local Ray cluster (2 CPUs, loopback) is shared by the whole module; run_batch uses the connection the process
already has. Outputs are encoded losslessly (CRF 0) where they are compared with single-process runs: x264 at a
lossy CRF is not bit-repeatable from one encode to the next here (even ``restore_video`` against itself), so
lossless encoding makes "the same restored frames" exactly checkable in the decoded output.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from fvr.cli.progress import batch_progress, summary_table
from fvr.errors import ConfigError, InputError
from fvr.io import EncodeOptions
from fvr.provenance.record import load_record, record_path
from fvr.run.batch import BatchProgress, collect_videos, output_path, run_batch
from fvr.run.config import RestoreConfig
from fvr.run.jobs import job_dir, restore_video_job
from fvr.run.pipeline import restore_video
from media import face_clip, read_frames, read_packets, write_video

ray = pytest.importorskip("ray", reason='Ray is not installed: pip install "fvr[batch]"')

SEGMENT = 8  # the short clips are one segment each, the long one four (8 + 8 + 8 + 6 frames)
LOSSLESS = EncodeOptions(crf=0)


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module (starting one takes seconds); run_batch reuses this connection."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three short clips (one with audio, one .mkv), a long one with audio, and a corrupt "video"."""
    folder = tmp_path_factory.mktemp("batch-in")
    write_video(folder / "a.mp4", face_clip(SEGMENT, 160), audio=True)
    write_video(folder / "b.mp4", face_clip(SEGMENT, 160, fov=240))
    write_video(folder / "c.mkv", face_clip(SEGMENT, 160, fov=170))
    write_video(folder / "long.mp4", face_clip(30, 160), audio=True)
    (folder / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (folder / "notes.txt").write_text("not a video")
    return folder


def _same_video(a: Path, b: Path) -> None:
    fa, ta = read_frames(a)
    fb, tb = read_frames(b)
    assert ta == tb, f"{a.name}: timestamps differ"
    assert np.array_equal(fa, fb), f"{a.name}: decoded frames differ"


def test_inputs_and_output_names(tmp_path: Path, clips: Path):
    assert [p.name for p in collect_videos([clips])] == ["a.mp4", "b.mp4", "broken.mp4", "c.mkv", "long.mp4"]
    assert collect_videos([clips / "a.mp4", clips, clips / "notes.txt"])[-1].name == "notes.txt"
    assert output_path(Path("x/clip.MKV"), tmp_path) == tmp_path / "clip.mkv"
    assert output_path(Path("x/clip.avi"), tmp_path) == tmp_path / "clip.mp4"
    with pytest.raises(InputError, match="not found"):
        collect_videos([tmp_path / "missing.mp4"])
    (tmp_path / "other").mkdir()
    shutil.copy(clips / "a.mp4", tmp_path / "other" / "a.mp4")
    with pytest.raises(ConfigError, match="both be written"):
        run_batch([clips / "a.mp4", tmp_path / "other" / "a.mp4"], tmp_path / "out", RestoreConfig(model="classical"))


def test_unreachable_cluster_fails_fast():
    from fvr.run.batch import check_reachable

    with pytest.raises(ConfigError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        check_reachable("127.0.0.1:1", timeout=5)
    check_reachable("auto")  # left to Ray


def test_missing_ray_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clips: Path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r'pip install "fvr\[batch\]"'):
        run_batch([clips / "a.mp4"], tmp_path, RestoreConfig(model="classical"))


def test_batch_equals_single_process(cluster: None, clips: Path, tmp_path: Path):
    """Three short clips, a long one split into 4 segments restored on 2 actors, and a corrupt file: the corrupt
    one fails with a one-line error, every other output equals the single-process job in decoded frames,
    timestamps and audio packets."""
    config = RestoreConfig(model="classical", encode=LOSSLESS)
    snapshots: list[BatchProgress] = []
    out = tmp_path / "out"
    screen = Console(file=io.StringIO(), width=120, force_terminal=False)
    with batch_progress(screen) as bars:

        def progress(snapshot: BatchProgress) -> None:
            snapshots.append(snapshot)
            bars(snapshot)

        summary = run_batch([clips], out, config, workers=2, segment_frames=SEGMENT, progress=progress)

    by_name = {Path(v.input).name: v for v in summary.videos}
    assert set(by_name) == {"a.mp4", "b.mp4", "c.mkv", "long.mp4", "broken.mp4"}
    broken = by_name.pop("broken.mp4")
    assert broken.status == "failed" and "cannot open" in broken.error and "\n" not in broken.error
    assert not (out / "broken.mp4").exists() and not job_dir(out / "broken.mp4").exists()
    assert all(v.status == "done" for v in by_name.values())
    assert by_name["long.mp4"].segments == 4 and by_name["long.mp4"].frames == 30
    assert by_name["a.mp4"].segments == 1 and summary.frames == 3 * SEGMENT + 30
    assert summary.workers == 2 and summary.threads == [1, 1] and summary.fps > 0

    reference = tmp_path / "reference"
    reference.mkdir()
    for name, result in by_name.items():
        assert Path(result.output) == output_path(clips / name, out) and not job_dir(Path(result.output)).exists()
        single = restore_video_job(clips / name, reference / name, config, segment_frames=SEGMENT)
        assert single.frames == result.frames
        _same_video(Path(result.output), reference / name)
        assert read_packets(Path(result.output), "audio") == read_packets(clips / name, "audio")
    assert read_packets(out / "a.mp4", "audio")  # the audio really was copied
    # a short video is one segment, and one segment equals the single pass of restore_video
    restore_video(clips / "a.mp4", reference / "a-single.mp4", config)
    _same_video(out / "a.mp4", reference / "a-single.mp4")

    last = snapshots[-1]
    assert last.frames_done == last.frames_total == summary.frames
    states = {v.name: v for v in last.videos}
    assert states["broken.mp4"].state == "failed" and states["long.mp4"].segments_done == 4
    long_done = [s for s in (next(v for v in s.videos if v.name == "long.mp4") for s in snapshots)]
    assert any(0 < v.segments_done < 4 for v in long_done)  # per-segment progress, not one jump
    saved = json.loads((out / "batch-summary.json").read_text())
    assert saved["totals"]["failed"] == 1 and saved["totals"]["frames"] == summary.frames
    drawn = screen.file.getvalue()
    assert "all videos" in drawn and "long.mp4" in drawn
    screen.print(summary_table(summary))
    assert "4/5 done" in screen.file.getvalue()


class _Kill(Exception):
    pass


def test_resume_keeps_finished_segments_and_videos(cluster: None, clips: Path, tmp_path: Path):
    """An interrupted job in the batch's output folder is resumed from its finished segments; a second resumed
    batch skips the finished videos."""
    config = RestoreConfig(model="classical", encode=LOSSLESS)
    out = tmp_path / "out"
    out.mkdir()

    def kill_after_two(stage: str, done: int, total: int) -> None:
        if stage == "restore" and done > 2 * SEGMENT:  # the first frame of the third segment
            raise _Kill

    with pytest.raises(_Kill):
        restore_video_job(clips / "long.mp4", out / "long.mp4", config, segment_frames=SEGMENT,
                          progress=kill_after_two)
    inputs = [clips / "long.mp4", clips / "a.mp4"]
    first = run_batch(inputs, out, config, workers=2, segment_frames=SEGMENT, resume=True)
    assert [v.status for v in first.videos] == ["done", "done"]
    assert first.videos[0].resumed_segments == 2 and first.videos[0].frames == 30
    restore_video_job(clips / "long.mp4", tmp_path / "reference.mp4", config, segment_frames=SEGMENT)
    _same_video(out / "long.mp4", tmp_path / "reference.mp4")

    again = run_batch(inputs, out, config, workers=2, segment_frames=SEGMENT, resume=True)
    assert all(v.skipped and v.status == "done" for v in again.videos)
    assert again.videos[0].frames == 30
    other = run_batch(inputs[:1], out, RestoreConfig(model="classical", encode=LOSSLESS, strength=0.5),
                      workers=1, segment_frames=SEGMENT, resume=True)
    assert not other.videos[0].skipped and other.videos[0].status == "done"  # other settings: redone


def test_learned_model_on_actors(cluster: None, clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """fvr-fast (torch weights shipped to the actors through the object store), the long clip in 4 segments on
    2 actors, each actor replaced by a fresh process after every segment: the same frames as the single-process
    job."""
    from fvr.run import batch

    recycled: list[int] = []
    original = batch.WorkerPool.recycle

    def counting(self, slot):
        recycled.append(slot.segments)
        return original(self, slot)

    monkeypatch.setattr(batch.WorkerPool, "recycle", counting)
    config = RestoreConfig(model="fvr-fast", device="cpu", encode=LOSSLESS)
    summary = run_batch([clips / "long.mp4"], tmp_path / "out", config, workers=2, segment_frames=SEGMENT,
                        segments_per_worker=1)
    assert summary.model == "fvr-fast" and summary.videos[0].status == "done"
    assert summary.videos[0].segments == 4
    assert recycled == [1, 1, 1, 1]  # a fresh actor after each of the 4 segments
    restore_video_job(clips / "long.mp4", tmp_path / "reference.mp4", config, segment_frames=SEGMENT)
    _same_video(tmp_path / "out" / "long.mp4", tmp_path / "reference.mp4")


def test_cli_batch(cluster: None, clips: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from fvr.cli import main

    out = tmp_path / "out"
    argv = ["batch", str(clips / "a.mp4"), str(clips / "broken.mp4"), "-o", str(out), "--model", "classical",
            "--workers", "2", "--segment-frames", str(SEGMENT), "--preset", "ultrafast", "--json"]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1  # a video failed
    errors = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(errors) == 1 and "1 of 2 videos failed" in errors[0] and "Traceback" not in captured.err
    printed = json.loads(captured.out)
    saved = json.loads((out / "batch-summary.json").read_text())
    assert printed["totals"] == saved["totals"] and saved["totals"]["done"] == 1 and saved["totals"]["videos"] == 2
    assert read_frames(out / "a.mp4")[0].shape == (SEGMENT, 160, 160, 3)
    # each output has its provenance record, as fvr restore writes it; the failed one none
    record = load_record(record_path(out / "a.mp4"))
    assert record["output"]["sha256"] == hashlib.sha256((out / "a.mp4").read_bytes()).hexdigest()
    assert record["input"]["sha256"] == hashlib.sha256((clips / "a.mp4").read_bytes()).hexdigest()
    assert record["output"]["frames"] == SEGMENT and record["settings"]["model"] == "classical"
    assert not record_path(out / "broken.mp4").exists()

    # resumed with only the video that worked: it is kept as it is (no Ray needed), and the exit code is 0
    before = (out / "a.mp4").stat().st_mtime_ns
    assert main(argv[:2] + argv[3:-1] + ["--resume", "-q"]) == 0
    assert (out / "a.mp4").stat().st_mtime_ns == before
    assert json.loads((out / "batch-summary.json").read_text())["videos"][0]["skipped"]


def test_analysis_task_passes_on_the_inputs_warnings(tmp_path: Path) -> None:
    """The analysis task (run in-process here) returns pass 1's corrupt-input warning with its plan, so the batch
    summary tells about damaged inputs as `fvr restore` does."""
    from fvr.run.batch import analyse_task

    clean = write_video(tmp_path / "in.mp4", face_clip(16, 128))
    data = bytearray(clean.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 200] = np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    config = RestoreConfig(model="identity")
    plan = analyse_task(str(bad), str(tmp_path / "out" / "bad.mp4"), config, 5, False, 1, (0, 0))
    assert any("corrupt input" in w for w in plan.warnings)
    plan = analyse_task(str(clean), str(tmp_path / "out" / "in.mp4"), config, 5, False, 1, (0, 0))
    assert plan.warnings == ()
