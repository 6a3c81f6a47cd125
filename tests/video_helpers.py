"""Small videos made with PyAV for the video tests (imported by tests/test_video.py and benchmarks/video.py)."""

from __future__ import annotations

import fractions

import numpy as np

TIME_BASE = fractions.Fraction(1, 12800)


def rainy_sequence(clean_photo: np.ndarray, frames: int, size=(160, 256), seed=0, pan=2):
    """(clean frames, rainy frames): menet_tf.synthesis.rain_video (a slow pan, light rain falling)."""
    from menet_tf import synthesis

    return synthesis.rain_video(clean_photo, frames, size=size, seed=seed, pan=pan)


def write_video(path, frames, rate=25, pts=None, audio_seconds=None, codec="libx264", pix_fmt="yuv420p",
                options=None, rotation=0, container_format=None, subtitles=None):
    """Encode ``frames`` (uint8 N x H x W x 3) into ``path``; ``pts`` (in TIME_BASE units) for variable frame
    rates; ``audio_seconds``: a 440 Hz AAC tone of that length as a second stream; ``rotation``: the display
    matrix of a phone video; ``subtitles``: an SRT file, remuxed as a subtitle stream (PyAV cannot encode
    subtitles from text). Returns the frames' pts."""
    import av

    n, h, w = frames.shape[:3]
    pts = list(pts) if pts is not None else [int(round(i / rate / TIME_BASE)) for i in range(n)]
    with av.open(str(path), "w", format=container_format) as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.time_base = TIME_BASE
        vs.options = dict(options or {"crf": "10"})
        if rotation:
            vs.set_display_rotation(rotation)
        a = out.add_stream("aac", rate=48000) if audio_seconds else None
        srt = av.open(str(subtitles)) if subtitles else None
        st = out.add_stream_from_template(srt.streams.subtitles[0]) if srt else None
        for frame, p in zip(frames, pts):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            f.pts, f.time_base = p, TIME_BASE
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        if a is not None:
            t = np.arange(int(48000 * audio_seconds)) / 48000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, 0
            out.mux(a.encode(af))
            out.mux(a.encode(None))
        if srt is not None:
            for packet in srt.demux(srt.streams.subtitles[0]):
                if packet.dts is not None:
                    packet.stream = st
                    out.mux(packet)
            srt.close()
    return pts


def read_frames(path):
    """(uint8 N x H x W x 3 frames, their times in seconds, rotation of the first frame)."""
    import av

    with av.open(str(path)) as c:
        frames, times, rot = [], [], None
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.time))
            rot = f.rotation if rot is None else rot
    return np.stack(frames), times, rot


def packets(path, kind="audio"):
    """The payload bytes of every packet of the first stream of ``kind``."""
    import av

    with av.open(str(path)) as c:
        streams = getattr(c.streams, kind)
        if not streams:
            return []
        return [bytes(p) for p in c.demux(streams[0]) if p.size]
