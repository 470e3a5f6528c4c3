"""Joining encoded video without re-encoding: segments' packets muxed, in order, with the source's audio and
subtitle packets (PyAV), written atomically."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from fractions import Fraction
from pathlib import Path

import av

from fvr.errors import OutputError
from fvr.io.sink import VideoSink
from fvr.io.source import MediaSource


def _video_packets(paths: list[Path]) -> Iterator[tuple[Fraction, av.Packet]]:
    """The segments' packets in order. Each segment starts with the encoder's reordering delay (its first dts lie
    before its first pts), so its first dts can equal the previous segment's last one: such dts are moved up by
    a tick (never past their pts), which keeps every frame and timestamp and makes dts strictly increasing."""
    last: Fraction | None = None
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.dts is None:
                    continue
                if last is not None and packet.dts * stream.time_base <= last:
                    packet.dts = int(last / stream.time_base) + 1
                    if packet.pts is not None and packet.dts > packet.pts:
                        raise OutputError(f"cannot join {path.name}: its timestamps overlap the previous segment")
                last = packet.dts * stream.time_base
                yield last, packet


def _other_packets(source: MediaSource) -> Iterator[tuple[Fraction, av.Packet]]:
    for packet in source.packets():  # packets() yields only packets with a dts
        assert packet.dts is not None
        yield packet.dts * packet.time_base, packet


def join_segments(paths: list[Path], source: MediaSource, output: Path, *, other_streams: bool = True,
                  metadata: Mapping[str, str] | None = None) -> int:
    """Mux the segments' video packets, in order and unchanged, with ``source``'s audio/subtitle packets (unless
    ``other_streams`` is False) into ``output`` (atomic), with the container tags ``metadata``. Packets are
    interleaved by time, so memory stays bounded. Returns the frame count."""
    source.rewind()  # the copied streams' templates must come from the open container
    with av.open(str(paths[0])) as first:
        template = first.streams.video[0]
        sink = VideoSink(output, source.info, (template.width, template.height),
                         copy_streams=source.copyable_streams if other_streams else [], video_template=template,
                         metadata=metadata)
    with sink:
        others = _other_packets(source) if other_streams else iter(())
        # heapq.merge is stable: each stream keeps its order; at equal times video comes first
        merged = heapq.merge(((t, 0, p) for t, p in _video_packets(paths)),
                             ((t, 1, p) for t, p in others), key=lambda x: (x[0], x[1]))
        for _, kind, packet in merged:
            if kind == 0:
                sink.write_packet(packet)
            else:
                sink.copy_packet(packet)
        count = sink.frames_written
    return count
