r"""De-rain real photos of any size with a trained model directory or an exported SavedModel.

    python -m experiments.derain --input=photo.jpg --output_dir=out        # the default shipped model
    python -m experiments.derain --input=../shared/data/real_rain --output_dir=out --model=menet-lb-rain100l
    python -m experiments.derain --input=../shared/data/real_rain --output_dir=out --model_dir=runs/menet_gb
    python -m experiments.derain --input=photo.jpg --output_dir=out --saved_model=exports/menet_gb --side_by_side

Videos (``pip install 'menet-tf[video]'``, PyAV): --input may be a video file, or a folder holding photos
and videos. ``clip.mp4`` is written as ``output_dir/clip.mp4`` (``clip_side_by_side.mp4`` with
--side_by_side): the same resolution, frame count, frame rate, frame timestamps and rotation, the audio and
subtitle streams copied as they are, the video encoded with --codec at --crf (menet_tf.video). Frames are
decoded, de-rained in batches of --video_batch and encoded as a stream (memory bounded by the frame size,
not the video's length). Every model option applies to videos as to photos.

Self-ensemble (photos: on by default, issue 20): every photo is de-rained four times, as is, mirrored, upside
down and turned half, and the mean of the four results flipped back is written
(menet_tf.inference.self_ensemble): 4x the net's time. It is what makes the default model meet every heavy-,
light- and real-rain target of issue 20 (README). Video frames get one pass unless --self_ensemble is given
(then a frame is again the photo result of that frame); --noself_ensemble de-rains photos in one pass too.

--input is an image file or a folder (its image files, not recursive). Each input ``foo.jpg`` is written as
``output_dir/foo.png`` (``foo_side_by_side.png``, rainy | de-rained, with --side_by_side); when two inputs
share a stem (``foo.jpg``, ``foo.png``) both are named ``foo_jpg.png``, ``foo_png.png``. EXIF orientation
is applied. A file that cannot be read or processed is reported by name and skipped; the others are
still written, a summary lists the failures, and the exit status is 1 if any failed. Every output is
written whole or not at all (a temporary name, then a rename): after a crash, re-running with
--skip_existing de-rains only the inputs whose outputs are missing.

Tiling: images larger than --tile are de-rained in overlapping tiles of at most --tile x --tile pixels
(memory bounded by the tile, not the image), blended over --tile_overlap pixels (default: auto, from the
net's receptive field, which makes tiled output equal whole-image output). With channel attention a
--model_dir net is tiled in two passes (the whole image's attention from tile-sized windows, then the
tiles with it), which keeps tiles exact; a --saved_model with channel attention is tiled in one pass with
tile-local attention, which is approximate (see docs/deployment.md). --tile=0 processes whole images.

GPU: --jit_compile (XLA) and --mixed_precision (mixed_float16 on GPU, mixed_bfloat16 on CPU) apply to
--model_dir; an exported SavedModel's precision and XLA are fixed at export.
"""

from __future__ import annotations

import os
import resource
import sys
import time

from absl import app, flags

from experiments import cliutil

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "an image file or a folder of images (PNG/JPEG/...)")
flags.DEFINE_string("output_dir", None, "where to write the de-rained PNGs")
flags.DEFINE_string("model_dir", None, "trained model directory (config.json + net.weights.h5)")
flags.DEFINE_string("saved_model", None, "a SavedModel written by experiments.export")
flags.DEFINE_string("model", None, "a shipped model by name (menet_tf.pretrained.names()), or 'auto' (a light- "
                    "and a heavy-rain model, chosen per photo by a measured rule: menet_tf.auto); with none of "
                    "--model, --model_dir and --saved_model: the default shipped model")
flags.DEFINE_integer("tile", 1024, "tile side in pixels (rounded down to the net's multiple); 0 = whole image")
flags.DEFINE_integer("tile_overlap", -1, "pixels shared by adjacent tiles (rounded up to the multiple); -1 = auto")
flags.DEFINE_bool("self_ensemble", None, "de-rain each image 4 times, flipped left-right and up-down, and keep the "
                  "mean: 4x the net's time, +0.3 dB on heavy rain, +0.6 on Rain100L and 41.8% instead of 40.2% of "
                  "real streaks for the default model (README). Default: on for photos, off for video frames (one "
                  "pass keeps videos 3.3x faster); --self_ensemble / --noself_ensemble: on / off for both")
flags.DEFINE_bool("side_by_side", False, "also write foo_side_by_side.png (rainy | de-rained)")
flags.DEFINE_bool("jit_compile", False, "compile the net with XLA (--model_dir only)")
flags.DEFINE_bool("mixed_precision", False, "mixed_float16 on GPU / mixed_bfloat16 on CPU (--model_dir only)")
flags.DEFINE_bool("skip_existing", False, "skip inputs whose outputs are already in --output_dir (every output "
                  "is written whole or not at all, so after a crash a re-run with this flag does the rest)")
flags.DEFINE_string("rain_scale", "1", "how many times larger the photo's streaks are than the training "
                    "data's: the net runs on the photo shrunk by it and the rain it removes there is enlarged and "
                    "subtracted at full resolution (menet_tf.inference.derain_at_scale); 'auto' = the photo's short "
                    "side / 481 px (1.5 x the benchmark images' 321), clamped to [1, 8]; 1 = off (default: on "
                    "real photos it thins wide, soft streaks but leaves sharp thin ones that scale 1 removes, "
                    "docs/gallery.md)")
flags.DEFINE_string("codec", "libx264", "videos: the video encoder (FFmpeg's name: libx264, libx265, libvpx-vp9, mpeg4, ...)")
flags.DEFINE_integer("crf", 17, "videos: constant rate factor of libx264/libx265/libvpx-vp9 (lower = better; 17 is "
                     "visually lossless for H.264)", lower_bound=0, upper_bound=63)
flags.DEFINE_integer("video_batch", 4, "videos: frames per net call (whole frames only; tiled frames go one by one)",
                     lower_bound=1)
flags.DEFINE_bool("compare_whole", False, "diagnostic: also de-rain each tiled image whole and print how much the two differ")
flags.mark_flags_as_required(["input", "output_dir"])



def usage_error(message: str):
    """Bad flags: one line on stderr, exit status 2, before any work."""
    cliutil.usage_error("experiments.derain", message)

def list_inputs(path: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The images and videos to de-rain and every other folder entry with its reason
    (menet_tf.imageio.list_image_inputs; video files by extension, menet_tf.video.is_video_file)."""
    from menet_tf.imageio import list_image_inputs
    from menet_tf.video import is_video_file

    paths, others = list_image_inputs(path)
    videos = [p for p, _ in others if os.path.isfile(p) and is_video_file(p)]
    return sorted(paths + videos), [(p, r) for p, r in others if p not in videos]


def output_files(path: str, stem: str, side_by_side: bool) -> list[str]:
    """The output file names of one input: ``stem.png`` (+ ``stem_side_by_side.png``) for a photo,
    ``stem.EXT`` (+ ``stem_side_by_side.EXT``) for a video, EXT the input's."""
    from menet_tf.video import is_video_file

    ext = os.path.splitext(path)[1].lower() if is_video_file(path) else ".png"
    return [stem + ext] + ([stem + "_side_by_side" + ext] if side_by_side else [])


def output_names(paths: list[str]) -> dict[str, str]:
    """input path -> output stem: the file's stem, or stem_ext when stems collide."""
    stems: dict[str, list[str]] = {}
    for p in paths:
        stems.setdefault(os.path.splitext(os.path.basename(p))[0], []).append(p)
    names = {}
    for stem, group in stems.items():
        for p in group:
            ext = os.path.splitext(p)[1].lstrip(".").lower()
            names[p] = stem if len(group) == 1 else f"{stem}_{ext}"
    return names


def _check_flags() -> tuple[list[str], list[tuple[str, str]]]:
    given = [f for f, v in (("--model_dir", FLAGS.model_dir), ("--model", FLAGS.model),
                            ("--saved_model", FLAGS.saved_model)) if v]
    if len(given) > 1:
        usage_error(f"give at most one of --model_dir, --model and --saved_model (got {' and '.join(given)})")
    if FLAGS.model == "auto":  # menet_tf.auto: a light- and a heavy-rain model, picked per photo
        from menet_tf import auto

        try:
            auto.rule()
        except ValueError as e:
            usage_error(f"--model=auto: {e}")
    elif FLAGS.saved_model is None:  # a shipped model is a model directory inside the package
        FLAGS.model_dir = cliutil.resolve_model("experiments.derain", FLAGS.model_dir, FLAGS.model, default=True)
    if FLAGS.model_dir is not None:
        problem = cliutil.model_dir_problem(FLAGS.model_dir)
        if problem:
            usage_error(problem)
    elif FLAGS.saved_model is not None:
        if not os.path.isfile(os.path.join(FLAGS.saved_model, "saved_model.pb")):
            usage_error(f"--saved_model={FLAGS.saved_model}: no saved_model.pb there")
        if FLAGS.jit_compile or FLAGS.mixed_precision:
            usage_error("--jit_compile / --mixed_precision apply to --model_dir; a SavedModel's are fixed at export")
    if not os.path.exists(FLAGS.input):
        usage_error(f"--input={FLAGS.input}: no such file or folder")
    problem = cliutil.rain_scale_problem("--rain_scale", FLAGS.rain_scale)
    if problem:
        usage_error(problem)
    if FLAGS.tile < 0:
        usage_error(f"--tile={FLAGS.tile}: must be >= 0 (0 = whole image)")
    if FLAGS.tile_overlap < -1:
        usage_error(f"--tile_overlap={FLAGS.tile_overlap}: must be >= 0, or -1 (auto)")
    if os.path.exists(FLAGS.output_dir) and not os.path.isdir(FLAGS.output_dir):
        usage_error(f"--output_dir={FLAGS.output_dir} exists and is not a folder")
    paths, others = list_inputs(FLAGS.input)
    if not paths:
        more = f" ({len(others)} other entries, e.g. {others[0][0]}: {others[0][1]})" if others else ""
        usage_error(f"--input={FLAGS.input}: no image files there{more}")
    names = output_names(paths)
    ins = {os.path.realpath(p) for p in paths}
    for p, stem in names.items():
        for name in output_files(p, stem, True):
            out = os.path.realpath(os.path.join(FLAGS.output_dir, name))
            if out in ins:
                usage_error(f"writing {out} would overwrite an input: choose another --output_dir")
    return paths, others


def self_ensemble_for(video: bool) -> bool:
    """--self_ensemble as given, else the default: on for photos, off for video frames."""
    return (not video) if FLAGS.self_ensemble is None else bool(FLAGS.self_ensemble)


def load_model(videos_only: bool = False):
    """The de-rainer of the flags (menet_tf.derainer.Derainer: one code path for photos, videos and the web
    page); a bad tile setting is a usage error."""
    from menet_tf.derainer import Derainer

    try:
        if FLAGS.model == "auto":
            from menet_tf.auto import AutoDerainer

            return AutoDerainer.load(mixed_precision=FLAGS.mixed_precision, jit_compile=FLAGS.jit_compile,
                                     tile=FLAGS.tile, tile_overlap=FLAGS.tile_overlap, rain_scale=FLAGS.rain_scale,
                                     self_ensemble=self_ensemble_for(video=videos_only))
        return Derainer.load(model_dir=FLAGS.model_dir, saved_model=FLAGS.saved_model,
                             mixed_precision=FLAGS.mixed_precision, jit_compile=FLAGS.jit_compile,
                             tile=FLAGS.tile, tile_overlap=FLAGS.tile_overlap, rain_scale=FLAGS.rain_scale,
                             self_ensemble=self_ensemble_for(video=videos_only))
    except ValueError as e:
        usage_error(f"--{e}" if str(e).startswith(("tile", "rain_scale")) else str(e))


def compare_with_whole(derainer, rainy, tiled, tile, overlap) -> str:
    """max / mean |tiled - whole| (0..255), away from and on the tile seams, and their PSNR."""
    import numpy as np

    from menet_tf import inference

    whole = derainer.run_whole(rainy)
    diff = np.abs(tiled - whole).max(-1)
    seams = inference.seam_mask(*rainy.shape[:2], tile, overlap)
    mse = float(np.mean((tiled - whole) ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    away = diff[~seams].max() if (~seams).any() else 0.0
    on = diff[seams].max() if seams.any() else 0.0
    return (f"tiled vs whole: max |diff| {away:.3g} away from seams, {on:.3g} on seams; "
            f"mean {diff.mean():.3g}; PSNR {psnr:.2f} dB (0..255)")


def derain_one_photo(derainer, path: str, stem: str, index: int) -> None:
    import numpy as np

    from menet_tf.atomic import crash_point
    from menet_tf.imageio import read_image, write_image
    from menet_tf.progress import progress_bar

    rainy = read_image(path, exif_transpose=True)
    plan = derainer.plan(*rainy.shape[:2])
    pass1 = f" + {plan.windows} attention windows" if plan.windows else ""
    at = f", rain scale {plan.scale:.2f}: the net runs at {plan.net_width}x{plan.net_height}" if plan.scale > 1 else ""
    passes = f", {plan.passes} flips" if plan.passes > 1 else ""
    print(f": {rainy.shape[1]}x{rainy.shape[0]}{at}, {plan.tiles} tile{'s' if plan.tiles > 1 else ''}{pass1}{passes}",
          flush=True)
    bar = progress_bar(plan.net_calls, unit_name="tile")

    def compare(image, tiled):
        print("  " + compare_with_whole(derainer, image, tiled, derainer.tile, derainer.overlap), flush=True)

    derained = derainer.derain(rainy, progress=lambda done, total: bar.update(done),
                               after_tiles=compare if FLAGS.compare_whole else None)
    if getattr(derainer, "last_choice", None):
        what = "removes beyond the light model" if derainer.rule.needs_light else "removes"
        print(f"  auto: {derainer.last_choice} (the heavy model {what} {derainer.last_amount:.1f} grey levels on "
              "average)", flush=True)
    during = lambda: crash_point("derain_during_write", index - 1)  # noqa: E731 - crash tests only
    write_image(os.path.join(FLAGS.output_dir, stem + ".png"), derained, before_rename=during)
    if FLAGS.side_by_side:
        write_image(os.path.join(FLAGS.output_dir, stem + "_side_by_side.png"),
                    np.concatenate([rainy, derained], axis=1), before_rename=during)


def derain_one_video(derainer, path: str, outputs: list[str]) -> None:
    from menet_tf import video
    from menet_tf.progress import progress_bar

    info = video.probe(path)
    plan = derainer.plan(info.height, info.width)
    tiles = f", {plan.tiles} tiles per frame" if plan.use_tiles else ""
    print(f": {info.text()}{tiles}", flush=True)
    bar = progress_bar(max(info.frames, 1), unit_name="frame", stateful_metrics=["frames/s"])
    main = outputs[0]
    t0 = time.perf_counter()

    def progress(done, total):  # frames/s so far; the bar's ETA is the time left
        bar.update(min(done, max(info.frames, 1)), values=[("frames/s", done / max(time.perf_counter() - t0, 1e-9))])

    stats = video.derain_video(
        path, main, derainer.derain_batch, batch_size=FLAGS.video_batch, codec=FLAGS.codec, crf=FLAGS.crf,
        side_by_side_dst=outputs[1] if len(outputs) > 1 else None, info=info, progress=progress,
        note=lambda text: print(f"  note: {text}", flush=True))
    copied = f", {stats['streams_copied']} of {stats['streams_in']} audio/subtitle streams copied" if stats["streams_in"] else ""
    print(f"  {stats['frames']} frames, {stats['fps']:.2f} frames/s{copied}", flush=True)


def main(argv):
    if len(argv) > 1:
        usage_error(f"unexpected arguments: {' '.join(argv[1:])}")
    paths, others = _check_flags()
    from absl import logging

    logging.set_verbosity(logging.WARNING)

    from menet_tf.atomic import remove_partials
    from menet_tf.derainer import set_self_ensemble
    from menet_tf.video import VideoSupportMissing, is_video_file, require_av

    videos = [p for p in paths if is_video_file(p)]
    derainer = load_model(videos_only=len(videos) == len(paths))
    if videos:
        try:
            require_av()
        except VideoSupportMissing as e:
            if len(videos) == len(paths):
                usage_error(str(e))
            print(f"note: {e}; the {len(videos)} video(s) are reported as failed, the photos de-rained", flush=True)
    names = output_names(paths)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    removed = remove_partials(FLAGS.output_dir)
    if removed:
        print(f"removed {len(removed)} partial file(s) an interrupted run left in {FLAGS.output_dir}")
    print(f"model: {derainer.description}")
    if FLAGS.self_ensemble is None and videos and len(videos) < len(paths):
        print("self-ensemble (mean over 4 flips): photos yes, video frames no (one pass; --self_ensemble for both)")
    print(derainer.tiling_text())

    for path, reason in others:
        print(f"not processed: {path}: {reason}", flush=True)
    failed: list[tuple[str, str]] = []
    written = 0
    t_start = time.perf_counter()
    skipped = 0
    for k, path in enumerate(paths, 1):
        name = os.path.basename(path)
        print(f"[{k}/{len(paths)}] {name}", end="", flush=True)
        outputs = output_files(path, names[path], FLAGS.side_by_side)
        if FLAGS.skip_existing and all(os.path.isfile(os.path.join(FLAGS.output_dir, o)) for o in outputs):
            print(f": {', '.join(outputs)} already there, skipped", flush=True)
            skipped += 1
            continue
        try:
            t0 = time.perf_counter()
            set_self_ensemble(derainer, self_ensemble_for(is_video_file(path)))
            if is_video_file(path):
                derain_one_video(derainer, path, [os.path.join(FLAGS.output_dir, o) for o in outputs])
            else:
                derain_one_photo(derainer, path, names[path], k)
            written += 1
            print(f"  -> {outputs[0]} ({time.perf_counter() - t0:.1f} s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report any failure by file name and go on
            reason = str(e) if path in str(e) else f"{path}: {type(e).__name__}: {e}"
            print(f"\n  FAILED {reason}", flush=True)
            failed.append((path, reason))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    already = f" ({skipped} skipped: already there)" if skipped else ""
    print(f"done: {written} of {len(paths)} inputs written to {FLAGS.output_dir}{already} in {time.perf_counter() - t_start:.1f} s; "
          f"peak memory (max RSS of this process) {peak_mb:.0f} MB")
    if others:
        print(f"{len(others)} entr{'y' if len(others) == 1 else 'ies'} of {FLAGS.input} not processed (not images "
              f"derain reads): {', '.join(os.path.basename(p) for p, _ in others)}")
    if failed:
        print(f"{len(failed)} failed:")
        for _, reason in failed:
            print(f"  {reason}")
        sys.exit(1)


def console():
    """The ``menet-derain`` console script (setup.cfg entry point): the same as ``python -m experiments.derain``."""
    app.run(main)


if __name__ == "__main__":
    console()
