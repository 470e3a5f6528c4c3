"""The one grammar of model references: what ``--model``, ``--background``, ``fvr bench --methods`` and
``--stabilise`` accept, parsed in one place.

    REFERENCE  = MODEL [ "+" STABILISER ]
    MODEL      = registry name (``fvr models``) | model file (.onnx, .safetensors, .pth, .pt, .ckpt, .bin)
    STABILISER = flow | flow-causal | flow-fast | learned | FILE.safetensors, with inline options
                 (``flow:window=3:strength=0.8``, parsed by :func:`fvr.models.temporal.stabilise.make_stabiliser`)

A model file whose own name holds a "+" is read as a file when it exists. Option values (``--model-opt KEY=VALUE``,
``flow:KEY=VALUE``) are parsed by :func:`parse_option_value`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fvr.errors import ConfigError

ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def is_model_file(name: str) -> bool:
    """Whether ``name`` (a --model / --background value) names a file rather than a registry entry (by suffix)."""
    return Path(name).suffix.lower() in ONNX_SUFFIXES + CHECKPOINT_SUFFIXES


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference.

    model: the registry name or the file path of the face model. stabiliser: the temporal stabiliser to wrap it
    with (None: none given). text: the reference as written.
    """

    model: str
    stabiliser: str | None = None
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """``NAME``, ``FILE`` or ``MODEL+STABILISER`` -> a reference; "+" with an empty side is a one-line
        :class:`ConfigError`. Whether a name is registered is the registry's to say (:meth:`ModelRegistry.create`)."""
        if is_model_file(text) and ("+" not in text or Path(text).is_file()):
            return cls(text, None, text)
        model, sep, stabiliser = text.partition("+")
        if sep and (not model or not stabiliser):
            raise ConfigError(f"{text!r}: write MODEL+STABILISER, e.g. image-baseline+flow")
        return cls(model, stabiliser or None, text)

    @property
    def is_file(self) -> bool:
        """The model is given as a file (by suffix; whether it exists is the loader's to check)."""
        return is_model_file(self.model)

    @property
    def is_onnx(self) -> bool:
        """The model is an ONNX graph (onnxruntime picks its own execution provider)."""
        return Path(self.model).suffix.lower() in ONNX_SUFFIXES

    @property
    def label(self) -> str:
        """A short name for reports and benchmark columns: a file's name without its folder."""
        model = Path(self.model).name if self.is_file else self.model
        return f"{model}+{self.stabiliser}" if self.stabiliser else model


def parse_option_value(text: str) -> object:
    """A model or stabiliser option given as text (``--model-opt KEY=VALUE``, ``flow:window=3``): true/false,
    an int, a float, else the string itself, stripped (e.g. "-1,1", "bgr")."""
    value = text.strip()
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
