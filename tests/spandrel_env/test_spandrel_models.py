"""Third-party checkpoints through spandrel, for real (``make test-spandrel``; skipped where spandrel is absent).

Every checkpoint is built here from spandrel's own architecture classes at random initialisation, saved as a
``.pth`` (``torch.save`` of the state dict, as the projects release them) and/or ``.safetensors``, and loaded
through fvr's public entry points. fvr's output is compared with the network called directly under the
convention of the original project (faces: [-1, 1] in and out; SR: [0, 1]). The 512 x 512 face networks are slow
on a CPU, so each runs on one frame, once per file format at most.

spandrel is imported only inside fixtures and tests (see conftest.py).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fvr.errors import ConfigError
from fvr.models import builtin_registry
from fvr.models.backgrounds import make_background
from fvr.models.loaders.files import restorer_from_file

TOL = 1e-4


# ---------------------------------------------------------------------------------------------------- helpers


def _save(net: torch.nn.Module, folder: Path, stem: str, *, wrap: str | None = None) -> dict[str, Path]:
    """The state dict of ``net`` as ``stem.pth`` (under ``wrap`` when given, e.g. GFPGAN's "params_ema") and
    ``stem.safetensors``."""
    from safetensors.torch import save_file

    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    pth, st = folder / f"{stem}.pth", folder / f"{stem}.safetensors"
    torch.save({wrap: state} if wrap else state, pth)
    save_file(state, str(st))
    return {"pth": pth, "safetensors": st}


def _crops(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random (3, size, size) float32 crops in [0, 1] and (n, 5, 2) landmarks (unused by these models)."""
    rng = np.random.default_rng(seed)
    clip = rng.random((n, 3, size, size), dtype=np.float32)
    return clip, np.zeros((n, 5, 2), np.float32)


def _face_reference(forward: Any, clip: np.ndarray) -> np.ndarray:
    """A face network called as its original project does: [-1, 1] in, [-1, 1] out, mapped back to [0, 1]."""
    with torch.inference_mode():
        y = forward(torch.from_numpy(clip) * 2.0 - 1.0)
        return ((y + 1.0) * 0.5).clamp(0.0, 1.0).numpy()


def _check_spec(restorer: Any, path: Path, crop: int, arch: str) -> None:
    spec = restorer.spec
    assert (spec.name, spec.kind, spec.temporal, spec.crop_size) == (path.stem, "external", "per-frame", crop)
    assert "spandrel" in spec.tags and arch in spec.tags and arch in spec.description


def _one_line_config_error(excinfo: pytest.ExceptionInfo[ConfigError], path: Path, *words: str) -> None:
    msg = str(excinfo.value)
    assert "\n" not in msg and str(path) in msg, msg
    for word in words:
        assert word in msg, msg


# ---------------------------------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spandrel")


@pytest.fixture(scope="module")
def esrgan(folder: Path) -> tuple[torch.nn.Module, dict[str, Path]]:
    """A tiny x4 ESRGAN (old architecture, 1 RRDB block of 16 filters): fast at any size."""
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(1)
    net = ESRGAN(num_filters=16, num_blocks=1, scale=4).eval()
    return net, _save(net, folder, "esrgan_x4")


@pytest.fixture(scope="module")
def restoreformer(folder: Path) -> tuple[torch.nn.Module, dict[str, Path]]:
    """A narrow RestoreFormer (spandrel reads its widths from the tensors); it runs at any multiple of 32."""
    from spandrel.architectures.RestoreFormer import RestoreFormer

    torch.manual_seed(2)
    net = RestoreFormer(n_embed=64, embed_dim=32, ch=32, ch_mult=(1, 1, 1, 1, 1, 2), z_channels=32,
                        num_res_blocks=1).eval()
    return net, _save(net, folder, "restoreformer_small")


@pytest.fixture(scope="module")
def gfpgan(folder: Path) -> tuple[torch.nn.Module, dict[str, Path]]:
    """GFPGAN v1 clean at full size (spandrel fixes its hyper-parameters), saved the way the releases are
    ({"params_ema": state})."""
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(3)
    net = GFPGAN().eval()
    return net, _save(net, folder, "gfpgan", wrap="params_ema")


@pytest.fixture(scope="module")
def codeformer(folder: Path) -> tuple[torch.nn.Module, dict[str, Path]]:
    """CodeFormer (from spandrel_extra_arches) with a small transformer; its VQ encoder/decoder are full size."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # CodeFormer's module calls torch.jit.script
        if os.environ.get("FVR_REQUIRE_SPANDREL") != "1":  # fvr[spandrel] installs it: required there
            pytest.importorskip("spandrel_extra_arches", reason="spandrel_extra_arches is not installed")
        from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    torch.manual_seed(4)
    net = CodeFormer(dim_embd=64, n_layers=1, codebook_size=64).eval()
    return net, _save(net, folder, "codeformer")


# ---------------------------------------------------------------------------------------------------- face models


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_restoreformer_matches_the_network(restoreformer: tuple[torch.nn.Module, dict[str, Path]], fmt: str) -> None:
    net, paths = restoreformer
    default = builtin_registry().create(str(paths[fmt]))
    _check_spec(default, paths[fmt], 512, "RestoreFormer")
    # crop_size 128: RestoreFormer is convolutional + attention, any multiple of 32 runs (and fast)
    restorer = builtin_registry().create(str(paths[fmt]), crop_size=128, batch=2)
    _check_spec(restorer, paths[fmt], 128, "RestoreFormer")
    clip, lms = _crops(3, 128)
    out = restorer(clip, lms)
    assert out.shape == clip.shape and out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_allclose(out, _face_reference(lambda x: net(x)[0], clip), atol=TOL)
    # spandrel's own call normalises RestoreFormer the same way: the conventions agree where both exist
    with torch.inference_mode():
        own = restorer.descriptor(torch.from_numpy(clip)).numpy()
    np.testing.assert_allclose(out, own, atol=TOL)


def test_gfpgan_matches_the_network(gfpgan: tuple[torch.nn.Module, dict[str, Path]]) -> None:
    net, paths = gfpgan
    restorer = builtin_registry().create(str(paths["pth"]))  # {"params_ema": ...} is unwrapped
    _check_spec(restorer, paths["pth"], 512, "GFPGAN")
    clip, lms = _crops(1, 512)
    out = restorer(clip, lms)
    assert out.shape == clip.shape and np.isfinite(out).all()
    # stored noise maps (randomize_noise=False): deterministic, so equal to a direct call
    expected = _face_reference(lambda x: net(x, return_rgb=False, randomize_noise=False)[0], clip)
    np.testing.assert_allclose(out, expected, atol=TOL)


def test_gfpgan_safetensors_and_its_limits(gfpgan: tuple[torch.nn.Module, dict[str, Path]]) -> None:
    _, paths = gfpgan
    _check_spec(restorer_from_file(paths["safetensors"]), paths["safetensors"], 512, "GFPGAN")
    with pytest.raises(ConfigError) as excinfo:
        restorer_from_file(paths["safetensors"], crop_size=256)
    _one_line_config_error(excinfo, paths["safetensors"], "512")
    with pytest.raises(ConfigError) as excinfo:
        restorer_from_file(paths["safetensors"], fidelity=0.5)
    _one_line_config_error(excinfo, paths["safetensors"], "CodeFormer only")


def test_codeformer_matches_the_network_with_fidelity(codeformer: tuple[torch.nn.Module, dict[str, Path]]) -> None:
    net, paths = codeformer
    restorer = builtin_registry().create(str(paths["pth"]), fidelity=0.7)
    _check_spec(restorer, paths["pth"], 512, "CodeFormer")
    clip, lms = _crops(1, 512, seed=5)
    out = restorer(clip, lms)
    assert out.shape == clip.shape and np.isfinite(out).all()
    np.testing.assert_allclose(out, _face_reference(lambda x: net(x, weight=0.7)[0], clip), atol=TOL)
    st = restorer_from_file(paths["safetensors"])
    _check_spec(st, paths["safetensors"], 512, "CodeFormer")
    assert st.fidelity == 0.5  # CodeFormer's own default w


# ---------------------------------------------------------------------------------------------------- SR models


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_sr_checkpoint_as_model_runs_on_the_down_sampled_crop(esrgan: tuple[torch.nn.Module, dict[str, Path]],
                                                             fmt: str) -> None:
    net, paths = esrgan
    restorer = builtin_registry().create(str(paths[fmt]), crop_size=64, batch=2)
    _check_spec(restorer, paths[fmt], 64, "ESRGAN")
    clip, lms = _crops(3, 64, seed=6)  # 3 frames in batches of 2
    out = restorer(clip, lms)
    with torch.inference_mode():
        expected = net(F.avg_pool2d(torch.from_numpy(clip), 4)).clamp(0.0, 1.0).numpy()
    assert out.shape == clip.shape
    np.testing.assert_allclose(out, expected, atol=TOL)


def test_sr_checkpoint_option_errors(esrgan: tuple[torch.nn.Module, dict[str, Path]]) -> None:
    _, paths = esrgan
    path = paths["pth"]
    cases: list[tuple[dict[str, object], str]] = [
        ({"crop_size": 66}, "multiple of the model's scale 4"),
        ({"colour": "bgr"}, "unknown option(s) colour"),
        ({"batch": 0}, "batch"),
        ({"half": True}, "half precision needs device cuda"),
    ]
    for options, words in cases:
        with pytest.raises(ConfigError) as excinfo:
            restorer_from_file(path, **options)
        _one_line_config_error(excinfo, path, words)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_gpu_is_a_config_error(esrgan: tuple[torch.nn.Module, dict[str, Path]]) -> None:
    _, paths = esrgan
    with pytest.raises(ConfigError) as excinfo:
        builtin_registry().create(str(paths["pth"]), device="cuda")
    _one_line_config_error(excinfo, paths["pth"], "no CUDA device")
    with pytest.raises(ConfigError) as excinfo:
        make_background(str(paths["pth"]), 2, device="cuda")
    _one_line_config_error(excinfo, paths["pth"], "no CUDA device")


def test_sr_checkpoint_as_background(esrgan: tuple[torch.nn.Module, dict[str, Path]]) -> None:
    net, paths = esrgan
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    for factor in (2, 3, 4, 6):
        up = make_background(str(paths["safetensors"]), factor)(rgb)
        assert up.shape == (40 * factor, 36 * factor, 3) and up.dtype == np.uint8
    # factor 4 = the network's own scale: exactly one network pass, rounded to uint8
    with torch.inference_mode():
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
        expected = net(x).clamp(0.0, 1.0).mul(255.0).round()[0].permute(1, 2, 0).numpy()
    up4 = make_background(str(paths["pth"]), 4, tile=0)(rgb)
    assert np.abs(up4.astype(np.float32) - expected).max() <= 1.0


def test_tiled_background_equals_untiled(esrgan: tuple[torch.nn.Module, dict[str, Path]]) -> None:
    _, paths = esrgan
    rng = np.random.default_rng(8)
    rgb = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    whole = make_background(str(paths["pth"]), 4, tile=0)(rgb)
    # 4 x 3 tiles of ~23-30 px; a 24 px pad covers this tiny net's receptive field, so the seams are exact
    tiled = make_background(str(paths["pth"]), 4, tile=30, tile_pad=24)(rgb)
    assert tiled.shape == whole.shape == (280, 360, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
    # the tiles are real: without context the seams show
    unpadded = make_background(str(paths["pth"]), 4, tile=30, tile_pad=0)(rgb)
    assert np.abs(unpadded.astype(int) - whole.astype(int)).max() > 1


def test_face_checkpoint_as_background_is_a_config_error(
        restoreformer: tuple[torch.nn.Module, dict[str, Path]]) -> None:
    _, paths = restoreformer
    with pytest.raises(ConfigError) as excinfo:
        make_background(str(paths["pth"]), 2)
    _one_line_config_error(excinfo, paths["pth"], "face model", "--background")


# ---------------------------------------------------------------------------------------------------- bad files


def test_unrecognised_state_dict_is_a_config_error(tmp_path: Path) -> None:
    for path in (tmp_path / "foo.pth", tmp_path / "foo.safetensors"):
        if path.suffix == ".pth":
            torch.save({"foo": torch.zeros(3, 3)}, path)
        else:
            from safetensors.torch import save_file

            save_file({"foo": torch.zeros(3, 3)}, str(path))
        with pytest.raises(ConfigError) as excinfo:
            builtin_registry().create(str(path))
        _one_line_config_error(excinfo, path, "not a model spandrel recognises")
        with pytest.raises(ConfigError) as excinfo:
            make_background(str(path), 2)
        _one_line_config_error(excinfo, path, "not a model spandrel recognises")


# ---------------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_restore_video_with_an_sr_checkpoint(esrgan: tuple[torch.nn.Module, dict[str, Path]],
                                             tmp_path: Path) -> None:
    from fvr.run.config import RestoreConfig
    from fvr.run.pipeline import restore_video
    from fvr.synthetic import moving_face_frames
    from media import read_frames, write_video

    _, paths = esrgan
    src = write_video(tmp_path / "in.mp4", list(moving_face_frames(8, size=256)))
    out = tmp_path / "out.mp4"
    report = restore_video(src, out, RestoreConfig(model=str(paths["pth"]), model_options={"crop_size": 128},
                                                   device="cpu"))
    frames_in, _ = read_frames(src)
    frames_out, _ = read_frames(out)
    assert len(frames_out) == len(frames_in) == report.frames == 8
    assert frames_out.shape == frames_in.shape
    assert report.tracks >= 1 and report.face_frames > 0  # the checkpoint really ran on faces
