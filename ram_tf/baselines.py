"""The non-attention baselines: Mnih et al. 2014 (Tables 1 and 2) and a
6-layer CNN.

- `FullyConnectedBaseline`: x -> ReLU(FC_w) -> ReLU(FC_w) -> FC_10, with
  w = 64 or 256 (`core.fc_units`).
- `ConvolutionalBaseline`: two convolutional layers, Conv(8, 10x10,
  stride 5) -> Conv(16, 5x5, stride 2), both ReLU and "same", then
  ReLU(FC_256) -> FC_10. The paper gives only "2 layers"; these sizes are
  our reading, stated so the parameter count can be compared.
- `DeepConvolutionalBaseline` ("cnn6"): six 3x3 "same" ReLU convolutions
  (`DEEP_CONVS`: 16, 16, 32, 32, 64, 64 filters, the first with stride 2),
  a 2x2 max pool after every second one, then ReLU(FC_256) -> FC_10, with
  He initialisation. The plain many-layer CNN that holds the accuracy
  record on cluttered 100x100 MNIST, against which attention is judged per
  FLOP.

All three train by plain cross-entropy on the same data pipeline as RAM and
return {"logits": ...} like RAM, so evaluation and results are shared
(the two evaluation modes coincide: the models are deterministic).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ram_tf.config import DEEP_CONVS

_METRICS = ("loss", "cross_entropy", "accuracy")


class _Classifier(keras.Model):
    """Plain supervised train/test steps on the dataset's dicts."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.trackers = {n: keras.metrics.Mean(name=n) for n in _METRICS}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _terms(self, data):
        logits = self(data["image"])["logits"]
        labels = tf.cast(data["label"], tf.int32)
        ce = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        hit = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels)
        return ce, tf.reduce_mean(tf.cast(hit, tf.float32))

    def _record(self, values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {n: self.trackers[n].result() for n in values}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            ce, accuracy = self._terms(data)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(ce, variables), variables)
        return self._record({"loss": ce, "cross_entropy": ce,
                             "accuracy": accuracy})

    def test_step(self, data):
        ce, accuracy = self._terms(data)
        return self._record({"cross_entropy": ce, "accuracy": accuracy})


@keras.saving.register_keras_serializable(package="ram_tf")
class FullyConnectedBaseline(_Classifier):
    """Two hidden ReLU layers of `units`. Output {"logits": [B, 10]}."""

    def __init__(self, units=256, num_classes=10, **kwargs):
        super().__init__(**kwargs)
        self.units, self.num_classes = units, num_classes
        self.hidden = [keras.layers.Dense(units, "relu", name=f"fc{i}")
                       for i in (1, 2)]
        self.out = keras.layers.Dense(num_classes, name="logits")

    def call(self, images, training=False):
        x = tf.reshape(images, [tf.shape(images)[0], -1])
        for layer in self.hidden:
            x = layer(x)
        return {"logits": self.out(x)}

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="ram_tf")
class ConvolutionalBaseline(_Classifier):
    """Conv(8,10,s5) -> Conv(16,5,s2) -> FC 256 -> FC 10."""

    def __init__(self, num_classes=10, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        # "same" padding so the 28x28 task fits too: 60 -> 12 -> 6.
        self.conv1 = keras.layers.Conv2D(8, 10, strides=5, padding="same",
                                         activation="relu", name="conv1")
        self.conv2 = keras.layers.Conv2D(16, 5, strides=2, padding="same",
                                         activation="relu", name="conv2")
        self.fc = keras.layers.Dense(256, "relu", name="fc")
        self.out = keras.layers.Dense(num_classes, name="logits")

    def call(self, images, training=False):
        x = self.conv2(self.conv1(images))
        x = tf.reshape(x, [tf.shape(x)[0], -1])
        return {"logits": self.out(self.fc(x))}

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="ram_tf")
class DeepConvolutionalBaseline(_Classifier):
    """Six 3x3 convolutions (`DEEP_CONVS`), pooled by 2 after every second
    one, then FC 256 -> FC 10. [B, N, N, C] -> {"logits": [B, 10]}; on
    100x100: 50 -> 25 -> 13 -> 7 pixels, 7 x 7 x 64 into the FC layer.

    The ReLU layers start from He et al.'s (2015) initialisation,
    Var(w) = 2 / fan_in, which keeps E[a^2] from layer to layer. Keras's
    default (Glorot, Var(w) = 2 / (fan_in + fan_out)) halves it at every
    3x3 layer of equal width: on cluttered canvases the logits start about
    25x smaller, and Adam never left the uniform prediction (ln 10) in
    3,000 updates."""

    def __init__(self, num_classes=10, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.convs = [keras.layers.Conv2D(f, 3, strides=s, padding="same",
                                          activation="relu",
                                          kernel_initializer="he_normal",
                                          name=f"conv{i + 1}")
                      for i, (f, s) in enumerate(DEEP_CONVS)]
        self.pool = keras.layers.MaxPooling2D(2, padding="same", name="pool")
        self.fc = keras.layers.Dense(256, "relu",
                                     kernel_initializer="he_normal",
                                     name="fc")
        self.out = keras.layers.Dense(num_classes, name="logits")

    def call(self, images, training=False):
        x = images
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i % 2 == 1:
                x = self.pool(x)
        x = tf.reshape(x, [tf.shape(x)[0], -1])
        return {"logits": self.out(self.fc(x))}

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def build(config) -> keras.Model:
    """The baseline named by `config.model` ("fc", "cnn" or "cnn6"),
    unbuilt."""
    if config.model == "fc":
        return FullyConnectedBaseline(config.core.fc_units, name="fc")
    if config.model == "cnn6":
        return DeepConvolutionalBaseline(name="cnn6")
    return ConvolutionalBaseline(name="cnn")
