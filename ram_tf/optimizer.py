"""The recipe's optimizer: Adam with a step-decayed learning rate and a
global gradient-norm clip (`TrainConfig`: learning_rate, lr_decay,
lr_decay_steps, min_learning_rate, clipnorm).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ram_tf import config as config_lib


@keras.saving.register_keras_serializable(package="ram_tf")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(s) = max(lr0 * decay^floor(s / decay_steps), min_lr)."""

    def __init__(self, initial, decay, decay_steps, minimum):
        self.initial, self.decay = float(initial), float(decay)
        self.decay_steps, self.minimum = int(decay_steps), float(minimum)

    def __call__(self, step):
        exponent = tf.floor(tf.cast(step, tf.float32) / self.decay_steps)
        return tf.maximum(self.initial * self.decay**exponent, self.minimum)

    def get_config(self):
        return {"initial": self.initial, "decay": self.decay,
                "decay_steps": self.decay_steps, "minimum": self.minimum}


def make_optimizer(train: config_lib.TrainConfig) -> keras.optimizers.Adam:
    schedule = StepDecay(train.learning_rate, train.lr_decay,
                         train.lr_decay_steps, train.min_learning_rate)
    return keras.optimizers.Adam(schedule, global_clipnorm=train.clipnorm)
