"""A run directory rebuilt from an exported SavedModel, so that `ram-tf
export` can write new artefacts (another format, newer in-graph checks) of
a model whose training run is gone, such as the shipped ones.

The directory gets the manifest's config (`config.json`), the weights
(`model.weights.h5`, assigned from the SavedModel's variables by
`ram_tf.export.keras_from_export`, checksum verified) and the update count
the manifest records (`results.json` holds `updates` only: it is no
training record). E.g., as exported_models/README.md's models were made:

  python scripts/run_from_export.py exported_models/ram_translated60/2 \
      runs/ram_translated60_bf16
  ram-tf export runs/ram_translated60_bf16 --name ram_translated60 \
      --out exported_models --version 3
"""

import argparse
import json
import os


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export", help="a SavedModel version folder")
    p.add_argument("workdir", help="the run directory to write (new)")
    args = p.parse_args()
    if os.path.exists(args.workdir):
        p.error(f"{args.workdir} exists; give a new folder")

    from ram_tf import manifest
    from ram_tf.export import keras_from_export

    config, model = keras_from_export(args.export)
    _, entry = manifest.entry_of(manifest.latest_version(args.export))
    os.makedirs(args.workdir)
    with open(os.path.join(args.workdir, "config.json"), "w") as f:
        json.dump(config.to_dict(), f, indent=2)
    model.save_weights(os.path.join(args.workdir, "model.weights.h5"))
    with open(os.path.join(args.workdir, "results.json"), "w") as f:
        json.dump({"updates": entry.get("updates", config.train.steps)}, f)
    print(f"{args.workdir}: {config.model} on {config.task}, "
          f"{entry.get('updates', config.train.steps):,} updates")


if __name__ == "__main__":
    main()
