"""Adam whose update runs TensorFlow's fused kernel.

Keras 3's ``Adam.update_step`` is written in backend ops: the two moment updates, the square root,
the division and the three assignments are separate element-wise passes over every weight. For
the studies' CNNs that flatten a large feature map into a dense layer (``cnn_deeper`` at 128 px:
32,768 × 128 weights) those passes are a fifth of a training step on this 2-core CPU — as much as
a convolution's backward pass. Keras 2 used TensorFlow's one-pass ``ApplyAdam`` kernel instead:
measured on that 4.2M-weight matrix, 33 → 11 CPU-ms per update.

:class:`FusedAdam` is a drop-in subclass: same slots, same config, same arithmetic (the kernel
computes exactly Keras' ε-hat form: ``m += (g − m)(1 − β₁)``, ``v += (g² − v)(1 − β₂)``,
``w −= lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε)``). AMSGrad, sparse gradients and other backends take
the Keras path.
"""

from __future__ import annotations

import keras
from keras import ops


def _handle(variable):
    """The TensorFlow resource handle of a Keras (or plain ``tf``) variable."""
    return variable.value.handle if isinstance(variable, keras.Variable) else variable.handle


@keras.saving.register_keras_serializable(package="medclf")
class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose dense update runs ``tf.raw_ops.ResourceApplyAdam``."""

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        if self.amsgrad or keras.backend.backend() != "tensorflow" or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]), v=_handle(self._velocities[index]),
            beta1_power=ops.power(beta_1, step), beta2_power=ops.power(beta_2, step),
            lr=ops.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2, epsilon=ops.cast(self.epsilon, dtype),
            grad=ops.cast(gradient, dtype), use_locking=False)
