"""Orchestration: everything that runs the stages (io -> faces -> models -> compose -> io) over whole videos.

* :mod:`fvr.run.config` — :class:`RestoreConfig` (what a run is told) and :class:`RestoreReport` (what it did);
* :mod:`fvr.run.build` — the restorer and the background up-sampler a config asks for, on its device;
* :mod:`fvr.run.assemble` — :class:`FrameAssembler`, the per-frame core every mode shares: crop each tracked
  face, feed the restorer track by track, paste back, hand frames on in order;
* :mod:`fvr.run.pipeline` — ``fvr restore`` in one process, two streaming passes (:func:`restore_video`);
* :mod:`fvr.run.jobs` — long videos as segmented, resumable jobs (:func:`restore_video_job`);
* :mod:`fvr.run.batch` — many videos and segments on a Ray cluster (:func:`run_batch`);
* :mod:`fvr.run.framewise` — whole-frame models (generic video restoration), no face analysis.
"""
