r"""Research tool: run PReNet (Ren et al., CVPR 2019), the field's usual peer, beside this project's models.

PReNet's code and weights are not part of this repository: fetch its official repository yourself
(``git clone https://github.com/csdwren/PReNet``; its weights are under ``logs/``) and install PyTorch for
the CPU (``pip install torch``). This tool imports that checkout's own ``networks.py`` / ``generator.py``,
loads its released weights and runs them the way its test scripts do (RGB / 255, the recurrent net,
clamped to [0, 1], ``uint8(255 * x)``, i.e. truncated):

    # de-rain a folder of photos (outputs named like derain's: photo.jpg -> OUT/photo.png)
    python -m experiments.prenet_peer --prenet_dir=../PReNet --model=real --input=../shared/data/real_rain_more \
        --output_dir=runs/prenet/real/real_rain_more
    # score a paired test set with this project's evaluation (standard protocol), or its rain-free score
    python -m experiments.prenet_peer --prenet_dir=../PReNet --model=rain100h --test_dir=runs/heavy_test
    python -m experiments.prenet_peer --prenet_dir=../PReNet --model=real --test_dir=runs/rain100l_half/test --rain_free

--model: ``real`` (``logs/real/PReNet2.pth``, the real-rain model: Generator_lstm, 4 stages), ``rain100h``
(``logs/Rain100H/PReNet6/net_latest.pth``, trained on RainTrainH) or ``rain100l``
(``logs/Rain100L/PReNet6/net_latest.pth``); both PReNet, 6 stages. The output folders go to
``experiments.gallery --extra_dirs`` and ``experiments.streak_check --extra_dirs``, which show them beside
this project's models. PReNet's ``networks.py`` imports torchvision and OpenCV without using them for the
nets; where they are missing (torchvision from PyPI does not import beside every torch) empty stand-ins
take their place.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types

from absl import app, flags

from experiments import cliutil

FLAGS = flags.FLAGS
flags.DEFINE_string("prenet_dir", None, "a checkout of PReNet's official repository (networks.py, logs/)")
flags.DEFINE_enum("model", "real", ["real", "rain100h", "rain100l"], "which released weights")
flags.DEFINE_string("input", None, "a photo or a folder of photos to de-rain (with --output_dir)")
flags.DEFINE_string("output_dir", None, "where the de-rained PNGs go (or the evaluation files, with --test_dir)")
flags.DEFINE_string("test_dir", None, "a paired test set to score (standard protocol, experiments.evaluation)")
flags.DEFINE_bool("rain_free", False, "with --test_dir: the rain-free score (the clean images as input)")
flags.DEFINE_integer("threads", 2, "PyTorch CPU threads", lower_bound=1)
flags.DEFINE_bool("skip_existing", False, "skip photos whose output is already there")
flags.DEFINE_float("max_megapixels", 4.0, "photos larger than this are not processed (reported): PReNet runs whole "
                   "images and takes about 1.3 GB of memory per megapixel (16 GB for a 12-Mpixel photo)")
flags.mark_flags_as_required(["prenet_dir"])

PROG = "experiments.prenet_peer"
WEIGHTS = {  # --model -> (module, class, stages, weights file under the checkout)
    "real": ("generator", "Generator_lstm", 4, os.path.join("logs", "real", "PReNet2.pth")),
    "rain100h": ("networks", "PReNet", 6, os.path.join("logs", "Rain100H", "PReNet6", "net_latest.pth")),
    "rain100l": ("networks", "PReNet", 6, os.path.join("logs", "Rain100L", "PReNet6", "net_latest.pth")),
}


def load_prenet(prenet_dir: str, model: str):
    """PReNet's net with its released weights, in eval mode, on the CPU."""
    try:
        import torch
    except ImportError:
        raise ValueError("PyTorch is not installed: pip install torch (the CPU build is enough)") from None
    module_name, cls_name, stages, weights = WEIGHTS[model]
    path = os.path.join(prenet_dir, weights)
    for name in ("networks.py", "generator.py"):
        if not os.path.isfile(os.path.join(prenet_dir, name)):
            raise ValueError(f"{prenet_dir}: no {name} there (not a checkout of PReNet's repository)")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: missing (PReNet's released weights are in its repository's logs/)")
    for optional in ("torchvision", "cv2"):
        try:
            __import__(optional)
        except Exception:  # noqa: BLE001 - not installed, or a torchvision that does not match torch
            sys.modules[optional] = types.ModuleType(optional)
    sys.path.insert(0, os.path.abspath(prenet_dir))
    try:
        module = __import__(module_name)
    finally:
        sys.path.pop(0)
    net = getattr(module, cls_name)(stages, False)  # (recurrent_iter, use_GPU)
    state = torch.load(path, map_location="cpu")
    net.load_state_dict(state)
    net.eval()
    return net


def predictor(net):
    """float32 [B, H, W, 3] 0..255 -> float32 [B, H, W, 3]: PReNet's test-script pipeline (truncated to whole
    grey levels as its ``np.uint8(255 * out)`` does)."""
    import numpy as np
    import torch

    def predict(images):
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(images, np.float32).transpose(0, 3, 1, 2) / 255.0))
        with torch.no_grad():
            out, _ = net(x)
        out = torch.clamp(out, 0.0, 1.0).numpy().transpose(0, 2, 3, 1)
        return np.floor(out * 255.0).astype(np.float32)

    return predict


def main(argv):
    if len(argv) > 1:
        cliutil.usage_error(PROG, f"unexpected arguments: {' '.join(argv[1:])}")
    if (FLAGS.input is None) == (FLAGS.test_dir is None):
        cliutil.usage_error(PROG, "give one of --input (photos to de-rain) and --test_dir (a paired set to score)")
    if FLAGS.input is not None and not FLAGS.output_dir:
        cliutil.usage_error(PROG, "--input needs --output_dir")
    for flag in ("prenet_dir", "input", "test_dir"):
        value = getattr(FLAGS, flag)
        if value is not None and not os.path.exists(value):
            cliutil.usage_error(PROG, f"--{flag}={value}: no such file or folder")
    import torch

    torch.set_num_threads(FLAGS.threads)
    try:
        net = load_prenet(FLAGS.prenet_dir, FLAGS.model)
    except ValueError as e:
        cliutil.usage_error(PROG, str(e))
    predict = predictor(net)
    label = f"PReNet ({FLAGS.model})"
    if FLAGS.test_dir is not None:
        from experiments import evaluation

        try:
            summary = evaluation.evaluate_model(predict, FLAGS.test_dir, protocols="standard", output_dir=FLAGS.output_dir,
                                                name=label, save_images=0, multiple=1, rain_free=FLAGS.rain_free)
        except ValueError as e:  # DataError, ImageError: they name the folder or the file
            raise SystemExit(f"error: {e}") from None
        for line in evaluation.format_summary(summary):
            print(line)
        print(json.dumps(summary), flush=True)
        return
    from menet_tf.imageio import list_image_inputs, read_image, write_image
    from menet_tf.derainer import to_uint8

    paths, others = list_image_inputs(FLAGS.input)
    for p, reason in others:
        print(f"not processed: {p}: {reason}")
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    failed = 0
    for k, path in enumerate(paths, 1):
        out = os.path.join(FLAGS.output_dir, os.path.splitext(os.path.basename(path))[0] + ".png")
        if FLAGS.skip_existing and os.path.isfile(out):
            continue
        t0 = time.perf_counter()
        try:
            rainy = read_image(path, exif_transpose=True)
            if rainy.shape[0] * rainy.shape[1] > FLAGS.max_megapixels * 1e6:
                print(f"[{k}/{len(paths)}] not processed: {path}: {rainy.shape[1]}x{rainy.shape[0]} is more than "
                      f"--max_megapixels={FLAGS.max_megapixels:g}", flush=True)
                continue
            write_image(out, to_uint8(predict(rainy[None].astype("float32"))[0]))
        except Exception as e:  # noqa: BLE001 - report by name, go on
            failed += 1
            print(f"[{k}/{len(paths)}] FAILED {path}: {e}", flush=True)
            continue
        print(f"[{k}/{len(paths)}] {os.path.basename(path)} -> {out} ({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"done: {len(paths) - failed} of {len(paths)} photos de-rained by {label} into {FLAGS.output_dir}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    app.run(main)
