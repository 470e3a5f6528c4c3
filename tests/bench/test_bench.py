"""`fvr bench`: method resolution, reports, and end-to-end smoke runs on a synthetic moving-face clip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fvr.bench import (
    BenchConfig,
    auto_upscale,
    clip_seed,
    list_clips,
    resolve_methods,
    run_bench,
)
from fvr.bench.report import best_value, markdown_table
from fvr.cli import main
from fvr.errors import ConfigError, InputError
from fvr.faces import FaceTracks, Track
from fvr.models import builtin_registry
from fvr.synthetic import moving_face_frames
from media import write_video

pytest.importorskip("matplotlib", reason="the bench needs the metrics extra: pip install 'fvr[metrics]'")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    """A folder with one clean 384x384 moving-face clip (the astronaut photo under a smooth camera)."""
    folder = tmp_path_factory.mktemp("bench-data")
    write_video(folder / "astronaut.mp4", list(moving_face_frames(12, size=384, fov=220)), fps=25)
    (folder / "notes.txt").write_text("not a clip")
    return folder


def test_resolve_methods_builtin_and_registry():
    methods = resolve_methods(["bicubic", "classical", "identity"], builtin_registry())
    assert [m.name for m in methods] == ["bicubic", "classical", "identity"]
    assert methods[0].skip_faces and not methods[1].skip_faces
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        resolve_methods(["nope"], builtin_registry())
    with pytest.raises(ConfigError, match="twice"):
        resolve_methods(["bicubic", "bicubic"], builtin_registry())


def test_resolve_methods_stabilised_and_model_files(tmp_path):
    from fvr.models.nets import architectures, save_weights

    registry = builtin_registry()
    [stab] = resolve_methods(["classical+flow"], registry)
    assert stab.model == "classical+flow" and "stabiliser `flow`" in stab.description
    arch = architectures()["unet"]
    size, config = arch.preset("tiny")
    path = save_weights(tmp_path / "mine.safetensors", arch, config, arch.build(config), size, "tiny")
    plain, wrapped = resolve_methods([str(path), f"{path}+flow-causal"], registry)
    assert (plain.name, plain.model) == ("mine.safetensors", str(path))
    assert (wrapped.name, wrapped.model) == ("mine.safetensors+flow-causal", f"{path}+flow-causal")
    with pytest.raises(ConfigError, match="unknown method"):
        resolve_methods(["nope+flow"], registry)


def test_clip_seed_is_stable_and_distinct():
    assert clip_seed(0, "a.mp4") == clip_seed(0, "a.mp4")
    assert clip_seed(0, "a.mp4") != clip_seed(0, "b.mp4")
    assert clip_seed(1, "a.mp4") != clip_seed(0, "a.mp4")


def test_list_clips_filters_videos(clip_dir, tmp_path):
    assert [p.name for p in list_clips(clip_dir, "*")] == ["astronaut.mp4"]
    with pytest.raises(InputError, match="no clips"):
        list_clips(tmp_path, "*")
    for name in ("b.mp4", "a.mp4", "c.mkv"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_clips(tmp_path, "a*, c*,a.mp4")] == ["a.mp4", "c.mkv"]  # comma-separated globs


def _track(size: float) -> Track:
    lm = np.array([[0, 0], [size / 2.2, 0], [size / 4, size / 4], [0, size / 2], [size / 2.2, size / 2]],
                  np.float32)[None].repeat(3, 0)
    n = 3
    return Track(0, np.arange(n), lm, lm, np.zeros((n, 4), np.float32), np.ones(n, np.float32), np.ones(n, bool))


def test_auto_upscale_targets_256px_faces():
    assert auto_upscale(FaceTracks([], 0)) == 1
    sizes = {t: auto_upscale(FaceTracks([_track(t)], 3)) for t in (20.0, 60.0, 200.0)}
    assert sizes[20.0] == 4 and sizes[200.0] <= 2 and sizes[60.0] >= sizes[200.0]


def test_markdown_bolds_best_by_direction():
    data = {
        "metrics": {"psnr": {"label": "PSNR↑", "direction": "up"}, "tlme": {"label": "TLME↓", "direction": "down"}},
        "methods": {"a": {}, "b": {}},
        "mean": {"a": {"psnr": 30.0, "tlme": 2.0, "fps": 1.0, "peak_rss_mb": 100.0},
                 "b": {"psnr": 28.0, "tlme": 1.0, "fps": 2.0, "peak_rss_mb": None}},
    }
    table = markdown_table(data)
    assert "**30.00**" in table and "**1.000**" in table and "**28.00**" not in table
    assert best_value({"a": None, "b": 1.0}, "up") is None  # one known value: nothing to compare


@pytest.mark.slow
def test_bench_reference_smoke(clip_dir, tmp_path):
    out = tmp_path / "bench"
    config = BenchConfig(data=clip_dir, out=out, methods=("bicubic", "classical"), preset="light", seed=3,
                         frames=8, isolate=False)
    data = run_bench(config)
    for name in ("results.json", "results.md", "bars.png", "curves_ids.png", "curves_flicker.png", "crops.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "results.json").read_text())["mean"] == data["mean"]
    clip = data["clips"][0]
    assert clip["frames"] == 8 and clip["tracks"] >= 1 and clip["face_frames"] >= 7
    bic, cla = clip["results"]["bicubic"], clip["results"]["classical"]
    for r in (bic, cla):
        assert 15 < r["crop"]["psnr"] < 45 and 0 < r["crop"]["ssim"] <= 1
        assert 15 < r["frame"]["psnr"] < 45
        assert r["crop"]["ids"] is None or 0.5 < r["crop"]["ids"] <= 1.0
        assert r["crop"]["tlme"] is not None and r["crop"]["ewarp"] is not None
        assert len(r["curves"]["flicker"]) == clip["face_frames"]
    assert bic["crop"]["psnr"] != cla["crop"]["psnr"]  # the classical restorer changed the faces
    md = (out / "results.md").read_text()
    assert "PSNR↑" in md and "**" in md and "light" in md
    # The degraded clip is cached: a second run reuses it (same sidecar, same results for bicubic).
    cached = sorted((out / "cache").glob("*.mp4"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    again = run_bench(BenchConfig(data=clip_dir, out=out, methods=("bicubic",), preset="light", seed=3, frames=8,
                                  isolate=False))
    assert cached[0].stat().st_mtime_ns == mtime
    assert math.isclose(again["clips"][0]["results"]["bicubic"]["crop"]["psnr"], bic["crop"]["psnr"], rel_tol=1e-9)


@pytest.mark.slow
def test_bench_real_mode_smoke(clip_dir, tmp_path):
    out = tmp_path / "real"
    data = run_bench(BenchConfig(data=clip_dir, out=out, methods=("bicubic", "classical"), real=True, frames=6,
                                 upscale=1, isolate=False))
    r = data["clips"][0]["results"]
    assert data["mode"] == "real"
    assert r["bicubic"]["crop"]["brisque"] is not None
    assert r["classical"]["crop"]["vidd"] is not None
    assert (out / "crops.png").is_file() and (out / "curves_vidd.png").is_file()
    # --grid-clips: clips not matching stay out of crops.png (none here: no grid at all); metrics are unaffected
    out2 = tmp_path / "real-nogrid"
    data2 = run_bench(BenchConfig(data=clip_dir, out=out2, methods=("bicubic",), real=True, frames=6, upscale=1,
                                  isolate=False, grid_clips="other-*"))
    assert not (out2 / "crops.png").exists() and data2["clips"][0]["results"]["bicubic"]["crop"]["brisque"] is not None


def test_bench_runs_model_files_and_stabiliser_files(clip_dir, tmp_path):
    """Methods named by files (a weights file, with a stabiliser given by its path) run and are measured: their
    names carry a suffix and path separators, which must not turn into an output type or nested folders."""
    from fvr.models.nets import architectures, save_weights

    archs = architectures()
    arch = archs["prior-compact"]
    size, config = arch.preset("tiny")
    model = save_weights(tmp_path / "mine.safetensors", arch, config, arch.build(config), 64, "tiny")
    stab_arch = archs["stabiliser"]
    s_size, s_config = stab_arch.preset("tiny")
    (tmp_path / "st").mkdir()
    stab = save_weights(tmp_path / "st" / "stab.safetensors", stab_arch, s_config, stab_arch.build(s_config), s_size,
                        "tiny")
    methods = (f"{model}+flow-fast", f"classical+{stab}")
    data = run_bench(BenchConfig(data=clip_dir, out=tmp_path / "files", methods=methods, real=True, frames=6,
                                 upscale=1, isolate=False))
    results = data["clips"][0]["results"]
    assert set(results) == {"mine.safetensors+flow-fast", f"classical+{stab}"}
    assert all(r["crop"]["brisque"] is not None for r in results.values())


@pytest.mark.slow
def test_cli_bench_isolated_run(clip_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["bench", "--data", str(clip_dir), "--methods", "bicubic", "--preset", "light", "--frames", "5",
               "--metrics", "psnr,ssim,flicker", "--out", str(out), "--quiet"])
    assert rc == 0
    data = json.loads((out / "results.json").read_text())
    run = data["clips"][0]["results"]["bicubic"]
    assert run["peak_rss_mb"] > 50  # measured in the method's own process
    assert set(run["crop"]) == {"psnr", "ssim", "flicker"}


def test_cli_bench_errors_are_one_line(clip_dir, tmp_path, capsys):
    assert main(["bench", "--out", str(tmp_path / "x")]) == 4
    assert main(["bench", "--data", str(clip_dir), "--methods", "nope", "--out", str(tmp_path / "y")]) == 4
    assert main(["bench", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "z")]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("fvr: error:") for line in err)


def test_methods_restore_with_the_benchmarks_detection_cadence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`fvr bench --detect-every K` reaches every method's restore (the restore speed/quality trade-off can be
    measured); a cadence below 1 is refused."""
    import fvr.run.pipeline
    from fvr.bench.methods import BenchMethod
    from fvr.bench.runner import MethodJob, run_method_job

    seen = []

    def capture(input, output, config, **kwargs):
        seen.append(config.tracker.detect_every)
        raise InputError("stop here")

    monkeypatch.setattr(fvr.run.pipeline, "restore_video", capture)
    with pytest.raises(InputError):
        run_method_job(MethodJob(BenchMethod("c", model="classical"), "in.mp4", f"{tmp_path}/", 1, None,
                                 detect_every=3))
    assert seen == [3]
    with pytest.raises(ConfigError, match="detect-every"):
        BenchConfig(data=tmp_path, out=tmp_path / "o", detect_every=0).validate()
