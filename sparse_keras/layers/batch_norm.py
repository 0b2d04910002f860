"""``FusedBatchNormalization``: Keras's BatchNormalization, trained through TensorFlow's fused kernel.

Keras 3 normalises on TensorFlow with separate ops (moments, then ``tf.nn.batch_normalization``), about ten
ops forward and more backward per layer; TensorFlow's ``FusedBatchNormV3`` (oneDNN on a CPU) is one op each
way. Same weights, config, numbers and moving-statistics update as Keras's layer (the fused op's variance is
Bessel-corrected, so it is scaled back to the biased variance Keras keeps). Measured on a 2-core CPU: ResNet-20
trains 1.13x faster (benchmarks/RESULTS.md, "Ours vs the official code on one CPU").

The fused path is taken only where it computes exactly what Keras does: TensorFlow backend, training, a 4-D
channels-last float32 input, no mask, no renorm, not synchronized, with scale and center. Everything else
(other backends, inference, which is already a single affine op per channel) runs Keras's own ``call``.
TensorFlow is imported only on that path, so the layer loads on a JAX-only machine.
"""

import keras


@keras.saving.register_keras_serializable(package="sparse_keras")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with TensorFlow's fused kernel in training (see the module)."""

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        empty = tf.constant([], dtype=inputs.dtype)
        outputs, mean, variance = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=self.gamma.value, offset=self.beta.value, mean=empty, variance=empty,
            epsilon=self.epsilon, data_format="NHWC", is_training=True)[:3]
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), variance.dtype)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)  # Bessel-corrected -> biased, as Keras
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs

    def _fused_applies(self, inputs, training, mask):
        return (keras.backend.backend() == "tensorflow" and bool(training) and self.trainable and mask is None
                and not self.renorm and not self.synchronized and self.scale and self.center
                and len(inputs.shape) == 4 and self.axis in (3, -1) and inputs.dtype == "float32")
