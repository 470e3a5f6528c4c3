"""Shipped weights: discovery in the package's weights folder, per-device defaults, whole-frame models in
``fvr.restore_video``, and the weight files that fvr actually ships (each loads, runs, and has a model card)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fvr.errors import ConfigError
from fvr.models import builtin_registry
from fvr.models.base import as_frame_restorer
from fvr.models.learned import SHIPPED_DEFAULTS, register_shipped, weights_dir
from fvr.models.nets import architectures
from fvr.models.nets.core import read_metadata, save_weights
from fvr.models.registry import ModelRegistry

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(weights_dir().glob("*.safetensors")) if weights_dir().is_dir() else []


def _write(folder: Path, name: str, arch: str = "unet", extra: dict | None = None) -> Path:
    spec = architectures()[arch]
    size, config = spec.preset("tiny")
    torch.manual_seed(0)
    return save_weights(folder / f"{name}.safetensors", spec, config, spec.build(config), size, "tiny", extra)


def _registry_with(folder: Path) -> tuple[ModelRegistry, list[str]]:
    from fvr.models import classical, identity

    reg = ModelRegistry()
    identity.register(reg)
    classical.register(reg)
    return reg, register_shipped(reg, folder)


def test_shipped_files_register_under_their_names_with_device_defaults(tmp_path: Path) -> None:
    _write(tmp_path, "fvr-prior-rt", extra={"description": "the fast one"})
    _write(tmp_path, "my-baseline")
    reg, names = _registry_with(tmp_path)
    assert names == ["fvr-prior-rt", "my-baseline"]
    assert reg.default_for("cpu") == "fvr-prior-rt" and reg.default_for("cuda") == "classical"
    assert reg.default_name == "classical"  # the fallback default is unchanged
    spec = reg.spec("fvr-prior-rt")
    assert spec.crop_size == 32 and spec.kind == "cnn" and "shipped" in spec.tags
    assert spec.description == "the fast one" and "shipped weights" in reg.spec("my-baseline").description
    restorer = reg.create(None, device="cpu")  # what `fvr restore` without --model does on a CPU
    assert restorer.spec.name == "fvr-prior-rt"
    clip = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    out = restorer(clip, np.zeros((2, 5, 2), np.float32))
    assert out.shape == clip.shape and out.dtype == np.float32


def test_quality_file_is_the_cuda_default(tmp_path: Path) -> None:
    _write(tmp_path, "fvr-prior-rt")
    _write(tmp_path, "fvr-prior")
    _write(tmp_path, "fvr-prior-fast")  # an earlier default: shipped, no longer picked
    _write(tmp_path, "fvr-fast")
    reg, _ = _registry_with(tmp_path)
    assert reg.default_for("cuda") == "fvr-prior" and reg.default_for("cpu") == "fvr-prior-rt"
    assert SHIPPED_DEFAULTS == {"fvr-prior-rt": ("cpu",), "fvr-prior": ("cuda",)}


def test_a_default_runs_with_the_stabiliser_its_file_names(tmp_path: Path) -> None:
    """A shipped default whose file names a stabiliser (default_stabiliser) runs wrapped with it when no model is
    given; asked for by name it runs bare; --stabilise replaces the default's own stabiliser."""
    from fvr.run.build import build_restorer
    from fvr.run.config import RestoreConfig

    _write(tmp_path, "fvr-prior-rt", extra={"default_stabiliser": "flow-fast"})
    reg, _ = _registry_with(tmp_path)
    assert reg.default_for("cpu") == "fvr-prior-rt+flow-fast"
    assert reg.default_for("cpu", with_stabiliser=False) == "fvr-prior-rt"
    wrapped = reg.create(None, device="cpu")
    assert wrapped.spec.past == wrapped.spec.future == 1 and wrapped.spec.name.endswith("+flow-fast")
    bare = reg.create("fvr-prior-rt", device="cpu")
    assert bare.spec.past == bare.spec.future == 0
    causal = build_restorer(RestoreConfig(device="cpu", stabilise="flow-causal"), reg)
    assert causal.spec.future == 0 and causal.spec.past == 2


def test_shipped_file_of_an_unknown_arch_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "odd.safetensors"), metadata={"format": "fvr-weights", "arch": "x"})
    with pytest.raises(ConfigError, match="odd.safetensors: unknown architecture 'x'"):
        _registry_with(tmp_path)


def test_registry_device_reaches_only_device_models() -> None:
    reg = builtin_registry(plugins=False)
    # classical takes no device: asking for one must not break it
    assert reg.create("classical", device="cpu").spec.name == "classical"
    restorer = reg.create("unet-fast", device="cpu", allow_random=True)
    assert str(restorer.device) == "cpu"


def test_device_option_is_validated() -> None:
    from fvr.models.registry import resolve_device
    from fvr.run.config import RestoreConfig

    with pytest.raises(ConfigError, match="device"):
        RestoreConfig(device="tpu").validate()
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_whole_frame_model_runs_through_restore_video(tmp_path: Path) -> None:
    """A frame model (basicvsr) given to fvr.restore_video runs on whole frames: no face analysis, every frame
    kept with its timestamp, the output up-scaled."""
    from fvr.io import MediaSource
    from fvr.run.config import RestoreConfig
    from fvr.run.pipeline import restore_video
    from media import write_video

    frames = (np.random.default_rng(0).random((7, 32, 48, 3)) * 255).astype(np.uint8)
    src = write_video(tmp_path / "in.mp4", frames)
    restorer = builtin_registry(plugins=False).create("basicvsr-fast", allow_random=True)
    assert restorer.spec.frame_model
    report = restore_video(src, tmp_path / "out.mp4", RestoreConfig(upscale=2, chunk=3), restorer=restorer)
    assert report.frames == 7 and report.tracks == 0 and (report.width, report.height) == (96, 64)
    with MediaSource(tmp_path / "out.mp4") as out, MediaSource(src) as inp:
        assert [f.pts for f in out.frames()] == [f.pts for f in inp.frames()]
        assert (out.info.width, out.info.height) == (96, 64)


# ----------------------------------------------------------------------------------------------- what fvr ships


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_weights_load_run_and_have_a_model_card(path: Path) -> None:
    meta = read_metadata(path)
    assert meta["permissive_only"] == "true", "shipped weights must be trained on permissive clips only"
    clips = json.loads(meta["train_clips"])
    assert clips and not any("eval" in c for c in clips), "the eval clips are the test set"
    reg = builtin_registry(plugins=False)
    restorer = reg.create(path.stem)
    s = restorer.spec.crop_size
    clip = np.random.default_rng(0).random((restorer.spec.past + 2, 3, s, s), dtype=np.float32)
    if (frames := as_frame_restorer(restorer)) is not None:
        with torch.inference_mode():
            out = frames.frame_network()(torch.from_numpy(clip)[None]).numpy()[0]
    else:
        out = restorer(clip, np.zeros((len(clip), 5, 2), np.float32))
    assert out.shape == clip.shape and np.isfinite(out).all()
    assert (ROOT / "docs" / "model-cards" / f"{path.stem}.md").is_file(), "every shipped model has a model card"


def test_shipped_weights_fit_the_budget() -> None:
    assert sum(p.stat().st_size for p in SHIPPED) <= 50 * 2**20
