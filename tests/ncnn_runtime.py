"""The reference ncnn runtime, for parity tests of fvr's ncnn-to-torch conversions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# fp32 on the CPU: every reduced-precision path and Vulkan off, so differences are the conversion's, not ncnn's
NCNN_OPTIONS_OFF = ("use_vulkan_compute", "use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed",
                    "use_bf16_storage", "use_bf16_packed")


def run_ncnn(param: Path, weights: Path, x: np.ndarray, in_blob: str, out_blob: str) -> np.ndarray:
    """(C, h, w) float32 -> the ncnn runtime's output blob ``out_blob`` for input blob ``in_blob`` (skips the
    test when the ``ncnn`` package is absent)."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    for option in NCNN_OPTIONS_OFF:
        if hasattr(net.opt, option):
            setattr(net.opt, option, False)
    assert net.load_param(str(param)) == 0 and net.load_model(str(weights)) == 0
    data = np.ascontiguousarray(x, dtype=np.float32)  # the Mat borrows this buffer: keep it alive
    mat = ncnn.Mat(data)
    with net.create_extractor() as ex:
        ex.input(in_blob, mat)
        ret, out = ex.extract(out_blob)
        assert ret == 0
        result = np.array(out).copy()
    net.clear()
    return result
