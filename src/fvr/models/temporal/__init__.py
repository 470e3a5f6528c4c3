"""Temporal wrappers: the stabilisers that wrap any restorer with the training-free flow fusion
(:mod:`fvr.models.fusion`) or a learned blend (:mod:`.stabilise`)."""
