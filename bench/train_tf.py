"""TensorFlow peer of `cargo bench --bench train`: the same PINN trained the way PtychoPINN
trains it (Keras layers, Adam, graph-mode train step), so the two can be timed in one run.

The network and physics follow ../shared/reference/ptychography.md section 7 with the
simplifications studymake's `pinn` recipe makes (section 7.6): `probe_big = False` (each decoder
emits the central N/2 x N/2), and studymake's one network per pattern (a group's C patterns fold
into the batch and run through the same one-channel network, as studymake's `Network::forward`
does; PtychoPINN reads them as C channels of one network). Everything else is PtychoPINN's
arithmetic: Keras 'same' 3x3 convolutions (oneDNN), 2x2 max pooling, nearest upsampling, the
patches zero-padded onto an M x M canvas and moved by their offsets with
ImageProjectiveTransformV3 (bilinear, zero fill; what tfa's `translate` runs), normalised by the
coverage + 0.001, re-extracted, multiplied by the probe, `|fftshift(fft2d)| / N`, times
exp(log_scale), and the Poisson NLL `mean(lambda - y ln(lambda + 1e-7))`.

The training step is a graph-mode `tf.function`, as Keras' `fit` runs it. Not XLA: with
`jit_compile=True` TensorFlow 2.18 refuses the step (ImageProjectiveTransformV3 has no XLA
kernel), so Keras 3's automatic XLA would fall back to graph mode for PtychoPINN's model too.

Usage: python3 bench/train_tf.py GRIDSIZE N_FILTERS_SCALE BATCHES
Prints one line in the Rust bench's format ("... X groups/s ...; peak RSS Y MiB").
"""

import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

N = 64
B = 16


def conv(filters, name):
    return tf.keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)


def build_net(c, f):
    """Encoder [32f, 64f, 128f] with pooling, two decoders [64f, 32f] with upsampling, heads."""
    inp = tf.keras.Input((N, N, c))
    h = inp
    for i, filters in enumerate([32 * f, 64 * f, 128 * f]):
        h = conv(filters, f"enc{i}a")(h)
        h = conv(filters, f"enc{i}b")(h)
        h = tf.keras.layers.MaxPool2D(2)(h)
    outs = []
    for head in ["amp", "phase"]:
        d = h
        for i, filters in enumerate([64 * f, 32 * f]):
            d = conv(filters, f"{head}{i}a")(d)
            d = conv(filters, f"{head}{i}b")(d)
            d = tf.keras.layers.UpSampling2D(2)(d)
        d = tf.keras.layers.Conv2D(c, 3, padding="same", name=f"{head}_head")(d)
        outs.append(d)
    return tf.keras.Model(inp, outs)


def translate(images, offsets):
    """Move (K, H, W, 1) images by offsets (K, 2) = (dx, dy), bilinear, zero fill."""
    k = tf.shape(images)[0]
    ones = tf.ones((k, 1))
    zeros = tf.zeros((k, 1))
    dx = offsets[:, 0:1]
    dy = offsets[:, 1:2]
    transforms = tf.concat([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def main():
    gridsize, f, batches = (int(a) for a in sys.argv[1:4])
    c = gridsize * gridsize
    m = N + (gridsize - 1) * 4 + 10
    s = np.sqrt(1e9) / (N / 2)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.uniform(0.0, 2.0, (B, N, N, c)), tf.float32)
    shifts = np.zeros((B, c, 2)) if gridsize == 1 else rng.uniform(-3, 3, (B, c, 2))
    offsets = tf.constant(shifts.reshape(B * c, 2), tf.float32)
    yy, xx = np.mgrid[0:N, 0:N]
    r = np.hypot(yy - 31.5, xx - 31.5)
    probe = 0.5 * (1.0 - np.tanh(r - 11.0))
    probe = probe / (4.0 * np.mean(probe * (r <= N / 4)))
    probe = tf.constant(probe[None, :, :], tf.complex64)
    mask = np.zeros((1, N, N, 1), np.float32)
    mask[:, N // 4 : 3 * N // 4, N // 4 : 3 * N // 4, :] = 1.0

    net = build_net(1, f)
    log_scale = tf.Variable(np.log(s), dtype=tf.float32, name="log_scale")
    opt = tf.keras.optimizers.Adam(1e-3, epsilon=1e-7)
    variables = net.trainable_variables + [log_scale]
    pad = (m - N) // 2

    def to_canvas(patches):
        # (B, N/2, N/2, C) -> (B C, M, M, 1), each patch zero-padded about the canvas centre
        p = tf.reshape(tf.transpose(patches, (0, 3, 1, 2)), (B * c, N // 2, N // 2, 1))
        q = pad + N // 4
        return tf.pad(p, [[0, 0], [q, m - N // 2 - q], [q, m - N // 2 - q], [0, 0]])

    norm_mask = tf.pad(tf.tile(mask, (B * c, 1, 1, 1)), [[0, 0], [pad, pad], [pad, pad], [0, 0]])

    def per_pattern(t):
        # (B, N, N, C) <-> (B C, N, N, 1): one network per pattern
        return tf.reshape(tf.transpose(t, (0, 3, 1, 2)), (-1, t.shape[1], t.shape[2], 1))

    def per_group(t):
        h, w = t.shape[1], t.shape[2]
        return tf.transpose(tf.reshape(t, (B, c, h, w)), (0, 2, 3, 1))

    def loss_fn():
        amp, phase = net(per_pattern(x * s / tf.exp(log_scale)), training=True)
        amp, phase = per_group(amp), per_group(phase)
        amp = tf.sigmoid(amp)
        phase = np.pi * tf.tanh(phase)
        parts = []
        for part in (amp * tf.cos(phase), amp * tf.sin(phase)):
            moved = translate(to_canvas(part), -offsets)
            parts.append(tf.reduce_sum(tf.reshape(moved, (B, c, m, m)), axis=1))
        cover = translate(norm_mask, -offsets)
        cover = tf.reduce_sum(tf.reshape(cover, (B, c, m, m)), axis=1) + 0.001
        canvas = tf.stack([p / cover for p in parts], axis=-1)  # (B, M, M, 2)
        canvas = tf.reshape(tf.tile(canvas[:, None], (1, c, 1, 1, 1)), (B * c, m, m, 2))
        back = translate(canvas, offsets)[:, pad : pad + N, pad : pad + N, :]
        obj = tf.complex(back[..., 0], back[..., 1])
        far = tf.signal.fftshift(tf.signal.fft2d(probe * obj), axes=(1, 2))
        a = tf.abs(far) / N * tf.exp(log_scale)
        lam = tf.square(tf.reshape(a, (B, c, N, N)))
        y = tf.square(tf.transpose(x, (0, 3, 1, 2)) * s)
        return tf.reduce_mean(lam - y * tf.math.log(lam + 1e-7))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn()
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables))
        return loss

    for _ in range(2):
        step().numpy()
    t = time.perf_counter()
    cpu = time.process_time()
    for _ in range(batches):
        loss = step()
    loss.numpy()
    wall = time.perf_counter() - t
    cpu = time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"tensorflow {tf.__version__} gridsize {gridsize} n_filters_scale {f} batch {B} N {N} "
        f"threads {tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()}: "
        f"{batches * B / wall:.1f} groups/s; CPU time {cpu / batches:.2f} s per batch; "
        f"peak RSS {rss:.0f} MiB"
    )


if __name__ == "__main__":
    main()
