"""Train MENET: ``python -m experiments.train --flagfile=experiments/table1/lp_le_lb.flags
--data_dir=DIR --model_dir=DIR``. Re-running the same command resumes where it stopped.

Every flag (paper defaults) is defined in experiments/config.py; ``--helpfull`` lists them.
"""

from absl import app, flags

from experiments import config as config_lib
from experiments.cliutil import usage_error

config_lib.define_train_flags(flags.FLAGS)


def main(argv):
    if len(argv) > 1:
        usage_error("experiments.train", f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = config_lib.config_from_flags(flags.FLAGS)
        from experiments.training import resolve_runtime

        resolve_runtime(config).validate()
    except ValueError as e:
        usage_error("experiments.train", str(e))
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # TF logs every checkpoint write at INFO
    from experiments.training import train

    try:
        train(config)
    except ValueError as e:  # DataError, ImageError, a model_dir of another run: the message names the file
        raise SystemExit(f"error: {e}") from None


def console():
    """The ``menet-train`` console script (setup.cfg entry point): the same as ``python -m experiments.train``."""
    app.run(main)


if __name__ == "__main__":
    console()
