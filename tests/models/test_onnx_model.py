"""ONNX face restorers (``--model X.onnx``): convention detection, sidecar and option overrides, parity with torch,
one-line errors for wrong files, and the whole pipeline / CLI on a tiny synthetic clip.

Every model here is a tiny torch module exported by the test itself (TorchScript exporter, opset 17)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from fvr.errors import ConfigError
from fvr.models import builtin_registry
from fvr.models.loaders.onnx import OnnxIO, OnnxRestorer, detect_io, load_onnx_restorer
from media import face_clip, read_frames, write_video

TOL = 1e-4


# ----------------------------------------------------------------------------------------------- tiny models


class Conv(nn.Module):
    """3x3 conv with fixed random weights: not colour-symmetric, so a wrong channel order shows."""

    def __init__(self, cin: int = 3, cout: int = 3, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)


class TanhNet(Conv):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x) + x)


class PlainNet(Conv):
    """No bounding activation: detection falls back to the default range."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * 0.5 + x


class FidelityNet(Conv):
    """Like CodeFormer: a scalar float64 fidelity input ``w`` blends two paths."""

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        wf = w.float().reshape(1, 1, 1, 1)
        return torch.tanh(wf * self.conv(x) + (1 - wf) * x)


class NoiseNet(Conv):
    """An extra non-fidelity input that has no default."""

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x) + noise_level.reshape(1, 1, 1, 1))


class SigmoidNet(Conv):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x) + 4 * x - 2)


class UpClipNet(Conv):
    """Up-samples 2x and clamps to [0, 1] (a restorer that also super-resolves)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.clamp(self.conv(up) + up, 0.0, 1.0)


class GrayNet(Conv):
    def __init__(self) -> None:
        super().__init__(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FlatNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def export(net: nn.Module, path: Path, example: tuple[torch.Tensor, ...], names: list[str], *,
           dynamic: bool = False, metadata: dict[str, str] | None = None) -> Path:
    """torch -> ONNX as a third party would (input ``input``, output ``output``); dynamic: N, H, W dynamic."""
    axes = {names[0]: {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "oh", 3: "ow"}} if dynamic else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), example, str(path), opset_version=17, dynamo=False, input_names=names,
                          output_names=["output"], dynamic_axes=axes)
    if metadata:
        model = onnx.load(str(path))
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("onnx")
    x512, x64, x32 = torch.rand(1, 3, 512, 512), torch.rand(1, 3, 64, 64), torch.rand(2, 3, 32, 32)
    return {
        "tanh512": export(TanhNet(), d / "tanh512.onnx", (x512,), ["input"]),
        "plain64": export(PlainNet(), d / "plain64.onnx", (x64,), ["input"]),
        "fidelity": export(FidelityNet(), d / "codeformer_like.onnx",
                           (x64, torch.tensor([0.5], dtype=torch.float64)), ["input", "w"]),
        "noise": export(NoiseNet(), d / "noise.onnx", (x64, torch.tensor([0.1])), ["input", "noise_level"]),
        "sigmoid_bgr": export(SigmoidNet(), d / "sigmoid_bgr.onnx", (x32,), ["x"], dynamic=True,
                              metadata={"fvr.channels": "bgr"}),
        "upclip": export(UpClipNet(), d / "upclip.onnx", (x32,), ["input"], dynamic=True,
                         metadata={"fvr.size": "48"}),
        "gray": export(GrayNet(), d / "gray.onnx", (torch.rand(1, 1, 64, 64),), ["input"]),
        "flat": export(FlatNet(), d / "flat.onnx", (torch.rand(1, 16),), ["input"]),
    }


class SpySession:
    """Wraps an InferenceSession and records the image batch shapes it is run on."""

    def __init__(self, session: ort.InferenceSession):
        self.session = session
        self.shapes: list[tuple[int, ...]] = []

    def run(self, outputs: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.shapes.append(next(iter(feed.values())).shape)
        return self.session.run(outputs, feed)


def _clip(t: int, s: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((t, 3, s, s), dtype=np.float32), np.zeros((t, 5, 2), np.float32)


def _torch(net: nn.Module, x: np.ndarray, *extra: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return net.eval()(torch.from_numpy(np.ascontiguousarray(x)), *extra).numpy()


# ----------------------------------------------------------------------------------------------- (a) the common case


def test_tanh_512_static_detection_and_parity(models: dict[str, Path]) -> None:
    io = detect_io(onnx.load(str(models["tanh512"])))
    assert (io.size, io.range, io.channels, io.batch) == (512, "-1,1", "rgb", False)
    assert (io.image_input, io.output, dict(io.extra)) == ("input", "output", {})
    assert io.origin["range"] == "graph" and io.origin["size"] == "graph"

    restorer = load_onnx_restorer(models["tanh512"])
    assert isinstance(restorer, OnnxRestorer)
    assert restorer.spec.crop_size == 512 and restorer.spec.kind == "external"
    assert restorer.spec.temporal == "per-frame" and restorer.spec.causal
    clip, lms = _clip(2, 512)  # 2 frames through a batch-1 graph: frame by frame
    got = restorer(clip, lms)
    want = np.clip((_torch(TanhNet(), clip * 2 - 1) + 1) / 2, 0, 1)
    assert got.shape == clip.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= TOL


def test_static_size_cannot_be_changed(models: dict[str, Path]) -> None:
    assert load_onnx_restorer(models["tanh512"], crop_size=512).spec.crop_size == 512
    with pytest.raises(ConfigError, match=r"fixed at 512x512; size/crop_size 256"):
        load_onnx_restorer(models["tanh512"], crop_size=256)


def test_detect_from_session_reads_metadata(models: dict[str, Path]) -> None:
    session = ort.InferenceSession(str(models["sigmoid_bgr"]), providers=["CPUExecutionProvider"])
    io = detect_io(session, {"size": 64})
    # a session has no nodes to look at: range is the face-restorer default unless metadata or options say
    assert (io.size, io.channels, io.range, io.batch, io.image_input) == (64, "bgr", "-1,1", True, "x")


# ----------------------------------------------------------------------------------------------- (b) extra inputs


def test_fidelity_input_default_and_option(models: dict[str, Path]) -> None:
    path = models["fidelity"]
    clip, lms = _clip(3, 64, seed=1)

    def want(w: float) -> np.ndarray:
        y = _torch(FidelityNet(), clip * 2 - 1, torch.tensor([w], dtype=torch.float64))
        return np.clip((y + 1) / 2, 0, 1)

    default = load_onnx_restorer(path)
    assert default.io.extra == {"w": 0.5}
    assert default._extra_feed["w"].dtype == np.float64  # fed in the graph's own dtype
    got_default = default(clip, lms)
    assert np.abs(got_default - want(0.5)).max() <= TOL

    strong = load_onnx_restorer(path, w=0.9)
    got = strong(clip, lms)
    assert np.abs(got - want(0.9)).max() <= TOL
    assert np.abs(got - got_default).max() > 0.01
    alias = load_onnx_restorer(path, fidelity=0.9)  # the spandrel loader's name for the same knob
    assert alias.io.extra == {"w": 0.9}


def test_extra_input_without_default_needs_a_value(models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError) as info:
        load_onnx_restorer(models["noise"])
    msg = str(info.value)
    assert "noise.onnx" in msg and "noise_level" in msg and "--model-opt noise_level=VALUE" in msg
    assert "\n" not in msg
    restorer = load_onnx_restorer(models["noise"], noise_level=0.25)
    clip, lms = _clip(1, 64)
    want = np.clip((_torch(NoiseNet(), clip * 2 - 1, torch.tensor([0.25])) + 1) / 2, 0, 1)
    assert np.abs(restorer(clip, lms) - want).max() <= TOL
    with pytest.raises(ConfigError, match="noise_level must be a number"):
        load_onnx_restorer(models["noise"], noise_level="high")


# ---------------------------------------------------------------------------------------------- (c) [0,1], BGR, dynamic


def test_sigmoid_bgr_dynamic(models: dict[str, Path]) -> None:
    path = models["sigmoid_bgr"]
    io = detect_io(onnx.load(str(path)))
    assert (io.range, io.channels, io.batch, io.image_input) == ("0,1", "bgr", True, "x")
    assert (io.size, io.origin["size"]) == (512, "default")  # dynamic H, W and nothing says otherwise
    assert io.origin["channels"] == "metadata" and io.origin["range"] == "graph"

    restorer = load_onnx_restorer(path, crop_size=96)
    assert restorer.spec.crop_size == 96
    spy = SpySession(restorer.session)
    restorer.session = spy
    clip, lms = _clip(5, 96, seed=2)
    got = restorer(clip, lms)
    assert spy.shapes == [(5, 3, 96, 96)]  # dynamic batch: the whole clip in one call
    want = _torch(SigmoidNet(), clip[:, ::-1])[:, ::-1]  # BGR in, BGR out
    assert np.abs(got - want).max() <= TOL


def test_clip_output_upsampling_model_resized_back(models: dict[str, Path]) -> None:
    import cv2

    restorer = load_onnx_restorer(models["upclip"])
    io = restorer.io
    assert (io.size, io.origin["size"], io.range, io.origin["range"]) == (48, "metadata", "0,1", "graph")
    clip, lms = _clip(2, 48, seed=3)
    got = restorer(clip, lms)
    big = _torch(UpClipNet(), clip)  # (2, 3, 96, 96)
    want = np.stack([cv2.resize(f.transpose(1, 2, 0), (48, 48), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)
                     for f in big])
    assert got.shape == clip.shape and np.abs(got - want).max() <= TOL


def test_cuda_without_provider_is_one_line(models: dict[str, Path]) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(ConfigError, match="CUDAExecutionProvider") as info:
        load_onnx_restorer(models["plain64"], device="cuda")
    assert "plain64.onnx" in str(info.value) and "\n" not in str(info.value)
    assert load_onnx_restorer(models["plain64"], device="auto").session.get_providers() == ["CPUExecutionProvider"]


# ----------------------------------------------------------------------------------------------- (d) sidecar, options


def test_default_range_when_graph_does_not_say(models: dict[str, Path]) -> None:
    io = load_onnx_restorer(models["plain64"]).io
    assert (io.range, io.origin["range"], io.size) == ("-1,1", "default", 64)


def test_sidecar_overrides_detection_and_options_override_sidecar(models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "tanh.onnx"
    path.write_bytes(models["fidelity"].read_bytes())
    sidecar = tmp_path / "tanh.onnx.json"
    sidecar.write_text(json.dumps({"range": "0,1", "channels": "bgr", "w": 0.8}))
    io = load_onnx_restorer(path).io
    assert (io.range, io.channels, dict(io.extra)) == ("0,1", "bgr", {"w": 0.8})  # Tanh would say -1,1
    assert io.origin["range"] == "sidecar"
    io = load_onnx_restorer(path, range="-1,1", w=0.2).io
    assert (io.range, io.channels, dict(io.extra)) == ("-1,1", "bgr", {"w": 0.2})
    assert io.origin["range"] == "option" and io.origin["channels"] == "sidecar"

    clip, lms = _clip(1, 64, seed=4)
    got = load_onnx_restorer(path, range="[0, 1]", channels="rgb", w=0.3)(clip, lms)
    want = np.clip(_torch(FidelityNet(), clip, torch.tensor([0.3], dtype=torch.float64)), 0, 1)
    assert np.abs(got - want).max() <= TOL


def test_sidecar_sets_dynamic_size(models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "dyn.onnx"
    path.write_bytes(models["sigmoid_bgr"].read_bytes())
    (tmp_path / "dyn.onnx.json").write_text(json.dumps({"size": 80}))
    assert load_onnx_restorer(path).spec.crop_size == 80
    assert load_onnx_restorer(path, crop_size=64).spec.crop_size == 64


def test_bad_sidecar_and_bad_values(models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(models["plain64"].read_bytes())
    sidecar = tmp_path / "m.onnx.json"
    sidecar.write_text("{not json")
    with pytest.raises(ConfigError, match=r"m\.onnx\.json: not a readable JSON file"):
        load_onnx_restorer(path)
    sidecar.write_text(json.dumps({"colour": "bgr"}))
    with pytest.raises(ConfigError, match=r"m\.onnx\.json: unknown option 'colour'; valid keys: size"):
        load_onnx_restorer(path)
    sidecar.unlink()
    for opts, pattern in [({"range": "0,255"}, "range must be 0,1 or -1,1"),
                          ({"channels": "rgba"}, "channels must be rgb or bgr"),
                          ({"image_input": "y"}, "image_input 'y' is not an input"),
                          ({"output": "z"}, "output 'z' is not an output")]:
        with pytest.raises(ConfigError, match=pattern):
            load_onnx_restorer(path, **opts)


def test_unknown_option_key_lists_valid_keys(models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError) as info:
        load_onnx_restorer(models["fidelity"], strength=0.5)
    msg = str(info.value)
    assert "codeformer_like.onnx" in msg and "'strength'" in msg and "\n" not in msg
    for key in ("size", "crop_size", "range", "channels", "image_input", "output", "w", "fidelity"):
        assert key in msg


# ----------------------------------------------------------------------------------------------- (e) wrong files


def _wrong_files(models: dict[str, Path], tmp: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    random = tmp / "random.onnx"
    random.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    truncated = tmp / "truncated.onnx"
    data = models["tanh512"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    empty = tmp / "empty.onnx"
    empty.write_bytes(b"")
    text = tmp / "text.onnx"
    text.write_text("this is not a model\n")
    return {"random": random, "truncated": truncated, "empty": empty, "text": text,
            "gray": models["gray"], "flat": models["flat"]}


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "text", "gray", "flat"])
def test_wrong_files_are_one_line_config_errors(models: dict[str, Path], tmp_path: Path, kind: str) -> None:
    path = _wrong_files(models, tmp_path)[kind]
    with pytest.raises(ConfigError) as info:
        builtin_registry(plugins=False).create(str(path))
    msg = str(info.value)
    assert path.name in msg and "\n" not in msg and msg.strip() == msg
    expected = {"gray": "3-channel", "flat": "4-D float input (N,3,H,W)"}.get(kind, "expected")
    assert expected in msg


# ----------------------------------------------------------------------------------------------- (f) end to end


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("onnx-clip") / "in.mp4", face_clip(8, 160))


def test_registry_creates_onnx_restorer(models: dict[str, Path]) -> None:
    restorer = builtin_registry(plugins=False).create(str(models["sigmoid_bgr"]), size=128, device="cpu")
    assert isinstance(restorer, OnnxRestorer) and restorer.spec.crop_size == 128
    assert isinstance(restorer.io, OnnxIO) and restorer.spec.name == "sigmoid_bgr"


def test_restore_video_with_onnx_model(models: dict[str, Path], small_clip: Path, tmp_path: Path) -> None:
    from fvr.run.config import RestoreConfig
    from fvr.run.pipeline import restore_video

    out = tmp_path / "out.mp4"
    config = RestoreConfig(model=str(models["sigmoid_bgr"]), model_options={"crop_size": 128}, device="cpu")
    report = restore_video(small_clip, out, config)
    assert report.frames == 8 and report.model == "sigmoid_bgr"
    assert report.tracks >= 1 and report.face_frames > 0  # the ONNX model really ran
    assert read_frames(out)[0].shape[0] == 8


def test_cli_restore_with_model_opt(models: dict[str, Path], small_clip: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fvr.cli import app

    out = tmp_path / "cli.mp4"
    result = CliRunner().invoke(app, [
        "restore", str(small_clip), "-o", str(out), "--model", str(models["upclip"]), "--device", "cpu",
        "--model-opt", "size=128", "--model-opt", "range=0,1", "--model-opt", "channels=bgr", "--json", "-q",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["frames"] == 8 and report["model"] == "upclip"
    assert read_frames(out)[0].shape[0] == 8


def test_cli_bad_model_opt_is_one_line(models: dict[str, Path], small_clip: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from fvr.cli import main

    out = tmp_path / "bad.mp4"
    code = main(["restore", str(small_clip), "-o", str(out), "--model", str(models["plain64"]),
                 "--model-opt", "colour=bgr", "-q"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 4 and len(lines) == 1 and "Traceback" not in err
    assert "plain64.onnx" in lines[0] and "colour" in lines[0]
    assert not out.exists()
