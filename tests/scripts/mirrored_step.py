"""One SGD(lr=1) step of MultiTaskTrainer under MirroredStrategy on 2 logical CPUs, against the mean of
the two replicas' gradients computed independently on one device. Prints the max abs difference."""

import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from menet_tf import losses as L  # noqa: E402
from menet_tf.model import build_derain_net  # noqa: E402
from menet_tf.trainer import MultiTaskTrainer  # noqa: E402

weighting = sys.argv[1]
rng = np.random.default_rng(0)
clean = rng.uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
rainy = np.clip(clean + (rng.random((4, 8, 8, 1)) > 0.9) * 80, 0, 255).astype(np.float32)

keras.utils.set_random_seed(0)
reference = build_derain_net(1, False)
init = [w.numpy() for w in reference.weights]
fns = [L.reconstruction_loss, L.edge_loss]
grads = []
for half in (slice(0, 2), slice(2, 4)):  # what each replica sees
    reference.set_weights(init)
    kernel = reference.get_layer("layer5").kernel
    with tf.GradientTape(persistent=True) as tape:
        out = reference(rainy[half], training=True)
        losses = [fn(clean[half], out) for fn in fns]
        with tape.stop_recording():
            if weighting == "gb":
                basis = np.array([np.linalg.norm(tape.gradient(l, kernel).numpy()) for l in losses], np.float32)
            else:
                basis = np.array([float(l) for l in losses], np.float32)
        w = np.float32(1) - basis / np.float32(basis.sum(dtype=np.float32))
        total = sum(float(wi) * li for wi, li in zip(w, losses))
    grads.append([g.numpy() for g in tape.gradient(total, reference.trainable_variables)])
expected = [init_v - 0.5 * (g0 + g1) for init_v, g0, g1 in
            zip([v.numpy() for v in reference.trainable_variables], *grads)]
# (trainable values before the step are init, since set_weights restored them)

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    net = build_derain_net(1, False)
    net.set_weights(init)
    trainer = MultiTaskTrainer(net, ("p", "e"), weighting)
    trainer.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
dataset = tf.data.Dataset.from_tensor_slices((rainy, clean)).batch(4)
trainer.fit(dataset, epochs=1, verbose=0, shuffle=False)
print("replicas", strategy.num_replicas_in_sync)
diff = max(float(np.abs(a.numpy() - b).max() / (np.abs(b).max() + 1e-6))
           for a, b in zip(net.trainable_variables, expected))
print("max_rel_diff", diff)
