"""The camera policy: a small CNN from the frame and the arm's state to an action.

`build` makes the Keras model that learns and is exported; `StudentActor` runs the
same network in numpy inside an env process, one frame at a time, as
`numpy_actor.NumpyActor` does for the state policy (no TensorFlow in env processes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# (filters, kernel, stride) per convolution, then the dense layers' widths: about
# 0.3M weights, which a core evaluates in under a millisecond per frame in numpy.
CONVOLUTIONS = ((16, 5, 2), (32, 3, 2), (32, 3, 2))
DENSE = (256, 256)


def min_size() -> int:
    """The smallest frame side the convolutions take (each leaves at least one pixel)."""
    side = 1
    for _, kernel, stride in reversed(CONVOLUTIONS):
        side = (side - 1) * stride + kernel
    return side


def build(size: int, arm_size: int, action_size: int, learning_rate: float):
    """The Keras student: inputs "image" (uint8, size x size x 3) and "arm" (float32);
    output the action in [-1, 1]. The arm's normalization is part of the model
    (`Normalization`, adapted to the data before training), so the exported model
    takes raw inputs."""
    import tensorflow as tf

    image = tf.keras.Input((size, size, 3), dtype=tf.uint8, name="image")
    arm = tf.keras.Input((arm_size,), dtype=tf.float32, name="arm")
    x = tf.keras.layers.Rescaling(1 / 255)(tf.cast(image, tf.float32))
    for filters, kernel, stride in CONVOLUTIONS:
        x = tf.keras.layers.Conv2D(filters, kernel, stride, activation="relu")(x)
    normalized = tf.keras.layers.Normalization(name="arm_normalization")(arm)
    h = tf.keras.layers.Concatenate()([tf.keras.layers.Flatten()(x), normalized])
    for width in DENSE:
        h = tf.keras.layers.Dense(width, activation="relu")(h)
    action = tf.keras.layers.Dense(action_size, activation="tanh", name="action")(h)
    model = tf.keras.Model({"image": image, "arm": arm}, action)
    model.compile(tf.keras.optimizers.Adam(learning_rate), "mse")
    return model


def params(model) -> dict[str, Any]:
    """Numpy copies of the model's weights, for `StudentActor`."""
    import tensorflow as tf

    layers = model.layers
    norm = next(layer for layer in layers if isinstance(layer, tf.keras.layers.Normalization))
    return {
        "arm_mean": norm.mean.numpy().reshape(-1),
        "arm_std": np.sqrt(np.maximum(norm.variance.numpy().reshape(-1), 1e-12)),
        "convs": [
            (*layer.get_weights(), layer.strides[0])
            for layer in layers
            if isinstance(layer, tf.keras.layers.Conv2D)
        ],
        "dense": [
            layer.get_weights() for layer in layers if isinstance(layer, tf.keras.layers.Dense)
        ],
    }


def _conv_relu(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """Keras' Conv2D (valid padding, channels last) and relu, as one matrix product."""
    height, width, channels, filters = kernel.shape
    windows = np.lib.stride_tricks.sliding_window_view(x, (height, width), axis=(0, 1))
    windows = windows[::stride, ::stride]  # (rows, cols, channels, height, width)
    rows, cols = windows.shape[:2]
    patches = windows.transpose(0, 1, 3, 4, 2).reshape(rows * cols, -1)
    out = patches @ kernel.reshape(-1, filters) + bias
    return np.maximum(out, 0.0).reshape(rows, cols, filters)


class StudentActor:
    """The student's action for one observation, in numpy."""

    def __init__(self, weights: dict[str, Any]):
        self._mean = np.asarray(weights["arm_mean"], np.float32)
        self._std = np.asarray(weights["arm_std"], np.float32)
        self._convs = [
            (np.asarray(k, np.float32), np.asarray(b, np.float32), int(s))
            for k, b, s in weights["convs"]
        ]
        self._dense = [
            (np.asarray(k, np.float32), np.asarray(b, np.float32)) for k, b in weights["dense"]
        ]

    def action(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        x = np.asarray(observation["image"], np.float32) * np.float32(1 / 255)
        for kernel, bias, stride in self._convs:
            x = _conv_relu(x, kernel, bias, stride)
        arm = (np.asarray(observation["arm"], np.float32) - self._mean) / self._std
        h = np.concatenate([x.reshape(-1), arm])
        for kernel, bias in self._dense[:-1]:
            h = np.maximum(h @ kernel + bias, 0.0)
        kernel, bias = self._dense[-1]
        return np.tanh(h @ kernel + bias)
