r"""Research tool: a model directory whose weights lie between a model and its fine-tuned descendant.

    python -m experiments.interpolate --start=menet-lb-squall-v4 --end=runs/menet_lb_deep_ud --alpha=0.5 \
        --out=runs/menet_lb_deep_half

Every weight (and BN moving statistic) of the new net is ``(1 - alpha) * start + alpha * end``
(``menet_tf.model.interpolate``; WiSE-FT's weight-space ensemble, Wortsman et al. 2022): one net, one pass,
often better on what ``start`` was good at than ``end`` while keeping much of what fine-tuning added. ``end``
must have been fine-tuned from ``start`` (``--init_from``), possibly deepened from it. --out gets ``end``'s
config.json (so ``evaluate``, ``derain``, ``ship_model`` read it as ``end``'s run) and interpolation.json,
which records the two models and alpha.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from experiments import cliutil

FLAGS = flags.FLAGS
flags.DEFINE_string("start", None, "the model fine-tuning started from (shipped name or model directory)")
flags.DEFINE_string("end", None, "its fine-tuned descendant (shipped name or model directory)")
flags.DEFINE_float("alpha", None, "0 gives start, 1 gives end", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_string("out", None, "the model directory to write (must not exist)")
flags.mark_flags_as_required(["start", "end", "alpha", "out"])

PROG = "experiments.interpolate"


def main(argv):
    if len(argv) > 1:
        cliutil.usage_error(PROG, f"unexpected arguments: {' '.join(argv[1:])}")
    if os.path.exists(FLAGS.out):
        cliutil.usage_error(PROG, f"--out={FLAGS.out} exists; give a new folder")
    start, end = cliutil.resolve_models(PROG, [FLAGS.start, FLAGS.end])
    from menet_tf import atomic
    from menet_tf.model import CONFIG_FILE, interpolate, load_net, read_config, save_weights

    try:
        nets = load_net(start), load_net(end)  # errors name the missing or damaged file
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    try:
        net = interpolate(*nets, FLAGS.alpha)
    except ValueError as e:
        cliutil.usage_error(PROG, f"{FLAGS.start} and {FLAGS.end}: {e}")
    config = read_config(end)
    with atomic.atomic_path(FLAGS.out) as tmp:  # the folder appears whole or not at all
        os.makedirs(tmp)
        with open(os.path.join(tmp, "interpolation.json"), "w") as f:
            json.dump({"start": FLAGS.start, "end": FLAGS.end, "alpha": FLAGS.alpha}, f, indent=2)
        with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
        save_weights(net, tmp)
    print(f"wrote {FLAGS.out}: {1 - FLAGS.alpha:g} x {FLAGS.start} + {FLAGS.alpha:g} x {FLAGS.end} "
          f"({config['num_res_blocks']} residual blocks)")


def console():
    app.run(main)


if __name__ == "__main__":
    console()
