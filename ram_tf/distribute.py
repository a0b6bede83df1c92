"""Training across devices and machines with `tf.distribute`.

`machine.distribute` picks the strategy (`make_strategy`):

  none          TensorFlow's default strategy: one device.
  mirrored      `MirroredStrategy` over this machine's GPUs, or, without
                GPUs, over `machine.replicas` logical CPU devices
                (`split_cpu`), so it runs and is tested anywhere.
  multi-worker  `MultiWorkerMirroredStrategy`, the cluster from TF_CONFIG,
                one process per worker.

One experiment, whatever the strategy. The global batch (`train.batch_size`
images x M rollouts) is cut into equal shares, one per replica. Each
replica computes the mean hybrid loss of its share divided by the number
of replicas (`ram_tf.reinforce.scale_for_replicas`); the strategy sums the
gradients, which gives the gradient of the mean over the global batch.
The policy noise is drawn for the whole global batch on every replica
(they share the seed generator's state) and each keeps its own rows
(`replica_rows`), so every rollout sees the draw it would on one device.

Chief and workers (`Worker`): the chief (task "chief", else worker 0)
writes the run directory (log.csv, checkpoints, progress, results,
weights). The other workers write nothing there: TensorFlow needs every
worker to take part in a checkpoint save, so theirs goes to a temporary
folder that is removed at once. All workers restore from the chief's
checkpoints, so the run directory must be on storage every worker reads
(the same disk for workers on one machine; NFS or a bucket across
machines).

Keras 3's `fit` does not run under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585): it reduces the first batch with
`strategy.reduce("MEAN", ...)` to build the model, and reduces the scalar
metrics on axis 0. `adapt_for_multi_worker` works around both on one model
instance, for the Keras versions it was tested with (`TESTED_KERAS`).
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import tensorflow as tf

# Keras versions `adapt_for_multi_worker` was tested with: [low, high).
TESTED_KERAS = ((3, 15), (3, 16))


class DistributeError(ValueError):
    """A strategy that cannot run here, named with what to change."""


@dataclasses.dataclass(frozen=True)
class Worker:
    """This process's place in the cluster: `index` of `count` workers."""

    index: int = 0
    count: int = 1
    chief: bool = True


def worker(strategy: tf.distribute.Strategy | None = None) -> Worker:
    """This process's `Worker`: from the strategy's cluster resolver under
    multi-worker, else the only worker."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) \
            or resolver is None:
        return Worker()
    return cluster_worker(resolver.cluster_spec().as_dict(),
                          resolver.task_type, int(resolver.task_id))


def cluster_worker(cluster: dict, task_type: str, task_id: int) -> Worker:
    """The `Worker` of task (`task_type`, `task_id`) in a TF_CONFIG
    `cluster`: the chief is task "chief", else worker 0; workers are
    counted chief first."""
    has_chief = bool(cluster.get("chief"))
    count = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    if task_type == "chief":
        return Worker(index=0, count=count, chief=True)
    index = task_id + (1 if has_chief else 0)
    return Worker(index=index, count=count, chief=index == 0)


def split_cpu(replicas: int) -> None:
    """Make the CPU `replicas` logical devices (/cpu:0 ... /cpu:N-1).

    Must run before TensorFlow starts its runtime (its first op or device
    listing); afterwards the split it already has is kept if it is the
    same, else `DistributeError`.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration()] * replicas
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have < replicas:
            raise DistributeError(
                f"machine.replicas={replicas} splits the CPU into "
                f"{replicas} devices, but TensorFlow already started with "
                f"{have}; set the replicas before TensorFlow runs its first "
                "op (the ram-tf CLI does), or call "
                "ram_tf.distribute.split_cpu first") from None


def make_strategy(distribute: str, replicas: int,
                  gpus: int) -> tf.distribute.Strategy | None:
    """The strategy `machine.distribute` names, over `replicas` devices
    per worker (`ram_tf.devices.Plan.replicas`) on a machine with `gpus`
    GPUs; None for "none"."""
    if distribute == "none":
        return None
    if distribute == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy(
                [f"/gpu:{i}" for i in range(replicas)])
        split_cpu(replicas)
        return tf.distribute.MirroredStrategy(
            [f"/cpu:{i}" for i in range(replicas)])
    if distribute == "multi-worker":
        _check_tf_config()
        if not gpus and replicas > 1:
            raise DistributeError(
                f"machine.replicas={replicas} with multi-worker on a CPU: "
                "each worker without GPUs is one replica; start more "
                "workers instead, or use --distribute mirrored")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise DistributeError(f"unknown machine.distribute {distribute!r}")


def _check_tf_config() -> None:
    text = os.environ.get("TF_CONFIG")
    example = ('{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not text:
        raise DistributeError(
            "machine.distribute='multi-worker' reads the cluster from the "
            f"TF_CONFIG environment variable, which is not set; e.g. "
            f"TF_CONFIG='{example}' (docs/distributed.md)")
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        members = cluster.get(task["type"])
        if members is None or not 0 <= int(task["index"]) < len(members):
            raise KeyError("task")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DistributeError(
            f"TF_CONFIG is not a cluster with this task in it: {text!r}; "
            f"expected e.g. {example}") from None


def replica_rows(values: tf.Tensor, rows) -> tf.Tensor:
    """This replica's `rows` of `values`, drawn for the global batch
    (replica r keeps rows [r * rows, (r + 1) * rows)); `values` itself on
    one device."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    start = tf.cast(context.replica_id_in_sync_group, tf.int32) * rows
    return values[start:start + rows]


def replicas_in_sync() -> int:
    """Replicas taking part in each update (1 without a strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def adapt_for_multi_worker(model: keras.Model) -> None:
    """Let `model.fit` run under `MultiWorkerMirroredStrategy`.

    keras-team/keras#20585: `fit` first reduces a batch with
    `strategy.reduce("MEAN", PerReplica)`, which fails, only to build a
    model that is already built (ram_tf builds models and their optimizer
    before `fit`); then it reduces every logged scalar on axis 0, which
    fails for scalars. So, on this instance only: the symbolic build is
    skipped for a built model, and the train and test steps return their
    logs as vectors of one value, which the reduction averages across
    workers back into scalars.

    Raises:
      DistributeError: Keras outside `TESTED_KERAS`, or a model not built.
    """
    version = tuple(int(p) for p in keras.__version__.split(".")[:2])
    low, high = TESTED_KERAS
    if not low <= version < high:
        raise DistributeError(
            f"multi-worker training relies on a workaround for "
            f"keras-team/keras#20585 tested with Keras "
            f"{'.'.join(map(str, low))}.x; this is Keras "
            f"{keras.__version__}. Install keras>={low[0]}.{low[1]},"
            f"<{high[0]}.{high[1]}, or train with --distribute mirrored")
    if not (model.built and model.optimizer is not None
            and model.optimizer.built):
        raise DistributeError("build the model and its optimizer before "
                              "adapt_for_multi_worker")
    train_step, test_step = model.train_step, model.test_step

    def as_vectors(logs):
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}

    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    model.train_step = lambda data: as_vectors(train_step(data))
    model.test_step = lambda data: as_vectors(test_step(data))
