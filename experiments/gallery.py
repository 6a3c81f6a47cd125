r"""The real-photo gallery of docs/gallery.md: rainy | de-rained as is | de-rained at the auto rain scale.

    python -m experiments.gallery --input=../shared/data/real_rain --output_dir=docs/gallery
    python -m experiments.gallery --input=../shared/data/real_rain --output_dir=cmp \
        --models=menet-lb-rain100l,runs/menet_lb_real --rain_scales=1      # two models side by side
    python -m experiments.gallery --input=../shared/data/real_rain_more --output_dir=cmp --rain_scales=1 \
        --extra_dirs="PReNet real=runs/prenet/real/real_rain_more"         # a peer's outputs beside ours

For every photo of --input, one JPEG of at most --max_kb KB, --width px wide: the rainy photo, then for
each of --models (shipped names or model directories; default: the default shipped model) its output
at each of --rain_scales (``1``, a number, or ``auto``: ``menet_tf.inference.auto_rain_scale``), side
by side, each de-rained at full resolution (exact tiles, as ``experiments.derain`` does) and then shrunk
for the page. ``--crop=N`` shows the central N x N pixels of every panel instead, unshrunk: real streaks
are one or two pixels wide, so models are compared there. Each photo's line gives, per panel, the fraction
of the rainy photo's streak energy removed (``menet_tf.streaks``, a no-reference measure: thin bright
lines near one direction), and the last line its mean over the photos. The real photos
of ``../shared/data/real_rain`` are for research use only and not for this repository, so
``docs/gallery/`` is not committed (.gitignore): run this command to see the pictures docs/gallery.md
describes.
"""

from __future__ import annotations

import io
import os

from absl import app, flags

from experiments import cliutil

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "a folder of photos")
flags.DEFINE_string("output_dir", None, "where the JPEGs go")
flags.DEFINE_list("models", None, "shipped model names or model directories (default: the default shipped model)")
flags.DEFINE_list("extra_dirs", None, "LABEL=FOLDER,...: outputs another tool made (e.g. experiments.prenet_peer), "
                  "<photo stem>.png each, shown after the models' panels")
flags.DEFINE_list("rain_scales", ["1", "auto"], "rain scales to de-rain each photo at: 1, a number >= 1, or auto")
flags.DEFINE_bool("self_ensemble", False, "de-rain with the mean over 4 flips (menet_tf.inference.self_ensemble)")
flags.DEFINE_integer("width", 1500, "width of each JPEG (all panels)")
flags.DEFINE_integer("max_kb", 200, "largest JPEG size in KB")
flags.DEFINE_integer("crop", 0, "show only the central N x N pixels of each panel, at full resolution (--width is then "
                     "ignored); 0: the whole photo, shrunk to --width", lower_bound=0)
flags.mark_flags_as_required(["input", "output_dir"])


def jpeg_under(image, max_bytes: int) -> bytes:
    """The best-quality JPEG of ``image`` (a PIL image) that fits in ``max_bytes``."""
    for quality in range(92, 19, -4):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=quality, optimize=True)
        if buf.tell() <= max_bytes:
            return buf.getvalue()
    raise ValueError(f"cannot fit a {image.size} JPEG in {max_bytes} bytes")


def centre_crop(image, size: int):
    """The central ``size`` x ``size`` pixels of an H x W x C image (the whole side where it is shorter)."""
    h, w = image.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[top : top + size, left : left + size]


def main(argv):
    if len(argv) > 1:
        cliutil.usage_error("experiments.gallery", f"unexpected arguments: {' '.join(argv[1:])}")
    from menet_tf import pretrained

    models = FLAGS.models or [pretrained.DEFAULT]
    model_dirs = cliutil.resolve_models("experiments.gallery", models)
    extras = cliutil.extra_dirs("experiments.gallery", FLAGS.extra_dirs)
    for scale in FLAGS.rain_scales:
        problem = cliutil.rain_scale_problem("--rain_scales", scale)
        if problem:
            cliutil.usage_error("experiments.gallery", problem)
    import numpy as np
    from PIL import Image

    from menet_tf import atomic, inference, streaks
    from menet_tf.derainer import Derainer
    from menet_tf.imageio import list_image_inputs as list_inputs
    from menet_tf.imageio import read_image

    # whole up to 1024 px, exact tiles above
    derainers = [Derainer.load(model_dir=d, self_ensemble=FLAGS.self_ensemble) for d in model_dirs]

    paths, others = list_inputs(FLAGS.input)
    for path, reason in others:
        print(f"not processed: {path}: {reason}")
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    se = " + self-ensemble" if FLAGS.self_ensemble else ""
    labels = [f"{m}{se} @ {sc}" for m in models for sc in FLAGS.rain_scales] + [label for label, _ in extras]
    removed_all = []
    for path in paths:
        rainy = read_image(path, exif_transpose=True)
        h, w = rainy.shape[:2]
        auto = inference.auto_rain_scale(h, w)
        scales = [auto if sc == "auto" else float(sc) for sc in FLAGS.rain_scales]
        panels = [rainy] + [d.at_rain_scale(sc).derain(rainy, exact_float=True) for d in derainers for sc in scales]
        missing = []
        for label, folder in extras:
            try:
                panels.append(cliutil.extra_output(folder, path, rainy.shape).astype(np.float32))
            except ValueError as e:  # e.g. a photo the other tool did not process: a grey panel, not measured
                print(f"note: {label}: {e}", flush=True)
                panels.append(np.full(rainy.shape, 128.0, np.float32))
                missing.append(len(panels) - 2)
        if FLAGS.crop:
            panels = [centre_crop(p, FLAGS.crop) for p in panels]
        # streak energy removed (menet_tf.streaks), on the panels shown (--crop) or the central 1024 px
        measured = [p if FLAGS.crop else centre_crop(p, 1024) for p in panels]
        small = min(measured[0].shape[:2]) < 64  # too small to measure streaks on (menet_tf.streaks)
        reference = None if small else streaks.streak_energy(measured[0])
        removed = [float("nan") if small or k in missing else streaks.fraction_removed(measured[0], p, reference=reference)
                   for k, p in enumerate(measured[1:])]
        removed_all.append(removed)
        strip = np.concatenate([np.clip(np.round(p), 0, 255).astype(np.uint8) for p in panels], axis=1)
        page = Image.fromarray(strip)
        if not FLAGS.crop:
            page = page.resize((FLAGS.width, max(1, round(FLAGS.width * h / (len(panels) * w)))), Image.LANCZOS)
        out = os.path.join(FLAGS.output_dir, os.path.splitext(os.path.basename(path))[0] + ".jpg")
        blob = jpeg_under(page, FLAGS.max_kb * 1000)
        with atomic.atomic_write(out, "wb") as f:
            f.write(blob)
        print(f"{out}: {w}x{h}, auto rain scale {auto:.2f}, {len(panels)} panels, {len(blob) / 1000:.0f} KB; "
              f"streak energy removed: {', '.join(f'{r:.0%}' for r in removed)}", flush=True)
    if paths:
        table = np.array(removed_all, dtype=float)
        both = ~np.isnan(table).any(axis=1)  # the photos every panel was measured on
        print(f"mean streak energy removed over the {int(both.sum())} photos measured for every panel "
              "(menet_tf.streaks): " + ", ".join(f"{label} {table[both, k].mean():.1%}" for k, label in enumerate(labels)),
              flush=True)


def console():
    app.run(main)


if __name__ == "__main__":
    console()
