"""MENET building blocks as registered, serialisable Keras 3 layers (spec sections 1 and 2).

Every convolution is 3x3 (1x1 inside channel attention), stride 1, SAME, *no bias*, initialised from
a truncated normal with stddev sqrt(1 / fan_in) truncated at 2 stddev (no variance correction), as in
the released TF 1.8 code. "BN" is Keras' BatchNormalization with its defaults (momentum 0.99,
epsilon 1e-3, centre and scale), which are the released graph's settings.

All layers are registered under the package "menet_tf", so a ``.keras`` file loads with
``safe_mode=True`` and without ``custom_objects``; none uses ``Lambda``; all compile under XLA.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

PACKAGE = "menet_tf"


def conv_initializer(fan_in: int) -> keras.initializers.Initializer:
    """Truncated normal with stddev sqrt(1/fan_in): empirical stddev is 0.8796 * sqrt(1/fan_in)."""
    return keras.initializers.TruncatedNormal(mean=0.0, stddev=math.sqrt(1.0 / fan_in))


def _build(layer: keras.layers.Layer, input_shape) -> None:
    """Build a sub-layer once (it may already be built by a direct call)."""
    if not layer.built:
        layer.build(input_shape)


def conv(filters: int, in_channels: int, kernel_size: int = 3, name: str | None = None) -> keras.layers.Conv2D:
    """A bias-free SAME convolution with the released initialiser (fan_in = k * k * in_channels)."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        use_bias=False,
        kernel_initializer=conv_initializer(kernel_size * kernel_size * in_channels),
        name=name,
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpaceToDepth(keras.layers.Layer):
    """Desubpixel: [B, H, W, C] -> [B, H/r, W/r, C*r*r] (``tf.nn.space_to_depth``)."""

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, x):
        return tf.nn.space_to_depth(x, self.block_size)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.block_size
        return (b, None if h is None else h // r, None if w is None else w // r, c * r * r)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class DepthToSpace(keras.layers.Layer):
    """Subpixel: [B, H, W, C*r*r] -> [B, H*r, W*r, C] (``tf.nn.depth_to_space``); inverse of SpaceToDepth."""

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, x):
        return tf.nn.depth_to_space(x, self.block_size)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.block_size
        return (b, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvBN(keras.layers.Layer):
    """Bias-free convolution followed by BatchNormalization, with an optional ReLU after the BN."""

    def __init__(self, filters: int, in_channels: int, kernel_size: int = 3, relu: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.in_channels = int(in_channels)
        self.kernel_size = int(kernel_size)
        self.relu = bool(relu)
        self.conv = conv(self.filters, self.in_channels, self.kernel_size, name="conv")
        self.bn = keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name="bn")

    def build(self, input_shape):
        _build(self.conv, input_shape)
        _build(self.bn, self.conv.compute_output_shape(input_shape))
        self.built = True

    def call(self, x, training=None):
        y = self.bn(self.conv(x), training=training)
        return tf.nn.relu(y) if self.relu else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "in_channels": self.in_channels,
            "kernel_size": self.kernel_size,
            "relu": self.relu,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidualBlock(keras.layers.Layer):
    """conv, BN, ReLU, conv, BN, + input, ReLU (the ReLU after the add is dropped for the last block)."""

    def __init__(self, filters: int = 64, final_relu: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.final_relu = bool(final_relu)
        self.conv_bn1 = ConvBN(self.filters, self.filters, relu=True, name="conv_bn1")
        self.conv_bn2 = ConvBN(self.filters, self.filters, relu=False, name="conv_bn2")

    def build(self, input_shape):
        _build(self.conv_bn1, input_shape)
        _build(self.conv_bn2, input_shape)
        self.built = True

    def call(self, x, training=None):
        y = self.conv_bn2(self.conv_bn1(x, training=training), training=training) + x
        return tf.nn.relu(y) if self.final_relu else y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "final_relu": self.final_relu}


CA_VARIANTS = ("released", "scale_only")


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelAttention(keras.layers.Layer):
    """Channel attention, released form (spec section 2).

    x [B, h, w, 64] -> space_to_depth 2 -> 1x1 conv 64, BN, ReLU -> 3x3 conv, BN, ReLU
    -> space_to_depth 2 -> 1x1 conv 64, BN, ReLU -> 3x3 conv, BN, ReLU -> 3x3 conv, BN
    -> global mean over h, w -> sigmoid = a [B, 1, 1, 64].
    variant "released" returns x + x * a; "scale_only" (an earlier release) returns x * a.
    h and w must be multiples of 4.
    """

    def __init__(self, filters: int = 64, variant: str = "released", **kwargs):
        super().__init__(**kwargs)
        if variant not in CA_VARIANTS:
            raise ValueError(f"ChannelAttention variant must be one of {CA_VARIANTS}, got {variant!r}")
        self.filters = int(filters)
        self.variant = variant
        f = self.filters
        self.s2d = SpaceToDepth(2, name="s2d")
        self.reduce1 = ConvBN(f, 4 * f, kernel_size=1, relu=True, name="reduce1")
        self.conv1 = ConvBN(f, f, relu=True, name="conv1")
        self.reduce2 = ConvBN(f, 4 * f, kernel_size=1, relu=True, name="reduce2")
        self.conv2 = ConvBN(f, f, relu=True, name="conv2")
        self.conv3 = ConvBN(f, f, relu=False, name="conv3")

    def build(self, input_shape):
        b, h, w, c = input_shape
        half = (b, None, None, 4 * c)
        _build(self.reduce1, half)
        _build(self.conv1, (b, None, None, self.filters))
        _build(self.reduce2, (b, None, None, 4 * self.filters))
        _build(self.conv2, (b, None, None, self.filters))
        _build(self.conv3, (b, None, None, self.filters))
        self.built = True

    def pre_mean(self, x, training=None):
        """The map that ``attention`` averages: conv3's output, [B, h/4, w/4, filters] (1/16 of the
        image's resolution). Calls only sub-layers, so it also builds functional graphs (KerasTensors).

        Exact tiling (``menet_tf.inference.derain_tiled``) sums this map over tiles: each of its cells
        depends on the image only within ``inference.ca_receptive_radius()`` px of its 16 x 16 block."""
        y = self.reduce1(self.s2d(x), training=training)
        y = self.conv1(y, training=training)
        y = self.reduce2(self.s2d(y), training=training)
        y = self.conv2(y, training=training)
        return self.conv3(y, training=training)

    def attention(self, x, training=None):
        """The per-channel weights a = sigmoid(mean_hw(pre_mean(x))), shape [B, 1, 1, filters]."""
        y = self.pre_mean(x, training=training)
        return tf.sigmoid(tf.reduce_mean(y, axis=[1, 2], keepdims=True))

    def apply(self, x, a):
        """The block's output for given weights a [B, 1, 1, filters]: x + x * a ("released") or x * a
        ("scale_only"); ``call`` is ``apply(x, attention(x))``. Uses keras.ops, so it works on tensors
        and on KerasTensors (a functional graph with ``a`` as an input)."""
        a = keras.ops.cast(a, x.dtype)
        return keras.ops.multiply(x, a) if self.variant == "scale_only" else keras.ops.add(x, keras.ops.multiply(x, a))

    def call(self, x, training=None):
        return self.apply(x, self.attention(x, training=training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "variant": self.variant}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GlobalResidual(keras.layers.Layer):
    """b = clip(O + residual, 0, 255), computed in float32 whatever the mixed-precision policy."""

    def __init__(self, max_value: float = 255.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.max_value = float(max_value)

    def call(self, inputs):
        image, residual = inputs
        image = tf.cast(image, tf.float32)
        residual = tf.cast(residual, tf.float32)
        return tf.clip_by_value(image + residual, 0.0, self.max_value)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value}
