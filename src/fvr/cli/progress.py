"""Progress on the terminal: one adapter (:class:`StageBars`) from fvr's ``progress(stage, done, total[, info])``
callbacks (restore, info, demo, degrade, bench, train) to rich bars, and :class:`BatchBars` for the snapshots
``fvr batch`` reports (one bar per video); plus the batch summary table."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from fvr.run.batch import BatchProgress, BatchSummary

STAGE_LABELS = {"analyse": "finding faces", "restore": "restoring"}


class StageBars:
    """``progress(stage, done, total, info=None)`` -> rich bars on ``console``.

    One bar per stage with its rate (``rate`` unit: "fps", "it/s"; "" for none), the ``info`` values and an ETA;
    or, with ``steps``, a single transient bar that shows the current step's own progress while every new step
    prints one persistent, time-stamped line (``fvr bench``: many short steps). The display starts on the first
    call, so an option error before any work prints nothing else.
    """

    def __init__(self, console: Console, enabled: bool = True, *, rate: str = "fps", width: int = 14,
                 labels: Mapping[str, str] = STAGE_LABELS, steps: bool = False):
        columns: list[ProgressColumn | str] = [TextColumn(f"{{task.description:<{width}.{width}}}"), BarColumn(),
                                               MofNCompleteColumn()]
        if rate:
            columns.append(TextColumn(f"{{task.fields[rate]:>7.2f}} {rate}"))
        columns.append(TextColumn("{task.fields[info]}"))
        columns.append(TimeElapsedColumn())
        if not steps:
            columns += [TextColumn("ETA"), TimeRemainingColumn()]
        self.console = console
        self.progress = Progress(*columns, console=console, disable=not enabled, transient=steps)
        self.labels = labels
        self.steps = steps
        self.tasks: dict[str, TaskID] = {}
        self.start: dict[str, tuple[float, int]] = {}
        self.started = False
        self.step = ""

    def __call__(self, stage: str, done: int, total: int | None, info: Mapping[str, float] | None = None) -> None:
        if not self.started:
            self.progress.start()
            self.started = True
        key = "step" if self.steps else stage
        if self.steps and stage != self.step:
            self.step = stage
            if not self.progress.disable:
                self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(stage)}", highlight=False)
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(self.labels.get(stage, stage), total=total or None,
                                                     completed=done, rate=0.0, info="")
            self.start[key] = (time.perf_counter(), done)
        t0, first = self.start[key]
        rate = (done - first) / max(time.perf_counter() - t0, 1e-9)
        text = " ".join(f"{k} {v:.3g}" for k, v in (info or {}).items())
        total = max(total or 0, done) if total else None
        description = escape(self.labels.get(stage, stage))
        self.progress.update(self.tasks[key], completed=done, total=total, rate=rate, info=text,
                             description=description)

    def __enter__(self) -> StageBars:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.stop()


class BatchBars:
    """``fvr batch``'s :class:`~fvr.run.batch.BatchProgress` snapshots -> rich bars: one for the whole batch,
    one per video."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.total = progress.add_task("all videos", total=None, info="")
        self.bars: dict[int, TaskID] = {}

    def __call__(self, snapshot: BatchProgress) -> None:
        self.progress.update(self.total, completed=snapshot.frames_done, total=snapshot.frames_total or None,
                             info=f"{sum(v.state in ('done', 'failed') for v in snapshot.videos)}"
                                  f"/{len(snapshot.videos)} videos")
        for i, v in enumerate(snapshot.videos):
            if i not in self.bars:  # a video's clock starts when its work does, and stops when it ends
                self.bars[i] = self.progress.add_task(escape(v.name), total=v.frames or None, info="", start=False)
            bar = self.bars[i]
            seg = f" {v.segments_done}/{v.segments} seg" if v.segments else ""
            self.progress.update(bar, completed=v.frames_done, total=v.frames or None, info=f"{v.state}{seg}")
            task = self.progress.tasks[bar]
            if v.state != "waiting" and task.start_time is None:
                self.progress.start_task(bar)
            if v.state in ("done", "failed") and task.stop_time is None and task.start_time is not None:
                self.progress.stop_task(bar)


@contextmanager
def batch_progress(console: Console, enabled: bool = True) -> Iterator[BatchBars]:
    """A ``fvr batch`` progress callback drawing rich bars on ``console`` while the ``with`` block runs."""
    columns = (TextColumn("{task.description:<28.28}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]:<22}"), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not enabled) as progress:
        yield BatchBars(progress)


def summary_table(summary: BatchSummary) -> Any:
    """A rich Table of the per-video results of a batch and the totals."""
    table = Table("video", "status", "frames", "segments", "seconds", "fps", "note",
                  title=f"fvr batch: {summary.workers} worker(s), model {summary.model}")
    for v in summary.videos:
        status = "[green]done[/]" if v.status == "done" else f"[red]{v.status}[/]"
        note = escape(v.error or ("earlier run" if v.skipped else
                                  f"{v.resumed_segments} segment(s) resumed" if v.resumed_segments else ""))
        table.add_row(escape(Path(v.input).name), status, str(v.frames), str(v.segments), f"{v.seconds:.1f}",
                      f"{v.fps:.1f}", note)
    done = sum(v.status == "done" for v in summary.videos)
    table.add_section()
    table.add_row("total", f"{done}/{len(summary.videos)} done", str(summary.frames), "", f"{summary.seconds:.1f}",
                  f"{summary.fps:.1f}", f"+{summary.startup_seconds:.1f} s start-up")
    return table
