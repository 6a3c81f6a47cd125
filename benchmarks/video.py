"""Video de-raining speed: frames per second at 640x360, 1280x720 and 1920x1080, float32 and bfloat16, with
decoding and encoding (``menet_tf.video.derain_video``, H.264 crf 17) and without (the net alone on decoded
frames, ``Derainer.derain_batch``), and which sizes run in real time (>= 25 frames/s); then peak memory of
``derain`` on a 100- and a 1,000-frame video of one size (streaming: it must not grow with the length).

    python -m benchmarks.video [--model=menet-lb-multiscale] [--frames=24] [--sizes=640x360,1280x720,1920x1080]
        [--self_ensemble]

The model is run as `derain` runs it (its default 1024-px tiles: 1920x1080 frames are de-rained in exact
tiles, one frame at a time). Videos are synthetic (menet_tf.synthesis.rain_video over scikit-image's
coffee photo, enlarged), made before timing. Last line: {"results": [{"size", "precision", "fps_with_codec",
"fps_net_only", "realtime"}, ...], "memory": {"frames_100_mb", "frames_1000_mb", "ratio"}, ...}.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_string("model", "menet-lb-multiscale", "a shipped model name or a model directory")
flags.DEFINE_list("sizes", ["640x360", "1280x720", "1920x1080"], "frame sizes WxH")
flags.DEFINE_list("precisions", ["float32", "bfloat16"], "float32 and/or bfloat16 (mixed_precision)")
flags.DEFINE_integer("frames", 24, "frames per timed video (the first batch is a warm-up, not timed)")
flags.DEFINE_integer("batch", 4, "frames per net call (derain --video_batch)")
flags.DEFINE_bool("self_ensemble", False, "the mean over 4 flips per frame (derain's default since issue 20; off here, "
                  "as the numbers of one pass were measured first)")
flags.DEFINE_string("memory_size", "320x180", "frame size of the 100- / 1,000-frame memory check ('' skips it)")
FLAGS = flags.FLAGS

REALTIME_FPS = 25.0


def _frames(w: int, h: int, n: int) -> np.ndarray:
    import skimage.data
    from PIL import Image

    from menet_tf import synthesis

    photo = skimage.data.coffee()
    scale = max(h / photo.shape[0], (w + 2 * n) / photo.shape[1]) * 1.01
    big = np.asarray(Image.fromarray(photo).resize((int(photo.shape[1] * scale) + 1, int(photo.shape[0] * scale) + 1)))
    return synthesis.rain_video(big, n, size=(h, w), seed=0, pan=2)[1]


def _write(path: str, frames: np.ndarray) -> None:
    import av

    with av.open(path, "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        vs.options = {"crf": "12", "preset": "veryfast"}
        for f in frames:
            out.mux(vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(vs.encode(None))


def _time_config(model_dir, precision, w, h, path, frames, batch):
    from menet_tf import video
    from menet_tf.derainer import Derainer

    d = Derainer.load(model_dir=model_dir, mixed_precision=precision == "bfloat16", self_ensemble=FLAGS.self_ensemble)
    d.derain_batch(frames[:batch])  # warm-up: graph tracing for this size
    t0 = time.perf_counter()
    n = 0
    for i in range(batch, len(frames), batch):
        d.derain_batch(frames[i:i + batch])
        n += len(frames[i:i + batch])
    net_fps = n / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        stats = video.derain_video(path, os.path.join(tmp, "out.mp4"), d.derain_batch, batch_size=batch,
                                   note=lambda _: None)
    return stats["fps"], net_fps


def _peak_mb(model: str, path: str, out: str) -> float:
    r = subprocess.run([sys.executable, "-m", "experiments.derain", f"--input={path}", f"--output_dir={out}",
                        f"--model={model}", "--mixed_precision",
                        "--self_ensemble" if FLAGS.self_ensemble else "--noself_ensemble"], capture_output=True, text=True, timeout=3600)
    if r.returncode:
        raise SystemExit(f"derain failed on {path}: {r.stderr[-2000:]}")
    return float(re.search(r"peak memory \(max RSS of this process\) (\d+) MB", r.stdout).group(1))


def main(argv):
    del argv
    from benchmarks.common import print_json
    from experiments.cliutil import cpu_description
    from menet_tf import pretrained

    model_dir = pretrained.name_or_dir(FLAGS.model)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in FLAGS.sizes:
            w, h = (int(v) for v in size.lower().split("x"))
            frames = _frames(w, h, FLAGS.frames)
            path = os.path.join(tmp, f"{size}.mp4")
            _write(path, frames)
            for precision in FLAGS.precisions:
                with_codec, net_only = _time_config(model_dir, precision, w, h, path, frames, FLAGS.batch)
                row = {"size": size, "precision": precision, "fps_with_codec": round(with_codec, 2),
                       "fps_net_only": round(net_only, 2), "realtime": with_codec >= REALTIME_FPS}
                results.append(row)
                print(f"{size} {precision}: {with_codec:.2f} frames/s with decode + encode, {net_only:.2f} net only"
                      f"{' (real time)' if row['realtime'] else ''}", flush=True)
        memory = None
        if FLAGS.memory_size:
            w, h = (int(v) for v in FLAGS.memory_size.lower().split("x"))
            short = _frames(w, h, 100)
            p100, p1000 = os.path.join(tmp, "m100.mp4"), os.path.join(tmp, "m1000.mp4")
            _write(p100, short)
            _write(p1000, np.concatenate([short] * 10))
            m100 = _peak_mb(FLAGS.model, p100, os.path.join(tmp, "o100"))
            m1000 = _peak_mb(FLAGS.model, p1000, os.path.join(tmp, "o1000"))
            memory = {"size": FLAGS.memory_size, "frames_100_mb": m100, "frames_1000_mb": m1000,
                      "ratio": round(m1000 / m100, 3)}
            print(f"peak RSS of derain at {FLAGS.memory_size}: {m100:.0f} MB for 100 frames, {m1000:.0f} MB for 1,000 "
                  f"({m1000 / m100:.3f}x)", flush=True)
    print_json({"model": FLAGS.model, "self_ensemble": FLAGS.self_ensemble, "batch": FLAGS.batch, "frames": FLAGS.frames, "machine": cpu_description(),
                "realtime_fps": REALTIME_FPS, "results": results, "memory": memory})


if __name__ == "__main__":
    app.run(main)
