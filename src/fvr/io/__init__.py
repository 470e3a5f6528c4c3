"""Input and output: streaming decode/encode with PyAV, audio/subtitle packet copy, PNG sequences, atomic writes."""

from fvr.io.sink import (
    EncodeOptions,
    ImageSink,
    SequenceSink,
    VideoSink,
    check_output_path,
    is_sequence_path,
    open_sink,
    output_kind,
    remove_stale_temps,
    resolve_encode,
)
from fvr.io.source import Frame, MediaSource, StreamInfo, VideoInfo, probe, upright

__all__ = [
    "EncodeOptions",
    "Frame",
    "ImageSink",
    "MediaSource",
    "SequenceSink",
    "StreamInfo",
    "VideoInfo",
    "VideoSink",
    "check_output_path",
    "is_sequence_path",
    "open_sink",
    "output_kind",
    "remove_stale_temps",
    "resolve_encode",
    "probe",
    "upright",
]
