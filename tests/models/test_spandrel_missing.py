"""spandrel checkpoints in the main environment, where the optional extra fvr[spandrel] is not installed.

The checkpoint is read (safetensors, or torch.load with weights_only=True) before spandrel is imported, so a
corrupt or unsafe file is reported as such even here; a good one names the extra to install. The real loading
is tested in tests/spandrel_env (``make test-spandrel``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fvr.errors import ConfigError
from fvr.models import builtin_registry
from fvr.models.backgrounds import make_background
from fvr.models.loaders.files import restorer_from_file
from fvr.models.loaders.spandrel import read_state_dict


def _spandrel_imports() -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import spandrel
    except Exception:  # not installed, or a torchvision that does not match this torch
        return False
    # the test folder tests/spandrel_env, on sys.path's tests/, imports as an empty namespace package "spandrel"
    return hasattr(spandrel, "ModelLoader")


HAS_SPANDREL = _spandrel_imports()


class Payload:
    """A pickled object whose unpickling would run code (here a harmless os.getcwd)."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (os.getcwd, ())


def _message(excinfo: pytest.ExceptionInfo[ConfigError], path: Path) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


@pytest.fixture
def good_pth(tmp_path: Path) -> Path:
    path = tmp_path / "net.pth"
    torch.save({"params_ema": {"conv.weight": torch.zeros(4, 3, 3, 3)}}, path)
    return path


@pytest.mark.skipif(HAS_SPANDREL, reason="spandrel imports here: the missing-extra message cannot show")
def test_missing_extra_names_the_install_command(good_pth: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    st = tmp_path / "net.safetensors"
    save_file({"conv.weight": torch.zeros(4, 3, 3, 3)}, str(st))
    for path in (good_pth, st):
        for load in (lambda p: builtin_registry().create(str(p)), lambda p: make_background(str(p), 2)):
            with pytest.raises(ConfigError) as excinfo:
                load(path)
            msg = _message(excinfo, path)
            assert 'needs the optional extra: pip install "fvr[spandrel]"' in msg
            assert "torchvision" in msg and "docs/external-models.md" in msg


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("noise.pth", "noise.pt", "noise.ckpt", "noise.bin", "noise.safetensors"):
        path = tmp_path / name
        path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        with pytest.raises(ConfigError) as excinfo:
            restorer_from_file(path)
        assert "not a readable" in _message(excinfo, path)


def test_truncated_and_torchscript_files_are_one_line_errors(good_pth: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pth"
    data = good_pth.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError) as excinfo:
        restorer_from_file(truncated)
    assert "not a readable PyTorch checkpoint" in _message(excinfo, truncated)
    scripted = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))  # torch.jit.script is deprecated
        torch.jit.script(torch.nn.Conv2d(3, 3, 3)).save(str(scripted))
    with pytest.raises(ConfigError) as excinfo:
        restorer_from_file(scripted)
    assert "TorchScript archive" in _message(excinfo, scripted)


def test_pickled_object_is_refused_not_run(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": Payload()}, path)
    with pytest.raises(ConfigError) as excinfo:
        builtin_registry().create(str(path))
    msg = _message(excinfo, path)
    assert "refused" in msg and "weights_only" in msg and "getcwd" in msg


def test_non_dict_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ConfigError) as excinfo:
        read_state_dict(path)
    assert "not a state dict" in _message(excinfo, path)


def test_options_and_device_are_checked_before_loading(good_pth: Path) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"colour": "bgr"}, "unknown option(s) colour"),
        ({"crop_size": 8}, "crop_size"),
        ({"fidelity": 1.5}, "fidelity"),
        ({"half": True}, "half precision needs device cuda"),
    ]
    for options, words in cases:
        with pytest.raises(ConfigError) as excinfo:
            restorer_from_file(good_pth, **options)
        assert words in _message(excinfo, good_pth)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError) as excinfo:
            restorer_from_file(good_pth, device="cuda")
        assert "no CUDA device" in _message(excinfo, good_pth)
