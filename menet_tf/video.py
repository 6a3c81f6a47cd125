"""Video files in and out, as a stream: decode, de-rain in batches, encode, with the sound kept.

    from menet_tf.derainer import Derainer
    from menet_tf import video
    d = Derainer.load(model_dir=...)
    video.derain_video("clip.mp4", "out/clip.mp4", d.derain_batch)

Needs PyAV (FFmpeg's libraries in its wheels): ``pip install 'menet-tf[video]'``. Without it,
:func:`require_av` raises :class:`VideoSupportMissing` naming that command; photos never need it.

What the output keeps (:func:`derain_video`):
  * the resolution, frame count and every frame's timestamp (the input's pts, in its time base, so a
    variable frame rate stays variable), the frame rate, and the rotation (display matrix) of phone videos
    -- frames are de-rained as stored and players turn them as they turned the input;
  * every audio and subtitle stream, packet for packet (copied, not re-encoded); a stream the output
    container cannot hold is dropped and said so;
  * the video is encoded with ``codec`` (default H.264, libx264) at ``crf`` (default 17: visually
    lossless), 4:2:0; a frame size with an odd side cannot be 4:2:0 and is encoded 4:4:4 (said so).
    Ten-bit and HDR video is converted to 8-bit RGB for the net (said so: HDR is not tone-mapped).

Memory: frames are decoded, de-rained and encoded one batch at a time, so peak memory depends on the
frame size and the batch, not on the video's length. The output appears whole or not at all
(:func:`menet_tf.atomic.atomic_path`). Every problem is a :class:`VideoError` naming the file.
"""

from __future__ import annotations

import dataclasses
import fractions
import os
import time
from typing import Callable

import numpy as np

__all__ = [
    "INSTALL_HINT",
    "VIDEO_EXTENSIONS",
    "VideoError",
    "VideoInfo",
    "VideoSupportMissing",
    "derain_video",
    "is_video_file",
    "probe",
    "require_av",
]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mts", ".m2ts", ".ts", ".mpg", ".mpeg",
                    ".wmv", ".flv", ".3gp")
INSTALL_HINT = "pip install 'menet-tf[video]'"
DEFAULT_CRF = 17  # x264's "visually lossless"
CRF_CODECS = ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1")
HDR_TRANSFERS = {16: "PQ (SMPTE 2084)", 18: "HLG (ARIB STD-B67)"}  # AVColorTransferCharacteristic


class VideoSupportMissing(RuntimeError):
    """PyAV is not installed."""


class VideoError(ValueError):
    """A video that cannot be read or written; the message names the file."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


def is_video_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def require_av():
    try:
        import av
    except ImportError:
        raise VideoSupportMissing(f"videos need PyAV, which is not installed: {INSTALL_HINT}") from None
    return av


@dataclasses.dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    frames: int  # the container's count, or an estimate from the duration (0: unknown)
    rate: fractions.Fraction
    duration_s: float
    rotation: int
    codec: str
    pix_fmt: str
    bit_depth: int
    hdr: str | None
    audio_streams: int
    subtitle_streams: int

    def notes(self) -> list[str]:
        out = []
        if self.bit_depth > 8:
            out.append(f"{self.bit_depth}-bit video ({self.pix_fmt}): converted to 8-bit for the net and the output")
        if self.hdr:
            out.append(f"HDR ({self.hdr}): encoded as 8-bit SDR without tone mapping (colours will look flat)")
        if self.width % 2 or self.height % 2:
            out.append(f"{self.width}x{self.height} has an odd side: encoded 4:4:4 (4:2:0 needs even sides)")
        return out

    def text(self) -> str:
        extras = [f"{self.audio_streams} audio"] if self.audio_streams else []
        extras += [f"{self.subtitle_streams} subtitle"] if self.subtitle_streams else []
        rot = f", rotated {self.rotation} deg" if self.rotation else ""
        return (f"{self.width}x{self.height} {self.codec} {self.pix_fmt}, {float(self.rate):.3g} fps, "
                f"{self.frames or '?'} frames, {self.duration_s:.1f} s{rot}"
                + (f" (+ {', '.join(extras)} stream{'s' if len(extras) > 1 or self.audio_streams > 1 else ''})" if extras else ""))


def _open(av, path: str):
    if not os.path.isfile(path):
        raise VideoError(path, "no such file")
    try:
        return av.open(path, metadata_errors="replace")
    except (av.FFmpegError, UnicodeDecodeError, OSError) as e:
        raise VideoError(path, f"not a video, or a corrupt or truncated one ({e})") from None


def _video_stream(container, path: str):
    if not container.streams.video:
        kinds = ", ".join(s.type for s in container.streams) or "none"
        raise VideoError(path, f"no video stream (streams: {kinds})")
    return container.streams.video[0]


def _bit_depth(av, pix_fmt: str | None) -> int:
    if not pix_fmt:
        return 8
    try:
        desc = av.VideoFormat(pix_fmt)
        return max(c.bits for c in desc.components) if desc.components else 8
    except (ValueError, av.FFmpegError):
        return 8


def probe(path: str) -> VideoInfo:
    """Open ``path``, find its video stream and decode its first frame (so a file that opens but holds no
    decodable frame is found here); raises :class:`VideoError` naming the file."""
    av = require_av()
    container = _open(av, path)
    try:
        vs = _video_stream(container, path)
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate or fractions.Fraction(25)
        duration = 0.0
        if vs.duration is not None and vs.time_base is not None:
            duration = float(vs.duration * vs.time_base)
        elif container.duration:
            duration = container.duration / 1e6
        frames = int(vs.frames or round(duration * float(rate)))
        first = None
        try:
            for frame in container.decode(vs):
                first = frame
                break
        except av.FFmpegError as e:
            raise VideoError(path, f"cannot decode its video ({e})") from None
        if first is None:
            raise VideoError(path, "no frames (an empty video stream)")
        trc = int(getattr(first, "color_trc", 0) or 0)
        return VideoInfo(
            path=path, width=first.width, height=first.height, frames=frames, rate=fractions.Fraction(rate),
            duration_s=duration, rotation=int(round(first.rotation or 0)) % 360, codec=vs.codec_context.name,
            pix_fmt=first.format.name, bit_depth=_bit_depth(av, first.format.name), hdr=HDR_TRANSFERS.get(trc),
            audio_streams=len(container.streams.audio), subtitle_streams=len(container.streams.subtitles))
    finally:
        container.close()


class _Output:
    """One output file: its container, video stream and copied streams, written under a temporary name."""

    def __init__(self, av, path: str, tmp: str, info: VideoInfo, in_streams, width: int, codec: str, crf: int,
                 time_base, note: Callable[[str], None]):
        self.path, self.av = path, av
        try:
            self.container = av.open(tmp, "w", format=_format_for(av, path))
        except (av.FFmpegError, ValueError) as e:
            raise VideoError(path, f"cannot write this kind of file ({e})") from None
        odd = width % 2 or info.height % 2
        try:
            vs = self.container.add_stream(codec, rate=info.rate)
        except (av.FFmpegError, ValueError) as e:
            raise VideoError(path, f"codec {codec!r}: {e}") from None
        vs.width, vs.height = width, info.height
        vs.pix_fmt = "yuv444p" if odd else "yuv420p"
        vs.time_base = time_base
        vs.codec_context.time_base = time_base  # frames keep their own pts (else rounded to 1/rate: VFR lost)
        if codec in CRF_CODECS:
            vs.options = {"crf": str(crf), **({"b": "0"} if codec == "libvpx-vp9" else {})}
        if info.rotation:
            vs.set_display_rotation(info.rotation)
        self.video = vs
        self.copies = {}
        supported = getattr(self.container, "supported_codecs", None)
        for s in in_streams:
            name = s.codec_context.name if s.codec_context is not None else "?"
            if supported is not None and name not in supported:
                note(f"{s.type} stream #{s.index} ({name}) cannot go into {os.path.splitext(path)[1]}: dropped")
                continue
            try:
                self.copies[s.index] = self.container.add_stream_from_template(s)
            except (av.FFmpegError, ValueError) as e:
                note(f"{s.type} stream #{s.index} ({name}) cannot be copied ({e}): dropped")

    def mux(self, packets) -> None:
        try:
            self.container.mux(packets)
        except self.av.FFmpegError as e:
            raise VideoError(self.path, f"cannot write ({e})") from None

    def copy(self, packet) -> None:
        target = self.copies.get(packet.stream.index)
        if target is not None:
            packet.stream = target
            self.mux(packet)

    def encode(self, image, pts, time_base) -> None:
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.mux(self.video.encode(frame))

    def close(self) -> None:
        self.mux(self.video.encode(None))
        self.container.close()


def _format_for(av, path: str) -> str | None:
    ext = os.path.splitext(path)[1].lower()
    return {".mts": "mpegts", ".m2ts": "mpegts", ".ts": "mpegts", ".m4v": "mp4", ".3gp": "3gp",
            ".mpg": "mpeg", ".mpeg": "mpeg"}.get(ext)


def derain_video(src: str, dst: str, derain_batch: Callable[[np.ndarray], np.ndarray], batch_size: int = 4,
                 codec: str = "libx264", crf: int = DEFAULT_CRF, side_by_side_dst: str | None = None,
                 write_main: bool = True, progress: Callable[[int, int], None] | None = None,
                 note: Callable[[str], None] = print, info: VideoInfo | None = None) -> dict:
    """De-rain the video ``src`` into ``dst`` (and rainy | de-rained into ``side_by_side_dst`` when given;
    ``write_main=False`` writes only that one). ``derain_batch``: B x H x W x 3 uint8 -> the same shape.
    ``progress(done, total)`` after each batch (total: the container's frame count, 0 if unknown);
    ``note(text)`` for what was converted or dropped. Returns {"frames", "seconds", "fps", "width",
    "height", "audio_copied", ...}. Raises :class:`VideoError` naming the file; then nothing is written."""
    from menet_tf.atomic import atomic_path

    av = require_av()
    info = info or probe(src)
    for text in info.notes():
        note(text)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    targets = ([(dst, False)] if write_main else []) + ([(side_by_side_dst, True)] if side_by_side_dst else [])
    if not targets:
        raise ValueError("nothing to write: write_main=False and no side_by_side_dst")
    container = _open(av, src)
    start = time.perf_counter()
    stack, outputs = [], []
    try:
        vin = _video_stream(container, src)
        vin.thread_type = "AUTO"
        others = [s for s in container.streams if s.type in ("audio", "subtitle")]
        for path, sbs in targets:
            cm = atomic_path(path)
            tmp = cm.__enter__()
            stack.append(cm)
            outputs.append(_Output(av, path, tmp, info, others, info.width * (2 if sbs else 1), codec, crf,
                                   vin.time_base, note))
        pending: list = []  # (rgb frame, pts)
        done = 0
        next_pts = 0
        step = _pts_step(vin.time_base, info.rate)

        def flush() -> None:
            nonlocal done
            if not pending:
                return
            rainy = np.stack([f for f, _ in pending])
            derained = np.asarray(derain_batch(rainy))
            if derained.shape != rainy.shape or derained.dtype != np.uint8:
                raise ValueError(f"derain_batch returned {derained.dtype} {derained.shape} for {rainy.shape}")
            for out, (_, sbs) in zip(outputs, targets):
                for k, (_, pts) in enumerate(pending):
                    image = np.concatenate([rainy[k], derained[k]], axis=1) if sbs else derained[k]
                    out.encode(image, pts, vin.time_base)
            done += len(pending)
            pending.clear()
            if progress is not None:
                progress(done, info.frames)

        try:
            for packet in container.demux(vin, *others):
                if packet.stream.index != vin.index:
                    if packet.dts is not None:
                        for out in outputs:
                            out.copy(packet)
                    continue
                for frame in packet.decode():
                    if (frame.width, frame.height) != (info.width, info.height):
                        raise VideoError(src, f"the frame size changes mid-stream ({info.width}x{info.height} -> "
                                              f"{frame.width}x{frame.height}), which this tool does not handle")
                    pts = frame.pts if frame.pts is not None else next_pts
                    next_pts = pts + step
                    pending.append((frame.to_ndarray(format="rgb24"), pts))
                    if len(pending) >= batch_size:
                        flush()
            flush()
        except av.FFmpegError as e:
            raise VideoError(src, f"corrupt or truncated video: decoding stopped after {done + len(pending)} "
                                  f"frames ({e})") from None
        if done == 0:
            raise VideoError(src, "no frames decoded")
        for out in outputs:
            out.close()
    except BaseException as e:
        for out in outputs:
            try:
                out.container.close()
            except Exception:  # noqa: BLE001 - the file is removed next; its state does not matter
                pass
        for cm in reversed(stack):
            cm.__exit__(type(e), e, e.__traceback__)  # removes the temporary file
        raise
    finally:
        container.close()
    for cm in reversed(stack):
        cm.__exit__(None, None, None)  # the rename: the file appears whole
    seconds = time.perf_counter() - start
    return {"frames": done, "seconds": seconds, "fps": done / seconds if seconds else 0.0, "width": info.width,
            "height": info.height, "rotation": info.rotation,
            "streams_copied": len(outputs[0].copies), "streams_in": len(others)}


def _pts_step(time_base, rate) -> int:
    """One frame's duration in ``time_base`` units (for frames without a timestamp)."""
    if not time_base or not rate:
        return 1
    return max(1, int(round(1 / (float(time_base) * float(rate)))))
