"""Loaders: models given as files (fvr safetensors, ONNX graphs, third-party checkpoints through spandrel), each
turned into a :class:`~fvr.models.base.Restorer` or a frame up-sampler; :mod:`.files` dispatches by file type."""
