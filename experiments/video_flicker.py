r"""Research tool: does a per-frame de-rainer flicker? Measured on a rainy video with ground truth.

    python -m experiments.video_flicker --model=menet-lb-multiscale --frames=48 --seeds=0,1,2

The video (menet_tf.synthesis.rain_video): a slow pan over a photo (scikit-image's ``coffee``, or
--photo), rain falling between frames. Each model de-rains it frame by frame (menet_tf.derainer, no
encoding, so only the net is measured), with and without --temporal_radius (the temporal filter of
menet_tf.temporal). Printed per model and seed, and as one JSON line last:

* ``temporal_error``: the flicker -- the mean absolute change between consecutive frames (0..255),
  minus the clean video's own (the pan's), for the rainy input and each output; 0 = as steady as the
  clean video;
* ``psnr``: mean per-frame PSNR (RGB) against the clean frames (a filter that ghosts loses here).
"""

from __future__ import annotations

import json

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("model", ["menet-lb-multiscale"], "shipped model names or model directories")
flags.DEFINE_string("photo", None, "the photo to pan over (default: scikit-image's coffee, 600x400)")
flags.DEFINE_integer("frames", 48, "frames per video", lower_bound=3)
flags.DEFINE_list("seeds", ["0", "1", "2"], "rain seeds (one video each)")
flags.DEFINE_integer("pan", 2, "pan speed, px per frame")
flags.DEFINE_enum("style", "light", ["light", "heavy", "varied"], "rain style")
flags.DEFINE_list("temporal_radius", ["0", "1", "2"], "temporal filter radii to compare (0 = off)")


def temporal_error(frames, clean) -> float:
    import numpy as np

    f, c = np.asarray(frames, np.float64), np.asarray(clean, np.float64)
    return float(np.abs(np.diff(f, axis=0)).mean() - np.abs(np.diff(c, axis=0)).mean())


def psnr(frames, clean) -> float:
    import numpy as np

    mse = ((np.asarray(frames, np.float64) - np.asarray(clean, np.float64)) ** 2).mean(axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-12))))


def main(argv):
    del argv
    import numpy as np

    from experiments import cliutil
    from menet_tf import synthesis, temporal
    from menet_tf.derainer import Derainer
    from menet_tf.imageio import read_image

    if FLAGS.photo:
        photo = read_image(FLAGS.photo)
    else:
        import skimage.data

        photo = skimage.data.coffee()
    dirs = cliutil.resolve_models("experiments.video_flicker", FLAGS.model)
    radii = [int(r) for r in FLAGS.temporal_radius]
    rows = []
    for name, model_dir in zip(FLAGS.model, dirs):
        d = Derainer.load(model_dir=model_dir)
        for seed in (int(s) for s in FLAGS.seeds):
            clean, rainy = synthesis.rain_video(photo, FLAGS.frames, seed=seed, pan=FLAGS.pan, style=FLAGS.style)
            out = np.concatenate([d.derain_batch(rainy[i:i + 8]) for i in range(0, len(rainy), 8)])
            row = {"model": name, "seed": seed, "input": {"temporal_error": temporal_error(rainy, clean),
                                                          "psnr": psnr(rainy, clean)}}
            for r in radii:
                filtered = out if r == 0 else temporal.filter_video(out, r)
                row[f"radius_{r}"] = {"temporal_error": temporal_error(filtered, clean), "psnr": psnr(filtered, clean)}
            rows.append(row)
            print(f"{name} seed {seed}: input flicker {row['input']['temporal_error']:.2f}, PSNR "
                  f"{row['input']['psnr']:.2f}; " + "; ".join(
                      f"radius {r}: flicker {row[f'radius_{r}']['temporal_error']:.3f}, PSNR {row[f'radius_{r}']['psnr']:.2f}"
                      for r in radii), flush=True)
    print(json.dumps({"frames": FLAGS.frames, "pan": FLAGS.pan, "style": FLAGS.style, "rows": rows}))


if __name__ == "__main__":
    app.run(main)
