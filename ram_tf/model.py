"""The Recurrent Attention Model (Mnih et al. 2014) as a Keras 3 model.

One step t = 1..T (`step`):
  rho_t = GlimpseSensor(x, l_{t-1})          [B, k, g, g, C]
  g_t   = GlimpseNetwork(rho_t, l_{t-1})     [B, 256]
  h_t   = CoreNetwork(g_t, h_{t-1})          [B, 256]
  mu_t  = LocationNetwork(h_t)               [B, 2]
  l_t   = clip(mu_t + sigma * eps, -1, 1) when sampling, else mu_t
  b_t   = BaselineNetwork(h_t)               [B]
and after step T, logits = ActionNetwork(h_T). The T - 1 locations l_1 ..
l_{T-1} are the policy's actions; the location proposed after the last
glimpse is never used.

`call` unrolls the steps in Python (a `tf.while_loop` would need Flex ops in
TFLite) and returns a dict of tensors:
  logits    [B, 10]
  locations [B, T, 2]    the glimpse centres used, l_0 .. l_{T-1}
  means     [B, T-1, 2]  mu_1 .. mu_{T-1}
  samples   [B, T-1, 2]  the unclipped draws (= means when deterministic)
  baselines [B, T-1]     b_1 .. b_{T-1}

`train_step` (REINFORCE, `ram_tf.reinforce`) repeats every image M times
with independent location samples; `test_step` scores the deterministic
policy (l_t = mu_t). Randomness comes from the model's `SeedGenerator`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ram_tf import networks
from ram_tf import reinforce
from ram_tf.glimpse import GlimpseSensor

_TRAIN_METRICS = ("loss", "cross_entropy", "baseline_mse", "reinforce",
                  "reward", "accuracy", "location_abs")
_TEST_METRICS = ("accuracy", "cross_entropy", "location_abs")


@keras.saving.register_keras_serializable(package="ram_tf")
class RecurrentAttentionModel(keras.Model):
    """RAM: glimpse sensor, glimpse network, LSTM core, policy, classifier.

    Args:
      glimpse_size, num_scales, backend: the `GlimpseSensor`.
      xla_sensor: XLA-compile the sensor alone (see `GlimpseSensor`).
      num_glimpses: T.
      glimpse_hidden, location_hidden, glimpse_units: `GlimpseNetwork`.
      core_units: LSTM width.
      std: policy sigma.
      initial_location: "center" (l_0 = (0, 0)) or "random" (uniform).
      reinforce_weight: lambda of the hybrid loss.
      mc_samples: M, rollouts per image in `train_step`.
      num_classes: 10 for MNIST.
      seed: seed of the location samples.
    """

    def __init__(self, glimpse_size=12, num_scales=3, num_glimpses=6,
                 backend="gather", xla_sensor=False, glimpse_hidden=128,
                 location_hidden=128,
                 glimpse_units=256, core_units=256, std=0.11,
                 initial_location="center", reinforce_weight=1.0,
                 mc_samples=10, num_classes=10, seed=0, **kwargs):
        super().__init__(**kwargs)
        self._args = dict(
            glimpse_size=glimpse_size, num_scales=num_scales,
            num_glimpses=num_glimpses, backend=backend, xla_sensor=xla_sensor,
            glimpse_hidden=glimpse_hidden, location_hidden=location_hidden,
            glimpse_units=glimpse_units, core_units=core_units, std=std,
            initial_location=initial_location,
            reinforce_weight=reinforce_weight, mc_samples=mc_samples,
            num_classes=num_classes, seed=seed,
        )
        self.num_glimpses = num_glimpses
        self.std = float(std)
        self.initial_location = initial_location
        self.reinforce_weight = float(reinforce_weight)
        self.mc_samples = mc_samples
        self.sensor = GlimpseSensor(glimpse_size, num_scales, backend,
                                    xla=xla_sensor, name="glimpse_sensor")
        self.glimpse_net = networks.GlimpseNetwork(
            glimpse_hidden, location_hidden, glimpse_units,
            name="glimpse_network")
        self.core = networks.CoreNetwork(core_units, name="core_network")
        self.location_net = networks.LocationNetwork(name="location_network")
        self.baseline_net = networks.BaselineNetwork(name="baseline_network")
        self.action_net = networks.ActionNetwork(num_classes,
                                                 name="action_network")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in dict.fromkeys(_TRAIN_METRICS + _TEST_METRICS)
        }

    # -- the recurrence ---------------------------------------------------

    def first_location(self, batch_size):
        if self.initial_location == "random":
            return keras.random.uniform([batch_size, 2], -1.0, 1.0,
                                        seed=self.seed_generator)
        return tf.zeros([batch_size, 2])

    def step(self, images, location, state):
        """One glimpse: (x, l_{t-1}, state) -> (h_t, state)."""
        patches = self.sensor((images, location))
        g = self.glimpse_net((patches, location))
        return self.core(g, state)

    def call(self, images, training=False, sample=False, repeats=1,
             noise_seed=None, step_logits=False):
        """Unroll T glimpses over `repeats` copies of each image.

        Args:
          images: float32 [B, H, W, C].
          sample: draw l_t ~ pi (training, Monte Carlo) instead of mu_t.
          repeats: M; the outputs have B * M rows, copy j of image i at row
            i * M + j. With a fixed l_0 the first glimpse is the same for
            every copy, so it is computed once per image and then repeated.
          noise_seed: optional int32 [2]; when sampling, draw the policy
            noise statelessly from it instead of the model's generator
            (exported Monte Carlo signatures: same seed, same answer).
          step_logits: also return "step_logits" [B * M, T, K], the
            classifier applied after every glimpse (for visualisation).
        """
        images = tf.convert_to_tensor(images, tf.float32)
        shared_first = repeats > 1 and self.initial_location == "center"
        if shared_first:
            batch = tf.shape(images)[0]
            location = self.first_location(batch)
            h, state = self.step(images, location,
                                 self.core.initial_state(batch))
            images = tf.repeat(images, repeats, axis=0)
            h = tf.repeat(h, repeats, axis=0)
            state = [tf.repeat(s, repeats, axis=0) for s in state]
            batch = tf.shape(images)[0]
            location = tf.repeat(location, repeats, axis=0)
        else:
            images = tf.repeat(images, repeats, axis=0)
            batch = tf.shape(images)[0]
            state = self.core.initial_state(batch)
            location = self.first_location(batch)
        locations, means, samples, baselines = [location], [], [], []
        hiddens = []
        for t in range(self.num_glimpses):
            if t > 0 or not shared_first:
                h, state = self.step(images, location, state)
            hiddens.append(h)
            if t == self.num_glimpses - 1:
                break
            mean = self.location_net(h)
            if sample and noise_seed is not None:
                draw = mean + self.std * tf.random.stateless_normal(
                    tf.shape(mean),
                    tf.random.experimental.stateless_fold_in(noise_seed, t))
                draw = tf.stop_gradient(draw)
            elif sample:
                draw = mean + self.std * keras.random.normal(
                    tf.shape(mean), seed=self.seed_generator)
                draw = tf.stop_gradient(draw)
            else:
                draw = mean
            location = tf.clip_by_value(draw, -1.0, 1.0)
            locations.append(location)
            means.append(mean)
            samples.append(draw)
            baselines.append(self.baseline_net(h))
        empty2 = tf.zeros([batch, 0, 2])
        out = {
            "logits": self.action_net(h),
            "locations": tf.stack(locations, axis=1),
            "means": tf.stack(means, axis=1) if means else empty2,
            "samples": tf.stack(samples, axis=1) if samples else empty2,
            "baselines": (tf.stack(baselines, axis=1) if baselines
                          else tf.zeros([batch, 0])),
        }
        if step_logits:
            # What the classifier would answer after each glimpse.
            out["step_logits"] = tf.stack(
                [self.action_net(x) for x in hiddens], axis=1)
        return out

    # -- training ---------------------------------------------------------

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _record(self, values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in values}

    def train_step(self, data):
        images, labels = data["image"], data["label"]
        m = self.mc_samples
        # M copies of each image with independent location samples.
        labels_m = tf.repeat(tf.cast(labels, tf.int32), m, axis=0)
        with tf.GradientTape() as tape:
            out = self(images, training=True, sample=True, repeats=m)
            terms = reinforce.hybrid_loss(
                out["logits"], labels_m, out["means"], out["samples"],
                out["baselines"], self.std, self.reinforce_weight)
            scaled = reinforce.scale_for_replicas(terms["loss"])
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        # Accuracy of the M-rollout average of class probabilities.
        probs = tf.nn.softmax(out["logits"])
        probs = tf.reduce_mean(tf.reshape(probs, [-1, m, probs.shape[-1]]), 1)
        terms["accuracy"] = tf.reduce_mean(reinforce.rewards(
            tf.math.log(probs + 1e-12), tf.cast(labels, tf.int32)))
        terms["location_abs"] = tf.reduce_mean(tf.abs(out["locations"][:, 1:]))
        return self._record(terms)

    def test_step(self, data):
        out = self(data["image"], training=False)
        labels = tf.cast(data["label"], tf.int32)
        return self._record({
            "accuracy": tf.reduce_mean(reinforce.rewards(out["logits"],
                                                         labels)),
            "cross_entropy": tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels, out["logits"])),
            "location_abs": tf.reduce_mean(tf.abs(out["locations"][:, 1:])),
        })

    def get_config(self):
        return {**super().get_config(), **self._args}


def build_model(config) -> RecurrentAttentionModel:
    """A `RecurrentAttentionModel` from an `ExperimentConfig`, built."""
    g, c, p, t, d = (config.glimpse, config.core, config.policy,
                     config.train, config.data)
    model = RecurrentAttentionModel(
        glimpse_size=g.size, num_scales=g.num_scales,
        num_glimpses=g.num_glimpses, backend=g.backend, xla_sensor=g.xla,
        glimpse_hidden=c.glimpse_hidden, location_hidden=c.location_hidden,
        glimpse_units=c.glimpse_units, core_units=c.core_units,
        std=p.std, initial_location=p.initial_location,
        reinforce_weight=p.reinforce_weight, mc_samples=t.mc_samples,
        seed=t.seed, name=config.model,
    )
    model(tf.zeros([1, d.canvas_size, d.canvas_size, d.channels]))
    return model
