"""``fvr batch``: many videos, and long videos, restored in parallel on a Ray cluster (local or remote).

Every video goes through the segmented job of :mod:`fvr.run.jobs`, so a batch output is exactly what
``restore_video_job(input, output, config, segment_frames=...)`` writes, whichever worker restored which part:

1. **analyse** (a Ray task): decode, detect and track the faces, then :func:`fvr.run.jobs.open_job` writes the job
   folder ``OUT_DIR/.NAME.fvr-job/`` (job.json, tracks.npz) and plans the segments;
2. **restore** (actor method calls): each segment is restored by one of ``workers`` Ray actors into the job
   folder. A long video has several segments, restored at the same time on different actors;
3. **join** (a Ray task): the segments' packets are joined with the input's audio/subtitles into
   ``OUT_DIR/NAME.SUFFIX`` and the job folder is removed.

The restorer (weights included) is built once by the driver and put in Ray's object store; every actor receives
its ObjectRef at construction (fetched once per node, deserialised once per actor) and keeps it for all its
segments. A restorer that does not pickle (e.g. an onnxruntime session) is rebuilt on each actor from the config.

``workers`` is the number of processes doing work at once: the driver keeps at most that many things running,
and an analysis or join task borrows the slot of an actor (it runs on that actor's node while the actor waits), so
``--workers 1`` really is one process busy at a time.

One failing video (corrupt file, no video stream, an exception or a dead process in any of its tasks) is marked
"failed" with a one-line error; the others go on. The summary (``OUT_DIR/batch-summary.json``) is rewritten each
time a video finishes, so that ``resume`` skips the videos an interrupted batch had already finished (same input
file and settings, output present) and resumes the unfinished ones from their finished segments.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fvr.errors import ConfigError, FvrError, InputError, OutputError, reason
from fvr.io.sink import VIDEO_SUFFIXES
from fvr.models import builtin_registry
from fvr.run.build import build_restorer
from fvr.run.changes import ChangeLog, RecordOptions
from fvr.run.config import RestoreConfig
from fvr.run.jobs import DEFAULT_SEGMENT_FRAMES, Job, Segment, job_dir, settings_key

log = logging.getLogger(__name__)

SUMMARY_NAME = "batch-summary.json"
OUTPUT_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v")
"""Input suffixes an output keeps; others (.avi, .webm: containers that may not hold the encoder's codec) -> .mp4."""
ACTOR_START_TIMEOUT_S = 300.0


# --------------------------------------------------------------------------------------------------- results


class VideoHook(Protocol):
    """What a batch tells about each video for its provenance record (the run layer measures; the layer above
    writes): ``record``, what every segment measures; ``begin(input, output)``, called on the driver before the
    video is written, returns its container tags; ``finish(result, changes, tracks, face_frames, scene_cuts)``,
    called when it is."""

    record: RecordOptions

    def begin(self, input: Path, output: Path) -> dict[str, str] | None: ...

    def finish(self, result: VideoResult, changes: ChangeLog | None, tracks: int, face_frames: int,
               scene_cuts: int) -> None: ...


@dataclass
class VideoResult:
    """What happened to one video of a batch."""

    input: str
    output: str
    status: str = "pending"  # "done" | "failed" (and "pending" in a summary written while the batch runs)
    frames: int = 0
    seconds: float = 0.0  # wall time from the start of its analysis to the end of its join
    segments: int = 0
    error: str | None = None
    resumed_segments: int = 0  # segments an earlier, interrupted run had already finished
    skipped: bool = False  # finished by an earlier run of the same batch (resume): not redone
    fingerprint: str = ""  # input file identity + settings: what resume compares
    warnings: list[str] = field(default_factory=list)  # about the input (corrupt data), as fvr restore reports them

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fps": round(self.fps, 3)}


@dataclass
class BatchSummary:
    """Per-video results and totals of :func:`run_batch`."""

    videos: list[VideoResult]
    workers: int
    seconds: float = 0.0  # wall time of the work (cluster start-up excluded)
    startup_seconds: float = 0.0  # connecting/starting Ray and starting the actors
    model: str = ""
    segment_frames: int = DEFAULT_SEGMENT_FRAMES
    threads: list[int] = field(default_factory=list)  # torch/OpenCV threads of each actor

    @property
    def frames(self) -> int:
        return sum(v.frames for v in self.videos if v.status == "done")

    @property
    def failed(self) -> list[VideoResult]:
        return [v for v in self.videos if v.status == "failed"]

    @property
    def fps(self) -> float:
        """Frames restored per second of wall time, over the whole batch (videos skipped by resume excluded)."""
        frames = sum(v.frames for v in self.videos if v.status == "done" and not v.skipped)
        return frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        totals = {"videos": len(self.videos), "done": sum(v.status == "done" for v in self.videos),
                  "failed": len(self.failed), "frames": self.frames, "seconds": round(self.seconds, 3),
                  "startup_seconds": round(self.startup_seconds, 3), "fps": round(self.fps, 3),
                  "workers": self.workers}
        return {"totals": totals, "model": self.model, "segment_frames": self.segment_frames,
                "threads": self.threads, "videos": [v.to_dict() for v in self.videos]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


class BatchFailed(FvrError):
    """Some videos of a batch failed (the others were written): the CLI's one-line error and exit code 1."""

    exit_code = 1

    def __init__(self, summary: BatchSummary):
        first = summary.failed[0]
        more = f" (and {len(summary.failed) - 1} more)" if len(summary.failed) > 1 else ""
        super().__init__(f"{len(summary.failed)} of {len(summary.videos)} videos failed, see "
                         f"{Path(first.output).parent / SUMMARY_NAME}; {Path(first.input).name}: {first.error}{more}")


# --------------------------------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class VideoProgress:
    """One video's state: waiting | analysing | restoring | joining | done | failed."""

    name: str
    state: str
    segments_done: int
    segments: int
    frames_done: int
    frames: int  # the container's estimate until the analysis has counted them


@dataclass(frozen=True)
class BatchProgress:
    """A snapshot of the whole batch, sent to the progress callback whenever something changed."""

    frames_done: int
    frames_total: int
    videos: tuple[VideoProgress, ...]


BatchProgressCallback = Callable[[BatchProgress], None]


# --------------------------------------------------------------------------------------------------- inputs


def collect_videos(inputs: list[Path]) -> list[Path]:
    """The videos to restore: files as given (any suffix), and the video files directly inside folders (by suffix,
    hidden files left out: they are temporary files of running jobs). InputError for a path that does not
    exist or when nothing is found."""
    found: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."))
        elif path.exists():
            found.append(path)
        else:
            raise InputError(f"input not found: {path}")
    unique = list(dict.fromkeys(found))  # the same file given twice is restored once
    if not unique:
        raise InputError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) in {', '.join(map(str, inputs))}")
    return unique


def output_path(input: Path, out_dir: Path) -> Path:
    """``out_dir/<stem><suffix>``: the input's suffix when it is one of OUTPUT_SUFFIXES, else .mp4."""
    suffix = input.suffix.lower() if input.suffix.lower() in OUTPUT_SUFFIXES else ".mp4"
    return out_dir / f"{input.stem}{suffix}"


def _check_unique_outputs(videos: list[Path], out_dir: Path) -> None:
    seen: dict[Path, Path] = {}
    for video in videos:
        out = output_path(video, out_dir)
        if out in seen:
            raise ConfigError(f"{seen[out]} and {video} would both be written to {out}; rename one of them")
        seen[out] = video


def _fingerprint(input: Path, key: str) -> str:
    """Input file identity (path, size, mtime) and settings: a finished video with the same fingerprint is not
    redone by resume."""
    stat = input.stat()
    data = f"{input.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{key}"
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _finished_before(out_dir: Path) -> dict[str, dict[str, Any]]:
    """fingerprint -> record of the videos a previous run of this batch finished (from its summary)."""
    try:
        data = json.loads((out_dir / SUMMARY_NAME).read_text())
        return {v["fingerprint"]: v for v in data["videos"] if v.get("status") == "done" and v.get("fingerprint")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write_summary(summary: BatchSummary, out_dir: Path) -> None:
    """Atomically (temporary file + rename): a kill never leaves half a summary for resume to read."""
    tmp = out_dir / f".{SUMMARY_NAME}.tmp"
    tmp.write_text(summary.to_json())
    tmp.replace(out_dir / SUMMARY_NAME)


def _actor_died(exc: BaseException) -> bool:
    name = type(exc).__name__
    return any(k in name for k in ("ActorDied", "ActorError", "WorkerCrashed", "ActorUnavailable"))


def one_line_error(exc: BaseException) -> str:
    """A one-line message for a failure in a Ray task or actor (the original exception, not Ray's wrapping)."""
    cause = getattr(exc, "cause", None)  # RayTaskError carries the task's own exception
    if isinstance(cause, BaseException):
        exc = cause
    if isinstance(exc, FvrError):
        return reason(exc)
    if _actor_died(exc):
        return f"a worker process died ({type(exc).__name__}): out of memory, or a crash in native code"
    return f"{type(exc).__name__}: {reason(exc)}"


# --------------------------------------------------------------------------------------------------- remote code


def _set_threads(threads: int) -> None:
    """Each process gets its share of the node's cores: more threads per process than that only adds contention."""
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


@dataclass(frozen=True)
class VideoPlan:
    """What the analysis task hands the driver: the job folder, the frame rate and count, the segments and which
    of them a resumed job already finished, the face tracks restored and pass 1's warnings."""

    folder: str
    fps: float
    num_frames: int
    segments: tuple[Segment, ...]
    done: tuple[bool, ...]
    tracks: int
    warnings: tuple[str, ...]
    face_frames: int = 0
    scene_cuts: int = 0


def analyse_task(input: str, output: str, config: RestoreConfig, segment_frames: int, resume: bool,
                 threads: int, context: tuple[int, int]) -> VideoPlan:
    """The analysis task: open (or resume) the video's job in the output folder and cut each segment's face
    tracks (``context``: the restorer's (past, future) frames). Returns its plan and which segments are already
    finished."""
    from fvr.io import MediaSource
    from fvr.run.jobs import analyse_job, open_job, prepare_segments

    _set_threads(threads)
    in_path, out_path = Path(input), Path(output)
    folder = job_dir(out_path)
    try:
        with MediaSource(in_path, sequence_fps=config.sequence_fps) as source:
            job = open_job(in_path, out_path, config, segment_frames, resume=resume,
                           analyse=lambda: analyse_job(source, config))
            fps = float(source.info.fps)
        counts = prepare_segments(job, config, fps, *context)  # a bad --faces fails here, before any restoring
    except BaseException:
        if folder.is_dir() and not (folder / "job.json").exists():
            shutil.rmtree(folder, ignore_errors=True)  # an analysis that never finished leaves nothing behind
        raise
    segments = tuple(job.segments)
    return VideoPlan(str(folder), fps, job.meta.num_frames, segments, tuple(job.done(s) for s in segments),
                     counts["tracks"], job.meta.warnings, counts["face_frames"], counts["scene_cuts"])


def join_task(input: str, output: str, folder: str, segments: tuple[Segment, ...], sequence_fps: float | None,
              threads: int, record: bool = False, metadata: dict[str, str] | None = None
              ) -> tuple[int, ChangeLog | None]:
    """The join task: mux the finished segments with the input's audio/subtitles into ``output`` (atomic, with the
    container tags ``metadata``), then remove the job folder. Returns the frame count and, with ``record``, the
    segments' measured figures joined."""
    from fvr.io import MediaSource
    from fvr.io.remux import join_segments
    from fvr.run.jobs import segment_changes

    _set_threads(threads)
    paths = [Path(folder) / s.name for s in segments]
    changes = ChangeLog.merge(ChangeLog.load(segment_changes(p)) for p in paths) if record else None
    with MediaSource(input, sequence_fps=sequence_fps) as source:
        frames = join_segments(paths, source, Path(output), metadata=metadata)
    shutil.rmtree(folder, ignore_errors=True)
    return frames, changes


@dataclass(frozen=True)
class _BuildOnWorker:
    """Put in the object store instead of a restorer that does not pickle: each actor builds its own."""

    config: RestoreConfig


class SegmentWorker:
    """A Ray actor (see :func:`run_batch`): keeps one restorer for its whole life and restores segments with it."""

    def __init__(self, restorer: Any, config: RestoreConfig, record: RecordOptions | None = None):
        # ``restorer`` arrives resolved: Ray fetches the ObjectRef given at construction from the object store
        if isinstance(restorer, _BuildOnWorker):
            restorer = build_restorer(restorer.config, builtin_registry())
        self.restorer = restorer
        self.config = config
        self.record = record  # what each segment measures for the videos' provenance records (None: nothing)
        self._job: tuple[str, Job, Any] | None = None  # (job folder, job, frame pts): the last video's, since a
        # video's segments often follow one another on the same actor

    def describe(self) -> tuple[str, int]:
        """(node id, usable cores of this process): the driver shares each node's cores among its actors."""
        import ray

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return ray.get_runtime_context().get_node_id(), cores

    def set_threads(self, threads: int) -> int:
        _set_threads(threads)
        return threads

    def restore(self, input: str, folder: str, segment: Segment, fps: float) -> tuple[int, float]:
        """Restore one segment into the job folder. Returns (frames written, seconds)."""
        from fvr.io import MediaSource
        from fvr.run.jobs import restore_segment

        t0 = time.perf_counter()
        if self._job is None or self._job[0] != folder:
            job = Job.load(Path(folder))
            self._job = (folder, job, job.pts())
        _, job, pts = self._job
        seg = segment
        tracks = job.segment_tracks(seg)  # its own cut only (prepared by the analysis task)
        with MediaSource(input, sequence_fps=self.config.sequence_fps) as source:
            # pts: the analysis pass's frame timestamps, so that the segment seeks to its keyframe
            frames = restore_segment(source, Path(folder) / seg.name, tracks, self.restorer, self.config, seg, pts,
                                     record=self.record)
        return frames, time.perf_counter() - t0

    def restore_whole(self, input: str, output: str, metadata: dict[str, str] | None = None) -> tuple[int, float]:
        """A whole-frame model (no faces, no segments): the whole video in one call, as ``fvr restore`` does."""
        from fvr.run.pipeline import restore_video

        t0 = time.perf_counter()
        report = restore_video(input, output, self.config, restorer=self.restorer, metadata=metadata)
        return report.frames, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------------- driver


def _import_ray():  # -> module
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f'fvr batch needs Ray ({reason(exc)}): pip install "fvr[batch]"') from None
    return ray


class _Cluster:
    """Connects to Ray (or starts a local cluster bound to loopback) and disconnects from what it connected."""

    def __init__(self, ray: Any, address: str | None, workers: int):
        self.ray = ray
        self.owned = False
        if ray.is_initialized():  # the caller's own connection (e.g. a test fixture): use it, leave it open
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            if address is None:
                # "local": always a new cluster of our own; loopback: Ray binds to the machine's address otherwise
                ray.init(address="local", num_cpus=workers, _node_ip_address="127.0.0.1", include_dashboard=False,
                         log_to_driver=False, logging_level=logging.ERROR)
            else:
                check_reachable(address)
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            if address is None:
                raise ConfigError(f"cannot start a local Ray cluster: {reason(exc)}") from None
            # Ray >= 2.59 clusters may use token authentication: the usual reason a reachable head refuses us
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {reason(exc)} (if it uses token "
                              f"authentication: RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN or "
                              f"~/.ray/auth_token)") from None
        self.owned = True

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """A HOST:PORT that does not answer fails in seconds here; ray.init would retry it for minutes."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return  # "auto" (the address of the cluster started on this machine) or a form Ray itself explains
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {reason(exc)} (is `ray start --head` "
                          f"running there, and the port open?)") from None


@dataclass
class _Slot:
    """A unit of parallel work: one actor, and the node it lives on (where borrowed tasks run too)."""

    actor: Any
    node: str
    threads: int
    segments: int = 0  # segments restored by its current actor (see WorkerPool.recycle)


class WorkerPool:
    """The actors. The restorer (built once by the driver) is put in the object store once; every actor gets its
    ObjectRef at construction, so each node fetches the weights once and each actor deserialises them once."""

    def __init__(self, ray: Any, restorer: Any, config: RestoreConfig, workers: int, threads: int | None,
                 record: RecordOptions | None = None):
        from fvr.models.registry import resolve_device

        cpus = int(ray.cluster_resources().get("CPU", 0))
        if workers > cpus:
            raise ConfigError(f"the Ray cluster has {cpus} CPU(s): --workers must be at most {cpus}")
        self.ray, self.config, self.record = ray, config, record
        try:
            self.payload = ray.put(restorer)
        except Exception as exc:
            log.warning("the restorer does not pickle (%s): each worker builds its own", reason(exc))
            self.payload = ray.put(_BuildOnWorker(config))
        gpu = resolve_device(config.device, "--device") == "cuda"
        # one logical CPU each, spread over the nodes; no automatic restart: a dead actor is replaced by respawn()
        self.actor_class = ray.remote(SegmentWorker).options(num_cpus=1, num_gpus=1 if gpu else 0,
                                                             scheduling_strategy="SPREAD")
        actors = [self.actor_class.remote(self.payload, config, record) for _ in range(workers)]
        placed = self._describe(actors)
        per_node: dict[str, int] = {}
        for node, _ in placed:
            per_node[node] = per_node.get(node, 0) + 1
        self.slots = [_Slot(a, node, threads or max(1, cores // per_node[node]))
                      for a, (node, cores) in zip(actors, placed, strict=True)]
        ray.get([s.actor.set_threads.remote(s.threads) for s in self.slots])

    def _describe(self, actors: list[Any]) -> list[tuple[str, int]]:
        try:
            return self.ray.get([a.describe.remote() for a in actors], timeout=ACTOR_START_TIMEOUT_S)
        except Exception as exc:
            for a in actors:
                self.ray.kill(a)
            raise ConfigError(f"the Ray workers did not start: {one_line_error(exc)}") from None

    def respawn(self, slot: _Slot) -> bool:
        """Replace the dead actor of ``slot`` (killed for memory, crashed). False when a new one does not start."""
        actor = self.actor_class.remote(self.payload, self.config, self.record)
        try:
            (slot.node, _), = self._describe([actor])
            self.ray.get(actor.set_threads.remote(slot.threads))
        except FvrError as exc:
            log.warning("a worker died and could not be replaced: %s", exc)
            return False
        slot.actor = actor
        return True

    def recycle(self, slot: _Slot) -> bool:
        """Replace the actor of ``slot`` by a fresh process (its heap, grown by the frames it handled, goes back to
        the system). The new actor gets the restorer from the object store, already on this node. False when it
        does not start (the slot is then gone)."""
        self.ray.kill(slot.actor)
        slot.segments = 0
        return self.respawn(slot)

    def close(self) -> None:
        for slot in self.slots:
            self.ray.kill(slot.actor)


@dataclass
class _Video:
    """Driver-side state of one video."""

    result: VideoResult
    name: str
    estimate: int
    whole: bool  # a whole-frame model: one call, no segments
    state: str = "waiting"
    plan: VideoPlan | None = None
    pending: list[Segment] = field(default_factory=list)
    running: int = 0
    segments_done: int = 0
    frames_done: int = 0
    started: float = 0.0

    @property
    def frames(self) -> int:
        return self.plan.num_frames if self.plan is not None else self.estimate

    def progress(self) -> VideoProgress:
        segments = len(self.plan.segments) if self.plan is not None else 0
        return VideoProgress(self.name, self.state, self.segments_done, segments, self.frames_done, self.frames)


class _Scheduler:
    """Keeps every slot busy: joins first (they free disk and finish outputs), then segments of the videos already
    analysed, in input order (a video finishes early rather than all at the end), then the next analysis."""

    def __init__(self, ray: Any, pool: WorkerPool, videos: list[_Video], config: RestoreConfig,
                 segment_frames: int, resume: bool, on_change: Callable[[], None], on_video_end: Callable[[], None],
                 context: tuple[int, int], segments_per_worker: int = 0, hook: VideoHook | None = None):
        self.ray = ray
        self.hook = hook  # the provenance records of finished videos (None: none)
        self.segments_per_worker = segments_per_worker  # recycle an actor after this many segments (0: never)
        self.context = context  # the restorer's (past, future) frames: each segment's face tracks are cut with it
        self.pool = pool
        self.idle = list(pool.slots)
        self.videos = videos
        self.config = config
        self.segment_frames = segment_frames
        self.resume = resume
        self.on_change = on_change
        self.on_video_end = on_video_end
        self.running: dict[Any, tuple[str, _Video, _Slot]] = {}  # ObjectRef -> what it is
        self.analyse = ray.remote(num_cpus=0)(analyse_task)  # CPUs: held by the actors; the driver throttles
        self.join = ray.remote(num_cpus=0)(join_task)

    def run(self) -> None:
        while True:
            self._fill()
            if not self.running:
                break
            ready, _ = self.ray.wait(list(self.running), num_returns=1)
            for ref in ready:
                self._complete(ref)
            self.on_change()
        for video in self.videos:  # only when every worker died and none could be replaced
            if video.state not in ("done", "failed"):
                self._fail(video, "no Ray worker left (they died and could not be replaced)")

    # -- choosing and launching work -------------------------------------------------------------------------

    def _next(self) -> tuple[str, _Video] | None:
        active = [v for v in self.videos if v.state == "restoring"]
        for v in active:
            if not v.pending and v.running == 0:
                return "join", v
        for v in active:
            if v.pending:
                return "segment", v
        for v in self.videos:
            if v.state == "waiting":
                return ("whole" if v.whole else "analyse"), v
        return None

    def _fill(self) -> None:
        while self.idle:
            work = self._next()
            if work is None:
                return
            kind, video = work
            slot = self.idle.pop(0)
            self.running[self._launch(kind, video, slot)] = (kind, video, slot)
            self.on_change()

    def _affinity(self, slot: _Slot) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node_id=slot.node, soft=True)

    def _launch(self, kind: str, video: _Video, slot: _Slot) -> Any:
        r = video.result
        if kind in ("analyse", "whole"):
            video.started = time.perf_counter()
        if kind == "analyse":
            video.state = "analysing"
            return self.analyse.options(scheduling_strategy=self._affinity(slot)).remote(
                r.input, r.output, self.config, self.segment_frames, self.resume, slot.threads, self.context)
        if kind == "whole":
            video.state = "restoring"
            return slot.actor.restore_whole.remote(r.input, r.output, self._metadata(video))
        plan = video.plan
        assert plan is not None  # segments and joins come after the analysis
        if kind == "segment":
            video.running += 1
            segment = video.pending.pop(0)
            return slot.actor.restore.remote(r.input, plan.folder, segment, plan.fps)
        video.state = "joining"
        return self.join.options(scheduling_strategy=self._affinity(slot)).remote(
            r.input, r.output, plan.folder, plan.segments, self.config.sequence_fps, slot.threads,
            self.hook is not None, self._metadata(video))

    def _metadata(self, video: _Video) -> dict[str, str] | None:
        """The container tags of a video's output (the hook begins its record here: the input is hashed on the
        driver while the workers go on)."""
        if self.hook is None:
            return None
        try:
            return self.hook.begin(Path(video.result.input), Path(video.result.output))
        except FvrError as exc:
            log.warning("%s: no provenance record: %s", video.result.input, exc)
            return None

    # -- results ---------------------------------------------------------------------------------------------

    def _complete(self, ref: Any) -> None:
        kind, video, slot = self.running.pop(ref)
        if kind == "segment":
            video.running -= 1
        try:
            value = self.ray.get(ref)
        except Exception as exc:
            self._fail(video, one_line_error(exc))
            if not (_actor_died(exc) and kind in ("segment", "whole")) or self.pool.respawn(slot):
                self.idle.append(slot)  # else the slot is gone: the others go on
            return
        if kind in ("segment", "whole"):  # a whole-frame model's video counts as one segment
            slot.segments += 1
        recycle = self.segments_per_worker and slot.segments >= self.segments_per_worker
        if not recycle or self.pool.recycle(slot):
            self.idle.append(slot)  # else the slot is gone: the others go on
        if video.state == "failed":
            return  # a late segment of a video that already failed
        if kind == "analyse":
            self._analysed(video, value)
        elif kind == "segment":
            video.segments_done += 1
            video.frames_done = min(video.frames, video.frames_done + value[0])
        else:  # join: (frames, changes); whole: (frames, seconds)
            self._finish(video, value[0], value[1] if kind == "join" else None)

    def _analysed(self, video: _Video, plan: VideoPlan) -> None:
        video.plan = plan
        video.result.segments = len(plan.segments)
        video.result.warnings = list(plan.warnings)
        if not plan.segments:
            self._fail(video, f"{video.result.input} has no frames")
            return
        finished = [s for s, done in zip(plan.segments, plan.done) if done]
        video.result.resumed_segments = len(finished)
        video.segments_done = len(finished)
        video.frames_done = sum(s.stop - s.start for s in finished)
        video.pending = [s for s, done in zip(plan.segments, plan.done) if not done]
        video.state = "restoring"

    def _finish(self, video: _Video, frames: int, changes: ChangeLog | None) -> None:
        video.state = "done"
        video.frames_done = frames
        video.result.status, video.result.frames = "done", frames
        video.result.segments = video.result.segments or 1
        video.result.seconds = time.perf_counter() - video.started
        if self.hook is not None:
            plan = video.plan
            try:
                self.hook.finish(video.result, changes, plan.tracks if plan else 0, plan.face_frames if plan else 0,
                                 plan.scene_cuts if plan else 0)
            except FvrError as exc:
                video.result.warnings.append(f"no provenance record: {exc}")
        self.on_video_end()

    def _fail(self, video: _Video, error: str) -> None:
        if video.state == "failed":
            return
        video.state = "failed"
        video.pending = []  # segments already running finish; their results are dropped
        video.result.status, video.result.error = "failed", error
        video.result.seconds = time.perf_counter() - video.started if video.started else 0.0
        log.info("%s failed: %s", video.result.input, error)  # reported in the summary
        self.on_video_end()


def _frame_estimate(path: Path, config: RestoreConfig) -> int:
    """The container's frame count, for the progress total before the analysis counts them (0 when unknown)."""
    from fvr.io import probe

    try:
        return probe(path, sequence_fps=config.sequence_fps).num_frames or 0
    except FvrError:
        return 0  # a broken input: its analysis reports why


def _plan_videos(inputs: list[Path], out_dir: Path, config: RestoreConfig, segment_frames: int, resume: bool,
                 whole: bool) -> list[_Video]:
    """Driver-side checks before any work: output names, unwritable outputs, and (resume) finished videos."""
    from fvr.io import check_output_path

    paths = collect_videos(inputs)
    _check_unique_outputs(paths, out_dir)
    key = settings_key(config, segment_frames)
    earlier = _finished_before(out_dir) if resume else {}
    videos = []
    for path in paths:
        out = output_path(path, out_dir)
        result = VideoResult(input=str(path), output=str(out), fingerprint=_fingerprint(path, key))
        video = _Video(result, path.name, _frame_estimate(path, config), whole)
        record = earlier.get(result.fingerprint)
        if record is not None and out.is_file() and not job_dir(out).exists():
            result.status, result.skipped = "done", True
            result.frames, result.segments = int(record.get("frames", 0)), int(record.get("segments", 1))
            video.state, video.estimate, video.frames_done = "done", result.frames, result.frames
        else:
            try:
                check_output_path(out, path)
            except FvrError as exc:
                video.state, result.status, result.error = "failed", "failed", reason(exc)
        videos.append(video)
    return videos


def run_batch(
    inputs: list[Path],
    out_dir: Path,
    config: RestoreConfig,
    *,
    workers: int = 2,
    ray_address: str | None = None,
    segment_frames: int = DEFAULT_SEGMENT_FRAMES,
    resume: bool = False,
    threads: int | None = None,
    progress: BatchProgressCallback | None = None,
    segments_per_worker: int = 0,
    hook: VideoHook | None = None,
) -> BatchSummary:
    """Restore every video of ``inputs`` (files, and folders of videos) into ``out_dir`` on Ray.

    ray_address: None starts a local cluster of ``workers`` CPUs on loopback (or uses the Ray connection this
        process already has); "auto" or "HOST:PORT" connects to a running cluster (``ray start --head`` there).
    workers: actors, i.e. processes working at once (a segment, an analysis or a join each); at most the
        cluster's CPUs. threads: torch/OpenCV threads per actor (default: the node's cores / its actors).
    segment_frames: as ``fvr restore --segment-frames``: outputs equal ``restore_video_job`` with the same value.
    resume: keep finished videos (same input and settings) and the finished segments of unfinished ones.
    progress: called with a :class:`BatchProgress` snapshot whenever something changed.
    segments_per_worker: N > 0 replaces an actor by a fresh process after it restored N segments, so that no
        process handles more than N segments' frames (the heap of a long-lived process grows with the frames it
        handled, docs/bench/memory.md); 0 keeps every actor for the whole batch.
    hook: the provenance records (:class:`VideoHook`, e.g. :class:`fvr.provenance.restore.BatchRecords`): the
        workers measure each segment with ``hook.record``, the driver calls ``hook.begin`` before a video's join
        (its container tags) and ``hook.finish`` when it is written.

    Problems of the whole batch (no inputs, an unknown model, Ray missing or unreachable) raise
    :class:`fvr.errors.FvrError`; a failing video is only marked "failed" in the returned summary.
    """
    config.validate()
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if segment_frames < 1:
        raise ConfigError(f"--segment-frames must be >= 1, got {segment_frames}")
    if segments_per_worker < 0:
        raise ConfigError(f"--segments-per-worker must be >= 0, got {segments_per_worker}")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    ray = _import_ray()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out_dir}: {reason(exc)}") from None
    restorer = build_restorer(config, builtin_registry())  # once, before Ray starts: a bad --model fails fast
    whole = bool(restorer.spec.frame_model)
    videos = _plan_videos(inputs, out_dir, config, segment_frames, resume, whole)
    summary = BatchSummary([v.result for v in videos], workers, model=restorer.spec.name,
                           segment_frames=segment_frames)

    def changed() -> None:
        if progress is not None:
            progress(_snapshot(videos))

    changed()
    if any(v.state == "waiting" for v in videos):  # else all were finished before (resume) or refused: no Ray
        _run_on_ray(ray, ray_address, restorer, config, videos, summary, out_dir, threads, resume, changed,
                    segments_per_worker, hook)
    _write_summary(summary, out_dir)
    return summary


def _run_on_ray(ray: Any, ray_address: str | None, restorer: Any, config: RestoreConfig, videos: list[_Video],
                summary: BatchSummary, out_dir: Path, threads: int | None, resume: bool,
                changed: Callable[[], None], segments_per_worker: int = 0, hook: VideoHook | None = None) -> None:
    """Start (or connect to) the cluster and the actors, run every video, fill in ``summary``'s timings."""
    t0 = time.perf_counter()
    cluster = _Cluster(ray, ray_address, summary.workers)
    try:
        pool = WorkerPool(ray, restorer, config, summary.workers, threads, hook.record if hook else None)
        summary.threads = [s.threads for s in pool.slots]
        t1 = time.perf_counter()
        summary.startup_seconds = t1 - t0

        def video_ended() -> None:  # the summary on disk is what resume reads after a kill
            summary.seconds = time.perf_counter() - t1
            _write_summary(summary, out_dir)

        try:
            _Scheduler(ray, pool, videos, config, summary.segment_frames, resume, changed, video_ended,
                       context=(restorer.spec.past, restorer.spec.future),
                       segments_per_worker=segments_per_worker, hook=hook).run()
        finally:
            pool.close()
        summary.seconds = time.perf_counter() - t1
    finally:
        cluster.close()


def _snapshot(videos: list[_Video]) -> BatchProgress:
    states = tuple(v.progress() for v in videos)
    live = [v for v in videos if v.state != "failed"]
    return BatchProgress(sum(v.frames_done for v in live), sum(v.frames for v in live), states)
