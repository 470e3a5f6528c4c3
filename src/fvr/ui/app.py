"""``fvr ui``: a local web page over :mod:`fvr.ui.session` — upload, pick faces, preview before/after, restore,
download. Gradio (the extra ``fvr[ui]``), configured to work with no internet: no analytics, no web fonts (the
system's), no share link, server-side rendering off (no Node.js), uploads and results only inside a private
workspace folder removed when the app stops. One job runs at a time (the queue); the others wait in it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from fvr.errors import ConfigError, FvrError
from fvr.models import ModelRegistry, builtin_registry
from fvr.provenance.record import record_path
from fvr.ui.session import MB, LiveView, Preview, UiLimits, UiSession, UiSettings, Workspace, accept_upload

STABILISERS = {"model's default": None, "flow (offline)": "flow", "flow-causal": "flow-causal"}
BACKGROUNDS = ("lanczos", "bicubic", "bilinear", "compact")


def _gradio() -> Any:
    """Gradio, with its telemetry off before it is imported (it reads the variable at import)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("GRADIO_TELEMETRY_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError as exc:
        raise ConfigError("fvr ui needs Gradio: pip install 'fvr[ui]'") from exc
    return gr


@dataclass(frozen=True)
class UiConfig:
    """How the app is served: ``host`` (127.0.0.1: this machine only), ``port``, ``auth`` (user, password) or
    None, ``limits`` on uploads."""

    host: str = "127.0.0.1"
    port: int = 7860
    auth: tuple[str, str] | None = None
    limits: UiLimits = UiLimits()


def strip(cells: list[tuple[np.ndarray, str]], height: int = 160) -> np.ndarray | None:
    """Images side by side, each scaled to ``height`` and captioned below: (H + 24, W, 3) uint8, None if empty."""
    if not cells:
        return None
    tiles = []
    for image, caption in cells:
        w = max(1, round(image.shape[1] * height / image.shape[0]))
        tile = np.full((height + 24, max(w, 8 * len(caption) + 8), 3), 255, np.uint8)
        tile[:height, :w] = cv2.resize(image, (w, height), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, caption, (4, height + 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (40, 40, 40), 1, cv2.LINE_AA)
        tiles.append(tile)
        tiles.append(np.full((height + 24, 8, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


MODEL_FIDELITY = "model's own"


def fidelity_value(text: str | None) -> float | None:
    """The fidelity choice -> a number, or None for the model's own; ConfigError (one line) for anything else."""
    if text is None or str(text).strip() in ("", MODEL_FIDELITY):
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"fidelity: {text!r} is not a number from 0 to 1") from None


def face_strengths(rows: Any) -> dict[int, float]:
    """The per-face table ([["face 0", "0.5"], ["face 1", ""], ...], or Gradio's dict form with "data") -> {track:
    strength}; an empty cell keeps the strength slider's value. ConfigError (one line) for anything else."""
    if isinstance(rows, dict):
        rows = rows.get("data", [])
    out: dict[int, float] = {}
    for row in rows if rows is not None else []:
        if len(row) < 2 or str(row[1]).strip() in ("", "None", "nan"):
            continue
        try:
            out[int(str(row[0]).split()[-1])] = float(row[1])
        except (ValueError, IndexError):
            raise ConfigError(f"per-face strength: {row[1]!r} for {row[0]!r} is not a number from 0 to 1") from None
    return out


def _message(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def build_app(workspace: Workspace, limits: UiLimits = UiLimits(), registry: ModelRegistry | None = None) -> Any:
    """The page (a ``gradio.Blocks``); its handlers keep one :class:`UiSession` per browser tab."""
    gr = _gradio()
    registry = registry or builtin_registry()
    models = registry.ready_names()
    default_model = registry.default_for("cpu", with_stabiliser=False)

    def fail(exc: BaseException) -> Exception:
        return gr.Error(_message(exc))  # one line in the page, never a traceback

    def on_upload(previous: UiSession | None, path: str | None) -> tuple:
        if previous is not None:
            previous.close()  # a new upload in this tab: the last one's files go
        if not path:
            return (None, "", None, gr.update(choices=[], value=[]), gr.update(maximum=1, value=0, interactive=False),
                    [])
        try:
            upload = accept_upload(path, os.path.basename(path), workspace, limits)
            session = UiSession(upload, registry)
            thumbs = session.analyse()
        except FvrError as exc:
            raise fail(exc) from exc
        info = upload.info
        kind = ("photo" if upload.photo
                else f"{info.num_frames} frames, {float(info.fps):.2f} fps, {upload.seconds:.1f} s")
        text = f"**{upload.name}**: {info.width}×{info.height}, {kind}; {len(thumbs)} face track(s)"
        if session.warnings:
            text += "  \n" + "  \n".join(f"⚠ {w}" for w in session.warnings)
        gallery = strip([(t.crop, f"face {t.id}: frames {t.start}-{t.end - 1}") for t in thumbs])
        ids = [f"face {t.id}" for t in thumbs]
        last = max(info.num_frames - 1, 0)
        return (session, text, gallery, gr.update(choices=ids, value=ids),
                gr.update(maximum=max(last, 1), value=last // 2, interactive=last > 0), [[i, ""] for i in ids])

    def settings(model: str, upscale: float, strength: float, coverage: float, stabiliser: str, background: str,
                 faces: list[str], own: Any = None, fidelity: str | None = None) -> UiSettings:
        return UiSettings(model=model, upscale=int(upscale), strength=float(strength), mask_coverage=float(coverage),
                          stabilise=STABILISERS[stabiliser], background=background,
                          faces=tuple(int(f.split()[-1]) for f in faces), face_strength=face_strengths(own),
                          fidelity=fidelity_value(fidelity))

    def on_preview(session: UiSession | None, frame: float, *values: Any) -> tuple:
        if session is None:
            raise gr.Error("upload a video or photo first")
        try:
            p: Preview = session.preview(int(frame), settings(*values))
        except FvrError as exc:
            raise fail(exc) from exc
        crops = strip([(np.concatenate([b, a], axis=1), f"face {t}: before | after") for t, b, a in p.faces], 256)
        return (p.before, p.after), crops

    def on_clip(session: UiSession | None, frame: float, *values: Any) -> str:
        if session is None:
            raise gr.Error("upload a video or photo first")
        try:
            return str(session.preview_clip(int(frame), limits.preview_seconds, settings(*values)))
        except FvrError as exc:
            raise fail(exc) from exc

    def on_restore(session: UiSession | None, *values: Any, progress: Any = gr.Progress()) -> tuple:
        if session is None:
            raise gr.Error("upload a video or photo first")

        started = time.perf_counter()

        def report(stage: str, done: int, total: int) -> None:
            left = ""
            if stage == "restore" and 0 < done < total:
                left = f", about {(time.perf_counter() - started) * (total - done) / done:.0f} s left"
            progress((done, max(total, 1)), desc=f"{stage}{left}")

        chosen = settings(*values)
        try:
            out, rep = session.restore(chosen, report)
            progress(1.0, desc="quality report")
            data, plot, tracks = session.quality(out, chosen)
        except FvrError as exc:
            raise fail(exc) from exc
        summary = (f"Restored **{rep.frames}** frame(s), {rep.tracks} face track(s), {rep.face_frames} face-frames "
                   f"in {rep.seconds_analyse + rep.seconds_restore:.1f} s ({rep.fps:.1f} fps).")
        for t in tracks:
            summary += (f"  \nface {t['track']}: identity kept {t['identity_mean']:.3f} (lowest "
                        f"{t['identity_min']:.3f}), flicker {t['flicker_mean']:.2f}")
        if rep.warnings:
            summary += "  \n" + "  \n".join(f"⚠ {w}" for w in rep.warnings)
        record = record_path(out)
        files = [str(out), str(data), *([str(record)] if record.exists() else [])]
        return files, summary, str(plot) if plot else None

    def on_live(view: LiveView | None, rgb: np.ndarray | None) -> tuple:
        if rgb is None:
            return None, view
        try:
            view = view or LiveView(registry)
            return view.push(rgb), view
        except FvrError as exc:
            raise fail(exc) from exc

    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    with gr.Blocks(title="fvr — face video restoration", analytics_enabled=False) as app:
        app.fvr_theme = theme
        # a tab's files go with it: when Gradio drops the tab's state (the tab closed), its job folder is deleted
        session = gr.State(None, delete_callback=lambda s: s.close() if s is not None else None)
        gr.Markdown("## fvr — face video restoration\nUpload a video or a photo, choose the faces and settings, "
                    "preview a frame, then restore the whole file.")
        with gr.Row():
            upload = gr.File(label="Video or photo", type="filepath", elem_id="fvr-upload",
                             file_types=[".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".png", ".jpg", ".jpeg"])
            info = gr.Markdown(elem_id="fvr-info")
        faces_gallery = gr.Image(label="Faces found", interactive=False, elem_id="fvr-faces", height=220,
                                 buttons=["download", "fullscreen"])  # no share: that needs the internet
        with gr.Row():
            faces = gr.CheckboxGroup(label="Restore these faces", elem_id="fvr-select")
            own = gr.Dataframe(headers=["face", "strength"], datatype=["str", "str"], type="array",
                               column_count=(2, "fixed"), interactive=True, elem_id="fvr-face-strength",
                               label="Per-face strength (0-1; empty: the Strength slider)")
        with gr.Row():
            model = gr.Dropdown(models, value=default_model if default_model in models else models[0],
                                label="Model", elem_id="fvr-model")
            upscale = gr.Slider(1, 4, value=1, step=1, label="Upscale", elem_id="fvr-upscale")
            strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength", elem_id="fvr-strength")
            fidelity = gr.Dropdown([MODEL_FIDELITY, "0.0", "0.25", "0.5", "0.75", "1.0"], value=MODEL_FIDELITY,
                                   allow_custom_value=True, elem_id="fvr-fidelity",
                                   label="Fidelity (0-1, for models that have one)")
        with gr.Row():
            coverage = gr.Slider(0.25, 2.0, value=1.6, step=0.05, label="Mask coverage", elem_id="fvr-coverage")
            stabiliser = gr.Dropdown(list(STABILISERS), value="model's default", label="Temporal stabiliser")
            background = gr.Dropdown(list(BACKGROUNDS), value="lanczos", label="Background")
        frame = gr.Slider(0, 1, value=0, step=1, label="Preview frame", elem_id="fvr-frame", interactive=False)
        with gr.Row():
            preview_button = gr.Button("Preview this frame", elem_id="fvr-preview")
            clip_button = gr.Button(f"Preview {limits.preview_seconds:g} s from this frame", elem_id="fvr-clip")
        slider = gr.ImageSlider(label="Before / after", elem_id="fvr-slider")
        clip = gr.Video(label="Input | restored", interactive=False, elem_id="fvr-clip-out")
        crops = gr.Image(label="Faces: before | after", interactive=False, elem_id="fvr-crops", height=320,
                         buttons=["download", "fullscreen"])
        with gr.Row():
            run = gr.Button("Restore the whole file", variant="primary", elem_id="fvr-run")
            cancel = gr.Button("Cancel", elem_id="fvr-cancel")
        result = gr.File(label="Result, its quality report and its provenance record", file_count="multiple",
                         elem_id="fvr-result")
        summary = gr.Markdown(elem_id="fvr-summary")
        curves = gr.Image(label="Quality per face: identity kept and flicker, frame by frame", interactive=False,
                          elem_id="fvr-quality", buttons=["download", "fullscreen"])

        with gr.Accordion("Live: your camera, restored as you watch (the engine of fvr live)", open=False,
                          elem_id="fvr-live"):
            gr.Markdown("A causal model (`fvr-fast`), the detector every 5 frames: what `fvr live` runs. Frames "
                        "the server cannot keep up with are skipped, never queued.")
            live = gr.State(None)
            with gr.Row():
                camera = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera",
                                  elem_id="fvr-camera")
                restored_live = gr.Image(label="Restored", interactive=False, elem_id="fvr-live-out",
                                         buttons=["download", "fullscreen"])
        camera.stream(on_live, [live, camera], [restored_live, live], stream_every=0.1, time_limit=3600,
                      concurrency_limit=1, concurrency_id="live", show_progress="hidden", api_name="live")

        values = [model, upscale, strength, coverage, stabiliser, background, faces, own, fidelity]
        upload.upload(on_upload, [session, upload], [session, info, faces_gallery, faces, frame, own],
                      api_name="upload")
        preview_button.click(on_preview, [session, frame, *values], [slider, crops], api_name="preview")
        clip_button.click(on_clip, [session, frame, *values], [clip], api_name="preview_clip")
        job = run.click(on_restore, [session, *values], [result, summary, curves], api_name="restore")
        # not queued (it must not wait behind the job it stops); the job's next frame sees the flag
        cancel.click(lambda s: s.cancel() if s is not None else None, [session], None, cancels=[job], queue=False)
    app.queue(default_concurrency_limit=1)  # one job at a time on a CPU; the rest wait in line
    return app


def launch(config: UiConfig, on_ready: Callable[[str], None] | None = None, block: bool = True
           ) -> tuple[Any, Workspace]:
    """Serve the app until interrupted (``block``), uploads limited to ``config.limits.max_upload_mb`` by the
    server itself (refused before they are stored). The workspace is removed when the app closes."""
    workspace = Workspace()
    os.environ["GRADIO_TEMP_DIR"] = str(workspace.path)  # uploads land in the private folder
    try:
        app = build_app(workspace, config.limits)
    except BaseException:
        workspace.close()
        raise
    try:
        try:
            _, url, _ = app.launch(server_name=config.host, server_port=config.port, auth=config.auth,
                                   max_file_size=int(config.limits.max_upload_mb * MB), share=False,
                                   ssr_mode=False, prevent_thread_lock=True, quiet=True, show_error=False,
                                   theme=app.fvr_theme, footer_links=[], allowed_paths=[str(workspace.path)])
        except OSError as exc:  # Gradio's "Cannot find empty port", or an address this machine does not have
            raise ConfigError(f"cannot serve on {config.host}:{config.port} (in use, or not this machine's "
                              f"address): choose another with --port / --host") from exc
        if on_ready is not None:
            on_ready(url)
        if block:
            app.block_thread()
    except BaseException:
        app.close()
        workspace.close()
        raise
    if block:
        app.close()
        workspace.close()
    return app, workspace
