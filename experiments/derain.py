r"""De-rain real photos of any size with a trained model directory or an exported SavedModel.

    python -m experiments.derain --input=photo.jpg --output_dir=out        # the default shipped model
    python -m experiments.derain --input=../shared/data/real_rain --output_dir=out --model=menet-lb-rain100l
    python -m experiments.derain --input=../shared/data/real_rain --output_dir=out --model_dir=runs/menet_gb
    python -m experiments.derain --input=photo.jpg --output_dir=out --saved_model=exports/menet_gb --side_by_side

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
flags.DEFINE_string("model", None, "a shipped model by name (menet_tf.pretrained.names()); with none of "
                    "--model, --model_dir and --saved_model: the default shipped model")
flags.DEFINE_integer("tile", 1024, "tile side in pixels (rounded down to the net's multiple); 0 = whole image")
flags.DEFINE_integer("tile_overlap", -1, "pixels shared by adjacent tiles (rounded up to the multiple); -1 = auto")
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
flags.DEFINE_bool("compare_whole", False, "diagnostic: also de-rain each tiled image whole and print how much the two differ")
flags.mark_flags_as_required(["input", "output_dir"])



def usage_error(message: str):
    """Bad flags: one line on stderr, exit status 2, before any work."""
    cliutil.usage_error("experiments.derain", message)

def list_inputs(path: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The images to de-rain and every other folder entry with its reason (menet_tf.imageio.list_image_inputs)."""
    from menet_tf.imageio import list_image_inputs

    return list_image_inputs(path)


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
    if FLAGS.saved_model is None:  # a shipped model is a model directory inside the package
        FLAGS.model_dir = cliutil.resolve_model("experiments.derain", FLAGS.model_dir, FLAGS.model, default=True)
    if FLAGS.model_dir is not None:
        problem = cliutil.model_dir_problem(FLAGS.model_dir)
        if problem:
            usage_error(problem)
    else:
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
        for suffix in ("", "_side_by_side"):
            out = os.path.realpath(os.path.join(FLAGS.output_dir, stem + suffix + ".png"))
            if out in ins:
                usage_error(f"writing {out} would overwrite an input: choose another --output_dir")
    return paths, others


def load_model():
    """-> (fn float32 [1,h,w,3] -> [1,h,w,3], Keras net or None (SavedModel), multiple, receptive radius,
    channel attention, description)."""
    import tensorflow as tf

    from menet_tf import export, inference, pretrained
    from menet_tf.model import load_net, read_config, required_multiple

    if FLAGS.model_dir is not None:
        policy = inference.configure_precision(FLAGS.mixed_precision)
        config = read_config(FLAGS.model_dir)
        net = load_net(FLAGS.model_dir)
        ca = bool(config.get("channel_attention", False))
        multiple = required_multiple(ca)
        fn = inference.padded_fn(net, multiple, jit_compile=FLAGS.jit_compile)
        radius = inference.receptive_radius(int(config.get("num_res_blocks", 8)))
        shipped = os.path.dirname(os.path.abspath(FLAGS.model_dir)) == pretrained.PRETRAINED_DIR
        source = f"shipped model {os.path.basename(os.path.abspath(FLAGS.model_dir))}" if shipped else FLAGS.model_dir
        desc = f"{source} ({config.get('num_res_blocks')} blocks, CA {ca}, {policy}, XLA {FLAGS.jit_compile})"
        return fn, net, multiple, radius, ca, desc
    loaded = tf.saved_model.load(FLAGS.saved_model)
    signature = loaded.signatures[export.SIGNATURE_FLOAT]
    info = export.read_export_info(FLAGS.saved_model) or {}
    # without the info file, assume the most demanding net (16 blocks, CA)
    multiple = int(info.get("required_multiple", 16))
    radius = int(info.get("receptive_radius", inference.receptive_radius(16)))
    ca = bool(info.get("global_channel_attention", True))

    def fn(images):
        return signature(images=images)["derained"]

    return fn, None, multiple, radius, ca, f"{FLAGS.saved_model} (SavedModel, multiple {multiple}, CA {ca})"


def run_whole(fn, image):
    import numpy as np

    out = fn(np.asarray(image, np.float32)[None])
    return np.asarray(out.numpy() if hasattr(out, "numpy") else out, np.float32)[0]


def rain_scale(height: int, width: int) -> float:
    from menet_tf import inference

    return inference.auto_rain_scale(height, width) if FLAGS.rain_scale == "auto" else float(FLAGS.rain_scale)


def to_uint8(image):
    import numpy as np

    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def compare_with_whole(fn, rainy, tiled, tile, overlap) -> str:
    """max / mean |tiled - whole| (0..255), away from and on the tile seams, and their PSNR."""
    import numpy as np

    from menet_tf import inference

    whole = run_whole(fn, rainy)
    diff = np.abs(tiled - whole).max(-1)
    seams = inference.seam_mask(*rainy.shape[:2], tile, overlap)
    mse = float(np.mean((tiled - whole) ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    away = diff[~seams].max() if (~seams).any() else 0.0
    on = diff[seams].max() if seams.any() else 0.0
    return (f"tiled vs whole: max |diff| {away:.3g} away from seams, {on:.3g} on seams; "
            f"mean {diff.mean():.3g}; PSNR {psnr:.2f} dB (0..255)")


def main(argv):
    if len(argv) > 1:
        usage_error(f"unexpected arguments: {' '.join(argv[1:])}")
    paths, others = _check_flags()
    from absl import logging

    logging.set_verbosity(logging.WARNING)

    import numpy as np

    from menet_tf import inference
    from menet_tf.atomic import crash_point, remove_partials
    from menet_tf.imageio import read_image, write_image
    from menet_tf.progress import progress_bar

    fn, net, multiple, radius, ca, desc = load_model()
    two_pass = ca and net is not None  # exact CA tiles need the Keras net's layers
    tile = FLAGS.tile // multiple * multiple
    if FLAGS.tile and tile == 0:
        usage_error(f"--tile={FLAGS.tile} is smaller than the net's multiple ({multiple})")
    overlap = inference.auto_overlap(radius, multiple) if FLAGS.tile_overlap < 0 else inference.round_up(FLAGS.tile_overlap, multiple)
    if tile and tile < 2 * overlap:
        usage_error(f"--tile={tile} must be at least twice the tile overlap ({overlap}): raise --tile or lower --tile_overlap")
    if tile and two_pass and tile < 2 * inference.CA_MARGIN + multiple:
        usage_error(f"--tile={tile}: exact tiles with channel attention need --tile >= {2 * inference.CA_MARGIN + multiple}")
    names = output_names(paths)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    removed = remove_partials(FLAGS.output_dir)
    if removed:
        print(f"removed {len(removed)} partial file(s) an interrupted run left in {FLAGS.output_dir}")
    print(f"model: {desc}")
    if tile:
        local_exact = inference.default_margin(overlap) >= radius
        if ca and not two_pass:
            exact = ""
        elif local_exact:
            exact = " (exact: margin >= receptive radius" + ("; channel attention in two passes)" if two_pass else ")")
        else:
            exact = " (approximate: overlap below 2 x receptive radius + ramp)"
        print(f"tiles: <= {tile} px, overlap {overlap}, receptive radius {radius}{exact}")
        if ca and not two_pass:
            print("note: a SavedModel's tiles use tile-local channel attention, so they are approximate (--tile=0 or --model_dir for exact)")
    else:
        print("tiles: off (whole images)")

    for path, reason in others:
        print(f"not processed: {path}: {reason}", flush=True)
    failed: list[tuple[str, str]] = []
    written = 0
    t_start = time.perf_counter()
    skipped = 0
    for k, path in enumerate(paths, 1):
        name = os.path.basename(path)
        print(f"[{k}/{len(paths)}] {name}", end="", flush=True)
        outputs = [names[path] + ".png"] + ([names[path] + "_side_by_side.png"] if FLAGS.side_by_side else [])
        if FLAGS.skip_existing and all(os.path.isfile(os.path.join(FLAGS.output_dir, o)) for o in outputs):
            print(f": {', '.join(outputs)} already there, skipped", flush=True)
            skipped += 1
            continue
        try:
            rainy = read_image(path, exif_transpose=True)
            scale = rain_scale(*rainy.shape[:2])
            net_input = rainy if scale <= 1 else inference.shrink_for_rain_scale(rainy, scale)
            h, w = net_input.shape[:2]
            use_tiles = tile and (h > tile or w > tile)
            n_pass1, n_tiles = inference.tiled_calls(h, w, tile, overlap, two_pass) if use_tiles else (0, 1)
            pass1 = f" + {n_pass1} attention windows" if n_pass1 else ""
            at = f", rain scale {scale:.2f}: the net runs at {w}x{h}" if scale > 1 else ""
            print(f": {rainy.shape[1]}x{rainy.shape[0]}{at}, {n_tiles} tile{'s' if n_tiles > 1 else ''}{pass1}", flush=True)
            bar = progress_bar(n_pass1 + n_tiles, unit_name="tile")
            t0 = time.perf_counter()
            exact_float = FLAGS.compare_whole or scale > 1

            def run_net(image):
                if not use_tiles:
                    out = run_whole(fn, image)
                    bar.update(1)
                    return out if exact_float else to_uint8(out)
                out = inference.derain_tiled(
                    net if net is not None else fn, image, tile=tile, overlap=overlap, multiple=multiple,
                    jit_compile=FLAGS.jit_compile, out_dtype=np.float32 if exact_float else np.uint8,
                    progress=lambda done, total: bar.update(done),
                )
                if FLAGS.compare_whole:
                    print("  " + compare_with_whole(fn, image, out, tile, overlap), flush=True)
                return out

            if scale > 1:
                derained = to_uint8(inference.derain_at_scale(run_net, rainy, scale, small=net_input))
            else:
                derained = run_net(rainy)
                derained = to_uint8(derained) if exact_float else derained
            stem = names[path]
            during = lambda: crash_point("derain_during_write", k - 1)  # noqa: E731 - crash tests only
            write_image(os.path.join(FLAGS.output_dir, stem + ".png"), derained, before_rename=during)
            if FLAGS.side_by_side:
                write_image(os.path.join(FLAGS.output_dir, stem + "_side_by_side.png"),
                            np.concatenate([rainy, derained], axis=1), before_rename=during)
            written += 1
            print(f"  -> {stem}.png ({time.perf_counter() - t0:.1f} s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report any failure by file name and go on
            reason = str(e) if path in str(e) else f"{path}: {type(e).__name__}: {e}"
            print(f"\n  FAILED {reason}", flush=True)
            failed.append((path, reason))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    already = f" ({skipped} skipped: already there)" if skipped else ""
    print(f"done: {written} of {len(paths)} images written to {FLAGS.output_dir}{already} in {time.perf_counter() - t_start:.1f} s; "
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
