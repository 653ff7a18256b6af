"""Batch normalisation that trains through TensorFlow's fused kernel.

Keras 3's ``BatchNormalization`` computes the batch moments and the normalisation as separate
element-wise operations (in float32, with casts around them under ``mixed_bfloat16``), each a full
pass over the activations, forward and backward. Keras 2 used TensorFlow's fused kernel instead.
On this project's 2-core CPU the S0 five-block batch-norm CNN (``cnn_bn5``) at 96 px spent more
time in those passes than in its convolutions: with the fused kernel a training epoch takes half
the CPU time (measured: 30 → 15 CPU-s per 2,048 images, bf16).

:class:`FusedBatchNormalization` is a drop-in subclass: same weights, same config, same inference
path; only training of 4-D channels-last inputs on the TensorFlow backend takes the fused kernel
(anything else falls back to the Keras computation). Like Keras 2, the moving variance is updated
with the biased batch variance, as the unfused layer does.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="medclf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training step runs ``tf.nn.fused_batch_norm``."""

    def _fusable(self, inputs, training, mask) -> bool:
        rank = len(inputs.shape)
        return (bool(training) and self.trainable and mask is None and rank == 4 and self.axis in (-1, rank - 1)
                and self.center and self.scale and not self.renorm and keras.backend.backend() == "tensorflow")

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        # Keras has already cast the inputs to the compute dtype (float32, bfloat16 or float16: all fusable).
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32), epsilon=self.epsilon,
            data_format="NHWC", is_training=True)
        # The kernel returns the unbiased (n / (n - 1)) variance; the Keras layer averages the biased one.
        n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
        variance = variance * (n - 1.0) / n
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(y, self.compute_dtype)
