# The CLIs print their own lines, not TensorFlow's start-up noise (experiments/tf_noise.py).
from experiments import tf_noise as _tf_noise

_tf_noise.install()

# ...nor the library's INFO log records (data layouts found, checkpoints written): `--verbosity=0` shows them
from absl import logging as _logging

_logging.set_verbosity(_logging.WARNING)
