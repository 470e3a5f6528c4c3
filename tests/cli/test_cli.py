"""The command line, including the bad-input matrix: one-line errors, non-zero exits, nothing half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fvr.cli import main
from media import face_clip, read_frames, write_video


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("cli") / "in.mp4", face_clip(12, 192), audio=True)


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["models", "--json"], capsys)
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    from fvr.models import builtin_registry

    reg = builtin_registry()
    for device in ("cpu", "cuda"):  # exactly one default per device, the registry's
        expected = [reg.default_for(device, with_stabiliser=False)]
        assert [n for n, r in rows.items() if device in r["default"]] == expected
    assert rows["identity"]["default"] == []
    for key in ("kind", "temporal", "causal", "crop_size", "weights", "default_with"):
        assert key in rows["identity"]
    assert rows["identity"]["weights"] and not rows["unet"]["weights"]  # unet has no shipped weights


def test_models_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["models"], capsys)
    assert code == 0 and "name" in out and "kind" in out


def test_info_json_and_contact_sheet(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sheet = tmp_path / "sheet.png"
    code, out, _ = run(["info", str(clip), "--json", "--contact-sheet", str(sheet)], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["frames"] == 12 and data["fps"] == 25.0
    assert [s["type"] for s in data["streams"]] == ["video", "audio"]
    assert len(data["tracks"]) == 1 and data["tracks"][0]["frames"] == 12
    import cv2

    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[0] >= 100 and img[:, 200:].std() > 10  # crops were drawn


def test_info_takes_the_detection_settings_of_restore(clip: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The track IDs `fvr info` prints for `restore --faces` depend on the detector's cadence and size: info takes
    restore's --detect-every / --detect-size and analyses with them."""
    import fvr.run.pipeline

    seen = []
    analyse = fvr.run.pipeline.analyse_source

    def recording(source, detector, tracker, progress=None):
        seen.append((detector.max_side, tracker.detect_every))
        return analyse(source, detector, tracker, progress)

    monkeypatch.setattr(fvr.run.pipeline, "analyse_source", recording)
    code, out, _ = run(["info", str(clip), "--json", "--detect-every", "4", "--detect-size", "320"], capsys)
    assert code == 0 and seen == [(320, 4)]
    assert len(json.loads(out)["tracks"]) == 1


def test_restore_cli(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.mkv"
    code, stdout, _ = run(["restore", str(clip), "-o", str(out), "--json", "--upscale", "2", "--crf", "20"], capsys)
    assert code == 0, stdout
    report = json.loads(stdout)
    from fvr.models import builtin_registry

    default = builtin_registry().default_for("cpu")  # fvr-fast when its weights are installed, else classical
    assert report["frames"] == 12 and report["tracks"] == 1 and report["model"] == default
    assert read_frames(out)[0].shape == (12, 384, 384, 3)


def test_restore_cli_segments_in_worker_processes(clip: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A video longer than --segment-frames is restored segment by segment in fresh worker processes (the
    default): same frames as one process; a worker's error reaches the user as the same one line and exit code."""
    outs = {}
    for per_process in ("1", "0"):
        out = tmp_path / f"out{per_process}.mp4"
        code, stdout, err = run(["restore", str(clip), "-o", str(out), "--json", "--segment-frames", "5",
                                 "--segments-per-process", per_process, "--crf", "0", "--model", "classical"],
                                capsys)
        assert code == 0, err
        assert json.loads(stdout)["frames"] == 12
        outs[per_process] = read_frames(out)[0]
    assert np.array_equal(outs["1"], outs["0"])
    code, _, err = run(["restore", str(clip), "-o", str(tmp_path / "bad.mp4"), "--segment-frames", "5",
                        "--model", "no-such-model"], capsys)
    assert code == 4 and "no-such-model" in _one_error_line(err)


def _bad_inputs(tmp: Path) -> dict[str, Path]:
    good = write_video(tmp / "good.mp4", face_clip(10, 128))
    data = good.read_bytes()
    (tmp / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (tmp / "text.mp4").write_text("not a video at all\n" * 100)
    (tmp / "empty.mp4").write_bytes(b"")
    import av

    with av.open(str(tmp / "zero.mkv"), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()  # header only, no frame
    (tmp / "audio_only.m4a").write_bytes(b"")
    with av.open(str(tmp / "audio_only.m4a"), "w", format="mp4") as c:
        a = c.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        c.mux(a.encode(frame))
        c.mux(a.encode(None))
    return {p.stem: p for p in tmp.iterdir()}


@pytest.mark.parametrize("name, fragment", [
    ("truncated", "truncated.mp4"),
    ("text", "cannot open"),
    ("empty", "cannot open"),
    ("zero", "zero.mkv"),
    ("audio_only", "no video stream"),
    ("missing", "not found"),
])
def test_bad_input_one_line_error(name: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = _bad_inputs(tmp_path)
    path = inputs.get(name, tmp_path / "missing.mp4")
    out = tmp_path / "out.mp4"
    code, _, err = run(["restore", str(path), "-o", str(out), "-q"], capsys)
    assert code != 0
    assert fragment in _one_error_line(err)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "fvr-tmp" in p.name]


def test_output_equal_to_input(clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = clip.read_bytes()
    code, _, err = run(["restore", str(clip), "-o", str(clip), "-q"], capsys)
    assert code != 0 and "is the input" in _one_error_line(err)
    assert clip.read_bytes() == before


def test_unwritable_output(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["restore", str(clip), "-o", str(tmp_path / "nope" / "out.mp4"), "-q"], capsys)
    assert code != 0 and "does not exist" in _one_error_line(err)
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        code, _, err = run(["restore", str(clip), "-o", str(ro / "out.mp4"), "-q"], capsys)
        assert code != 0 and "not writable" in _one_error_line(err)


def test_disk_full_simulated(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from fvr.io import sink as sink_module

    original = sink_module.VideoSink.write

    def write(self, rgb, pts):  # type: ignore[no-untyped-def]
        if self.frames_written == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, rgb, pts)

    monkeypatch.setattr(sink_module.VideoSink, "write", write)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"older result")
    code, _, err = run(["restore", str(clip), "-o", str(out), "-q", "--overwrite"], capsys)
    assert code != 0 and "No space left" in _one_error_line(err)
    assert out.read_bytes() == b"older result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_disk_full_real_tmpfs(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root) to fill a disk for real")
    try:
        code, _, err = run(["restore", str(clip), "-o", str(mnt / "out.mp4"), "-q", "--upscale", "3"], capsys)
        assert code != 0
        _one_error_line(err)
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_unknown_model_and_bad_option(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["restore", str(clip), "-o", str(tmp_path / "o.mp4"), "-m", "nope", "-q"], capsys)
    assert code != 0 and "unknown model" in _one_error_line(err)
    code, _, err = run(["restore", str(clip), "-o", str(tmp_path / "o.mp4"), "--strength", "3"], capsys)
    assert code != 0 and "Traceback" not in err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("kind", ["odd", "vfr", "rotated", "grayscale"])
def test_odd_inputs_give_correct_output(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = face_clip(10, 160)
    kwargs: dict = {}
    name = "in.mp4"
    if kind == "odd":
        frames = frames[:, :155, :151]
        kwargs = {"pix_fmt": "yuv444p"}
        name = "in.mkv"
    elif kind == "vfr":
        kwargs = {"pts": [0, 33, 80, 120, 167, 200, 260, 300, 333, 400]}
    elif kind == "rotated":
        frames = np.rot90(frames, k=-1, axes=(1, 2))  # stored sideways, displayed upright via metadata
        kwargs = {"rotation": 90}
    elif kind == "grayscale":
        frames = np.repeat(frames.mean(-1, keepdims=True).astype(np.uint8), 3, -1)
        kwargs = {"codec": "ffv1", "pix_fmt": "gray"}
        name = "in.mkv"
    src = write_video(tmp_path / name, frames, **kwargs)
    out = tmp_path / "out.mp4"
    code, stdout, err = run(["restore", str(src), "-o", str(out), "--json", "-m", "identity"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["tracks"] == 1, f"{kind}: the face was not found"
    a, ta = read_frames(src)
    b, tb = read_frames(out)
    if kind == "odd":  # yuv420p needs even sides: one edge row and column are repeated (docs/pipeline.md)
        assert b.shape[1:3] == (156, 152)
        b = b[:, :155, :151]
    assert a.shape == b.shape and tb == pytest.approx(ta, abs=1e-6)


# ------------------------------------------------- "Nothing lost, nothing silent": version, help, models, weights


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    import fvr

    code, out, err = run(["--version"], capsys)
    assert code == 0 and err == ""
    assert out == f"fvr {version('fvr')}\n"
    assert version("fvr") == fvr.__version__  # pyproject.toml and the package say the same


def _commands() -> dict:
    import typer

    from fvr.cli import app

    return typer.main.get_command(app).commands  # type: ignore[attr-defined]


def _collapse(text: str) -> str:
    return " ".join(text.split())


def test_every_command_is_covered_by_the_help_tests() -> None:
    assert {"restore", "info", "models", "bench", "degrade", "train", "export", "batch", "demo"} <= set(_commands())


@pytest.mark.parametrize("command", sorted(_commands()))
def test_help_is_whole_at_80_columns(command: str, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every option's help, and the command's own, appears in full at 80 columns: no line cut with "…", none wider
    than the terminal, no word split at a hyphen, brackets shown as written."""
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run([command, "--help"], capsys)
    assert code == 0 and err == "", err
    lines = out.splitlines()
    assert "…" not in out
    assert max(len(ln) for ln in lines) <= 80
    assert not [ln for ln in lines if ln.rstrip().endswith("-") and not ln.rstrip().endswith(" -")]
    text = _collapse(out)
    click_command = _commands()[command]
    assert _collapse(click_command.help or "") in text
    helps = [p.help for p in click_command.params if getattr(p, "help", None)]
    assert helps
    for help_text in helps:
        assert _collapse(help_text) in text, help_text


def test_help_shows_extras_in_brackets(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`fvr[spandrel]` is shown as written (rich markup used to swallow "[spandrel]")."""
    for columns in ("80", "200"):
        monkeypatch.setenv("COLUMNS", columns)
        code, out, _ = run(["restore", "--help"], capsys)
        assert code == 0
        text = _collapse(out)
        assert "checkpoint with fvr[spandrel] (docs/external-models.md)" in text  # --model
        assert "checkpoint file with fvr[spandrel]." in text  # --background
        assert "fvr " + "(docs" not in text


def test_top_level_help_lists_each_command_in_full(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "…" not in out and "--version" in out
    assert not [ln for ln in out.splitlines()[1:] if "..." in ln]  # (the usage line has COMMAND [ARGS]...)
    text = _collapse(out)
    for name, command in _commands().items():
        first = command.get_short_help_str(limit=10_000)
        assert first.endswith(".") and f"{name} {first}" in text


def test_help_through_clirunner_at_80_columns() -> None:
    from typer.testing import CliRunner

    from fvr.cli import app

    result = CliRunner().invoke(app, ["restore", "--help"], env={"COLUMNS": "80"}, prog_name="fvr")
    assert result.exit_code == 0
    assert "…" not in result.output and max(len(ln) for ln in result.output.splitlines()) <= 80
    assert "--segments-per-process" in result.output and "fvr[spandrel]" in result.output


def _table_rows(out: str) -> dict[str, list[str]]:
    """`fvr models` table rows by name: name, kind, temporal, crop, context[, ready], default."""
    rows = [ln.split() for ln in out.splitlines()]
    return {r[0]: r for r in rows if len(r) >= 5 and r[3].isdigit() and r[4].startswith("-")}


def test_models_lists_what_runs_and_counts_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    from fvr.models import builtin_registry

    reg = builtin_registry()
    ready = reg.ready_names()
    not_ready = [e.spec.name for e in reg.entries() if not e.ready]
    assert "unet" in not_ready and "fvr-prior-fast" in ready
    code, out, _ = run(["models"], capsys)
    assert code == 0
    listed = set(_table_rows(out))
    assert listed == set(ready)
    assert f"{len(not_ready)} more need weights (fvr train): fvr models --all" in out
    code, out, _ = run(["models", "--all"], capsys)
    assert code == 0
    rows = _table_rows(out)
    assert set(rows) == set(reg.names())
    assert "train" in rows["unet"] and "yes" in rows["fvr-prior-fast"]
    assert "train = needs weights: train it with `fvr train` (docs/train.md)" in _collapse(out)
    assert "more need" not in out


def test_models_json_ready_and_needs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["models", "--json"], capsys)
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert "unet" in rows  # --json lists every registered model
    for r in rows.values():
        assert isinstance(r["ready"], bool) and r["ready"] == r["weights"]
        assert (r["needs"] is None) == r["ready"]
    assert "fvr train" in rows["unet"]["needs"] and "docs/train.md" in rows["unet"]["needs"]
    assert rows["fvr-prior-fast"]["ready"] and rows["classical"]["ready"]


@pytest.fixture
def no_realesrgan_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the realesrgan extra (its weights package) were not installed."""
    from fvr.models import registry
    from fvr.models.thirdparty.realesrgan import model as realesrgan

    real = registry.find_spec
    monkeypatch.setattr(registry, "find_spec", lambda name: None if name == realesrgan.WEIGHTS_PACKAGE else real(name))


@pytest.mark.usefixtures("no_realesrgan_extra")
def test_models_marks_a_missing_extra(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["models", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert not rows["realesrgan"]["ready"] and 'pip install "fvr[realesrgan]"' in rows["realesrgan"]["needs"]
    code, out, _ = run(["models"], capsys)
    assert "more need weights (fvr train) or an extra: fvr models --all" in out
    code, out, _ = run(["models", "--all"], capsys)
    assert code == 0
    assert _table_rows(out)["realesrgan"][5] == "extra"
    assert 'realesrgan: needs the realesrgan extra (pip install "fvr[realesrgan]")' in out


def _not_ready_line(err: str, model: str) -> str:
    line = _one_error_line(err)
    assert line.startswith(f"fvr: error: model '{model}' ") and "; models that run: " in line
    runs = line.split("; models that run: ")[1].split(", ")
    assert "fvr-prior-fast" in runs and "classical" in runs and "unet" not in runs
    return line


def test_model_without_weights_fails_before_any_work(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import fvr.run.jobs
    import fvr.run.pipeline

    def no_analysis(*args: object, **kwargs: object) -> None:
        raise AssertionError("the analysis pass ran before the model was checked")

    monkeypatch.setattr(fvr.run.pipeline, "analyse_video", no_analysis)
    monkeypatch.setattr(fvr.run.jobs, "analyse_job", no_analysis)
    out = tmp_path / "out.mp4"
    for model in ("unet", "unet+flow"):
        for extra in ([], ["--segment-frames", "5", "--segments-per-process", "0"]):
            code, _, err = run(["restore", str(clip), "-o", str(out), "-q", "--model", model, *extra], capsys)
            assert code == 4, err
            line = _not_ready_line(err, "unet")
            assert "has no trained weights (train it with `fvr train`, see docs/train.md" in line
            assert "--model FILE.safetensors" in line
    # the default: segments in worker processes; the worker fails the same way, before its analysis pass
    code, _, err = run(["restore", str(clip), "-o", str(out), "-q", "--model", "unet", "--segment-frames", "5"],
                       capsys)
    assert code == 4 and "has no trained weights" in _not_ready_line(err, "unet")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.usefixtures("no_realesrgan_extra")
def test_model_without_its_extra_fails_naming_it(clip: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["restore", str(clip), "-o", str(tmp_path / "o.mp4"), "-q", "-m", "realesrgan",
                        "--segments-per-process", "0"], capsys)
    assert code == 4
    assert 'needs the realesrgan extra (pip install "fvr[realesrgan]")' in _not_ready_line(err, "realesrgan")
    assert list(tmp_path.iterdir()) == []


def test_batch_model_without_weights_fails_before_any_work(clip: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "restored"
    code, _, err = run(["batch", str(clip), "-o", str(out_dir), "-q", "--model", "unet"], capsys)
    assert code == 4 and "has no trained weights" in _not_ready_line(err, "unet")
    assert not out_dir.exists()  # no output folder, no Ray cluster


def test_bench_method_without_weights_fails_before_any_work(clip: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "bench"
    code, _, err = run(["bench", "--data", str(clip.parent), "--methods", "bicubic,unet-fast", "--frames", "5",
                        "--out", str(out_dir), "-q"], capsys)
    assert code == 4 and "has no trained weights" in _not_ready_line(err, "unet-fast")
    assert not out_dir.exists()


@pytest.mark.usefixtures("no_realesrgan_extra")
def test_bench_realesrgan_frame_without_its_extra(clip: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "bench"
    code, _, err = run(["bench", "--data", str(clip.parent), "--methods", "bicubic,realesrgan-frame",
                        "--out", str(out_dir), "-q"], capsys)
    assert code == 4 and 'fvr[realesrgan]' in _not_ready_line(err, "realesrgan")
    assert not out_dir.exists()


def test_spandrel_with_a_mismatched_torchvision_is_one_line(clip: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A torchvision built for another torch (pip install "fvr[spandrel]" over the CPU torch with --no-deps, or a
    torch re-installed after it) is named with the pair to install, from the metadata, without importing it."""
    import types
    from importlib import metadata

    import torch

    from fvr.models.loaders import spandrel as spandrel_model

    installed = {"torch": "2.13.0+cpu", "torchvision": "0.29.1"}

    def version(name: str) -> str:
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return installed[name]

    fake = types.SimpleNamespace(version=version, PackageNotFoundError=metadata.PackageNotFoundError,
                                 requires=lambda name: ["numpy", "torch==2.14.1", 'scipy; extra == "scipy"'])
    monkeypatch.setattr(spandrel_model, "metadata", fake)
    checkpoint = tmp_path / "net.pth"
    torch.save({"params_ema": {"conv.weight": torch.zeros(4, 3, 3, 3)}}, checkpoint)
    out = tmp_path / "out.mp4"
    code, _, err = run(["restore", str(clip), "-o", str(out), "-q", "--model", str(checkpoint),
                        "--segments-per-process", "0"], capsys)
    assert code == 4
    line = _one_error_line(err)
    assert "torchvision 0.29.1 is built for torch 2.14.1, but torch 2.13.0+cpu is installed" in line
    assert "pip install torch==2.14.1 torchvision==0.29.1" in line and "docs/external-models.md" in line
    assert not out.exists()
    installed["torch"] = "2.14.1+cu128"  # a local build of the right release matches
    assert spandrel_model.torchvision_mismatch() is None
    del installed["torchvision"]  # no torchvision: nothing to check
    assert spandrel_model.torchvision_mismatch() is None


# ------------------------------------------------------------------------------------------- shared option groups


def _flags(command: str) -> set[str]:
    return {flag for param in _commands()[command].params for flag in (*param.opts, *param.secondary_opts)}


def test_batch_and_info_accept_the_shared_options() -> None:
    """`fvr batch` takes every setting of a restore run (it lacked --background, --model-opt, --detector,
    --strength, --mask-coverage, ...); `fvr info` every face-analysis setting, on which its track IDs depend."""
    own_restore = {"input", "-o", "--output", "-y", "--overwrite", "--segment-frames", "--resume",
                   "--segments-per-process", "-q", "--quiet", "--json", "--help",
                   # signing, change maps, forensic mode and re-runs are fvr restore's (docs/provenance.md)
                   "--change-map", "--change-map-scale", "--sign-cert", "--sign-key", "--from-record", "--forensic",
                   "--forensic-min-identity"}
    restore = _flags("restore")
    assert {"--background", "--model-opt", "--detector", "--strength", "--mask-coverage"} <= restore
    assert restore - own_restore <= _flags("batch")
    assert {"--detector", "--detector-model", "--detect-size", "--detect-every", "--smoothing", "--sigma"} <= \
        _flags("info")


def test_restore_and_batch_build_the_same_config(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The same settings on both commands give the same RestoreConfig (captured where each hands it on)."""
    import fvr.provenance.restore
    import fvr.run.batch

    seen = {}

    def job(input, output, config, *args, **kwargs):
        seen["restore"] = config
        raise SystemExit(0)

    def batch(inputs, out_dir, config, **kwargs):
        seen["batch"] = config
        raise SystemExit(0)

    monkeypatch.setattr(fvr.provenance.restore, "restore_with_provenance", job)
    monkeypatch.setattr(fvr.run.batch, "run_batch", batch)
    settings = ["--model", "classical", "--model-opt", "crop_size=256", "--background", "bicubic", "-u", "2",
                "--strength", "0.5", "--mask-coverage", "1.2", "--detector", "mtcnn", "--detect-size", "640",
                "--detect-every", "3", "--smoothing", "one-euro", "--fade-frames", "0", "--crf", "23",
                "--stabilise", "flow-fast", "--stabilise-window", "2", "-q"]
    for argv in (["restore", str(clip), "-o", str(tmp_path / "r.mp4")], ["batch", str(clip), "-o", str(tmp_path)]):
        with pytest.raises(SystemExit):
            main([*argv, *settings])
    capsys.readouterr()
    assert seen["restore"] == seen["batch"]
    config = seen["batch"]
    assert (config.background, config.upscale, config.strength, config.mask_coverage) == ("bicubic", 2, 0.5, 1.2)
    assert (config.detector.max_side, config.tracker.detect_every, config.smoothing.method) == (640, 3, "one-euro")
    assert config.model_options == {"crop_size": 256} and config.stabilise_options == {"window": 2}


def test_command_line_defaults_are_the_library_defaults() -> None:
    """What `fvr restore` does with no option given is what RestoreConfig() does (one default per setting)."""
    from fvr.cli.options import RESTORE_GROUPS, analysis_config, restore_config
    from fvr.faces.analyse import AnalysisConfig
    from fvr.run.config import RestoreConfig

    defaults = {opt.name: opt.default for group in RESTORE_GROUPS for opt in group}
    assert analysis_config(defaults) == AnalysisConfig()
    config, library = restore_config({}), RestoreConfig()
    assert (config.detector, config.tracker, config.smoothing) == (library.detector, library.tracker,
                                                                    library.smoothing)
    assert config.tracker.detect_every == 5
    strict = restore_config({"detect_every": 8, "redetect_motion": 0.0}).tracker
    assert (strict.detect_every, strict.redetect_motion) == (8, 0.0)


def test_face_strength_option_grammar() -> None:
    from fvr.cli.options import parse_face_strength
    from fvr.errors import ConfigError

    assert parse_face_strength(None) == {} and parse_face_strength("") == {}
    assert parse_face_strength("0=0.5, 2=1") == {0: 0.5, 2: 1.0}
    for bad in ("0", "a=0.5", "0=x", "0=0.5,0=0.7", "0:0.5"):
        with pytest.raises(ConfigError, match="--face-strength"):
            parse_face_strength(bad)


def test_encoder_option_grammar() -> None:
    from fvr.cli.options import encoder_options, restore_config
    from fvr.errors import ConfigError

    assert encoder_options(None) == {}
    assert encoder_options(["x264-params=mbtree=1:aq-mode=2", " tune = film "]) == {
        "x264-params": "mbtree=1:aq-mode=2", "tune": "film"}  # the value keeps its own "="
    assert restore_config({"encoder_opt": ["tune=film"]}).encode.extra == {"tune": "film"}
    for bad in ("tune", "=film", "tune="):
        with pytest.raises(ConfigError, match="--encoder-opt"):
            encoder_options([bad])
