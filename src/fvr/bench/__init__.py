"""Benchmark harness: degrade clips, run methods through the real pipeline, measure them, report and plot.

``run_bench(BenchConfig(data=..., out=..., methods=(...)))`` is what ``fvr bench`` calls.
"""

from fvr.bench.methods import BUILTIN_METHODS, BenchMethod, resolve_methods
from fvr.bench.runner import BenchConfig, auto_upscale, clip_seed, list_clips, run_bench

__all__ = [
    "BUILTIN_METHODS",
    "BenchConfig",
    "BenchMethod",
    "auto_upscale",
    "clip_seed",
    "list_clips",
    "resolve_methods",
    "run_bench",
]
