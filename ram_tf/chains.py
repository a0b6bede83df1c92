"""Rollout chains: a batch cut into slices whose rollouts share no op.

`RecurrentAttentionModel.rollouts` runs `call` on `model.chains` slices of
a batch, so TensorFlow's inter-op threads run them at the same time, one
core each (with the intra-op pool set to cores / chains by
`ram_tf.runtime.configure_chains`). The recurrence is a chain of small ops
that leaves a second core idle much of the time; a second chain fills it
(docs/performance.md, "Design decisions").
"""

from __future__ import annotations

import tensorflow as tf


def run(call, images, chains, repeats, noise):
    """`call` on `chains` slices of the batch, outputs concatenated.

    Args:
      call: (images [b, H, W, C], noise [b M, A, 2] or None) -> dict of
        tensors with b M rows (copy j of image i at row i * M + j).
      images: float32 [B, H, W, C].
      chains: number of slices wanted (at most B when B is known).
      repeats: M.
      noise: [B * M, A, 2] or None, sliced like the rows.

    Slice c holds images [s_c, s_{c+1}) and rows [s_c M, s_{c+1} M), so the
    rows keep `call`'s order. The slices share no op until the
    concatenation: TensorFlow runs them concurrently.
    """
    batch = images.shape[0]
    # No empty slice when the batch size is known; sizes differ by at
    # most one image (with an unknown batch a slice may be empty).
    chains = chains if batch is None else min(chains, batch)
    if chains == 1:
        return call(images, noise)
    if batch is None:
        batch = tf.shape(images)[0]
        sizes = tf.stack([batch // chains
                          + tf.cast(c < batch % chains, tf.int32)
                          for c in range(chains)])
    else:
        sizes = [batch // chains + int(c < batch % chains)
                 for c in range(chains)]
    parts = tf.split(images, sizes, num=chains)
    rows = (sizes * repeats if isinstance(sizes, tf.Tensor)
            else [n * repeats for n in sizes])
    noises = (tf.split(noise, rows, num=chains)
              if noise is not None else [None] * chains)
    outs = [call(x, z) for x, z in zip(parts, noises)]
    return {key: tf.concat([o[key] for o in outs], axis=0)
            for key in outs[0]}
