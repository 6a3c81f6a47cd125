"""Less flicker from a per-frame de-rainer: a short temporal filter of the de-rained frames where the scene
is still (``derain --temporal_radius=R``).

Each output frame t is the mean of the de-rained frames t-R..t+R, each neighbour counted only at pixels
where it agrees with frame t (their smoothed luma differs by less than ``threshold`` grey levels): where
the scene is still, the left-over rain (which changes from frame to frame) averages out; where something
moves, the neighbours disagree and frame t is kept as it is, so nothing moving leaves a ghost. At the
ends of the video the window is cut short. Streaming: :class:`TemporalFilter` holds 2R+1 frames, so
memory stays bounded by the frame size; output frame t leaves once frame t+R has come in.
"""

from __future__ import annotations

import collections

import numpy as np
from scipy import ndimage

__all__ = ["DEFAULT_THRESHOLD", "TemporalFilter", "filter_video"]

DEFAULT_THRESHOLD = 6.0  # grey levels of the 5x5-box-smoothed luma


def _luma(frame: np.ndarray) -> np.ndarray:
    y = frame[..., 0] * 0.299 + frame[..., 1] * 0.587 + frame[..., 2] * 0.114
    return ndimage.uniform_filter(y.astype(np.float32), 5, mode="nearest")


class TemporalFilter:
    """push(frame) -> the frames that are ready (each frame leaves once its R successors came in, or at
    flush()); frames are H x W x 3 uint8, in order; output uint8 of the same shape."""

    def __init__(self, radius: int, threshold: float = DEFAULT_THRESHOLD):
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        self.radius, self.threshold = int(radius), float(threshold)
        self.frames: collections.deque = collections.deque()  # (frame, luma)
        self.next_out = 0  # index (within the deque's history) of the next frame to leave
        self.seen = 0

    def _output(self, t: int) -> np.ndarray:
        """Frame t of the window (index into self.frames)."""
        frame, luma = self.frames[t]
        if self.radius == 0:
            return frame
        total = frame.astype(np.float32)
        count = np.ones(frame.shape[:2], np.float32)
        for k, (other, other_luma) in enumerate(self.frames):
            if k == t:
                continue
            agree = (np.abs(other_luma - luma) < self.threshold).astype(np.float32)
            total += other.astype(np.float32) * agree[..., None]
            count += agree
        return np.clip(np.round(total / count[..., None]), 0, 255).astype(np.uint8)

    def push(self, frame) -> list:
        frame = np.asarray(frame)
        self.frames.append((frame, _luma(frame) if self.radius else None))
        self.seen += 1
        out = []
        # frame index i (0-based in the video) is ready when frame i + R is in
        while self.next_out + self.radius < self.seen:
            out.append(self._emit())
        return out

    def _emit(self) -> np.ndarray:
        first = self.seen - len(self.frames)  # video index of self.frames[0]
        t = self.next_out - first
        result = self._output(t)
        self.next_out += 1
        # keep only the frames the next output still needs: indices >= next_out - R
        while self.frames and (self.seen - len(self.frames)) < self.next_out - self.radius:
            self.frames.popleft()
        return result

    def flush(self) -> list:
        out = []
        while self.next_out < self.seen:
            out.append(self._emit())
        return out


def filter_video(derained, radius: int, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """The whole video at once (N x H x W x 3 uint8), through :class:`TemporalFilter`."""
    f = TemporalFilter(radius, threshold)
    out = []
    for frame in derained:
        out.extend(f.push(frame))
    out.extend(f.flush())
    return np.stack(out)
