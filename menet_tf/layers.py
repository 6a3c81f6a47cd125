"""MENET building blocks as registered, serialisable Keras 3 layers (spec sections 1 and 2).

Every convolution is 3x3 (1x1 inside channel attention), stride 1, SAME, *no bias*, initialised from
a truncated normal with stddev sqrt(1 / fan_in) truncated at 2 stddev (no variance correction), as in
the released TF 1.8 code. "BN" is batch normalisation with Keras' defaults (momentum 0.99, epsilon 1e-3,
centre and scale), which are the released graph's settings, computed by :class:`FusedBatchNorm` on TF's
fused kernel (as TF1's ``tf.layers.batch_normalization`` did) instead of Keras 3's unfused ops.

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


def stored_value(variable) -> tf.Tensor:
    """A Keras variable's stored (float32) value, also inside a layer's call under a mixed policy, where
    Keras reads autocast variables in the 16-bit compute dtype. (``AutocastScope`` is not in Keras'
    public API; ``None`` turns autocasting off.)"""
    from keras.src.backend import AutocastScope

    with AutocastScope(None):
        return tf.convert_to_tensor(variable.value)


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
class FusedBatchNorm(keras.layers.Layer):
    """Batch normalisation over the last axis on TF's fused kernel (``FusedBatchNormV3``).

    The same function, variables and variable order as ``keras.layers.BatchNormalization(momentum,
    epsilon)`` (axis -1, centre and scale): gamma, beta, moving_mean, moving_variance, all float32 and
    never autocast, so weights saved by one load into the other. Keras 3 builds its batch norm from
    separate reductions and element-wise ops (with casts to float32 under a 16-bit policy); the fused
    kernel computes the statistics, normalisation and, backwards, the three gradients in one pass each,
    reading a bfloat16 or float16 input directly with float32 statistics.

    Training (``training=True`` and the layer trainable): normalise with the batch's mean and biased
    variance over every axis but the last, then
    ``moving = momentum * moving + (1 - momentum) * batch`` with the *biased* batch variance, as Keras 3
    does (the kernel reports the Bessel-corrected variance n / (n - 1) times larger, which is undone
    here; TF1 and Keras 2 kept the corrected one). Inference: ``FusedBatchNormV3`` with the moving
    statistics and ``is_training=False``. Compiles under XLA.

    In inference, ``y = x * s + offset`` with :meth:`folded_scale_and_offset`; :class:`ConvBN` folds that
    into its convolution's kernel and a bias itself, because TF's graph optimiser folds a following
    FusedBatchNorm into a convolution only in float32 (not under mixed_bfloat16).
    """

    center = True  # beta and gamma always (Keras' defaults, the spec's BN)
    scale = True
    axis = -1

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.supports_masking = False

    def build(self, input_shape):
        shape = (int(input_shape[-1]),)
        add = lambda name, init, trainable: self.add_weight(  # noqa: E731
            shape=shape, name=name, initializer=init, trainable=trainable, autocast=False)
        self.gamma = add("gamma", "ones", True)
        self.beta = add("beta", "zeros", True)
        self.moving_mean = add("moving_mean", "zeros", False)
        self.moving_variance = add("moving_variance", "ones", False)
        self.built = True

    def call(self, x, training=None):
        x = tf.convert_to_tensor(x)
        if len(x.shape) != 4:  # FusedBatchNormV3 is 4-D only; fold the middle axes into one
            shape = tf.shape(x)
            y = self.call(tf.reshape(x, [shape[0], -1, 1, shape[-1]]), training=training)
            return tf.reshape(y, shape)
        gamma = tf.convert_to_tensor(self.gamma)
        beta = tf.convert_to_tensor(self.beta)
        if training and self.trainable:
            y, mean, corrected, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.zeros([0], tf.float32), variance=tf.zeros([0], tf.float32),
                epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
            n = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
            variance = corrected * ((n - 1.0) / tf.maximum(n, 1.0))
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
            return y
        y, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=tf.convert_to_tensor(self.moving_mean),
            variance=tf.convert_to_tensor(self.moving_variance), epsilon=self.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=False)
        return y

    def folded_scale_and_offset(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Inference as an affine map, float32: s = gamma / sqrt(moving_variance + epsilon),
        offset = beta - moving_mean * s."""
        gamma, beta = stored_value(self.gamma), stored_value(self.beta)
        mean, variance = stored_value(self.moving_mean), stored_value(self.moving_variance)
        scale = gamma * tf.math.rsqrt(variance + self.epsilon)
        return scale, beta - mean * scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvBN(keras.layers.Layer):
    """Bias-free convolution followed by batch normalisation, with an optional ReLU after the BN.

    Training: conv, then :class:`FusedBatchNorm` on the batch statistics. Inference (``training`` false,
    or the BN frozen): the BN is folded into the convolution, ``conv(x, W * s) + offset`` with
    (s, offset) = ``bn.folded_scale_and_offset()`` computed in float32 from the stored variables, so
    TF runs one fused convolution + bias (+ ReLU) kernel per layer in every precision. The same function
    as conv then BN up to float rounding; the variables are unchanged."""

    def __init__(self, filters: int, in_channels: int, kernel_size: int = 3, relu: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.in_channels = int(in_channels)
        self.kernel_size = int(kernel_size)
        self.relu = bool(relu)
        self.conv = conv(self.filters, self.in_channels, self.kernel_size, name="conv")
        self.bn = FusedBatchNorm(momentum=0.99, epsilon=1e-3, name="bn")

    def build(self, input_shape):
        _build(self.conv, input_shape)
        _build(self.bn, self.conv.compute_output_shape(input_shape))
        self.built = True

    def call(self, x, training=None):
        if training and self.bn.trainable:
            y = self.bn(self.conv(x), training=True)
        else:
            kernel, bias = self.folded_kernel_and_bias()
            y = tf.nn.bias_add(self.conv.convolution_op(x, tf.cast(kernel, x.dtype)), tf.cast(bias, x.dtype))
        return tf.nn.relu(y) if self.relu else y

    def folded_kernel_and_bias(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The inference-mode convolution with the BN folded in, float32: (W * s, offset)."""
        scale, offset = self.bn.folded_scale_and_offset()
        return stored_value(self.conv.kernel) * scale, offset

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


def clip_with_pass_through_gradient(x, lo: float, hi: float):
    """clip(x, lo, hi) whose gradient is the upstream gradient where lo <= x <= hi and 0 elsewhere, as
    ``tf.clip_by_value``'s, but computed as one select on (clip(x) == x). TF's own gradient goes through
    Minimum and Maximum and also differentiates the two scalar bounds: four full-resolution selects and
    four comparisons per backward pass (GB runs three: 10 % of its bfloat16 step)."""

    @tf.custom_gradient
    def clip(x):
        y = tf.clip_by_value(x, lo, hi)

        def grad(dy):
            return tf.where(tf.equal(y, x), dy, tf.zeros_like(dy))

        return y, grad

    return clip(x)


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
        return clip_with_pass_through_gradient(image + residual, 0.0, self.max_value)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value}
