# The CLIs print their own lines: TensorFlow's start-up noise is filtered (experiments/tf_noise.py).
from experiments import tf_noise as _tf_noise

_tf_noise.install()
