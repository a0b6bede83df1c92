"""`ram-tf`: train, evaluate, look at data, export, predict, visualize.

Only this package talks to the terminal. Bad input (unknown task or model,
impossible settings, missing MNIST) ends with one line saying what was
wrong and what is allowed, and exit code 2; so do permission, existing-
file and missing-folder errors and damaged JSON files (`RamGroup`).
"""

from __future__ import annotations

import importlib.metadata

import click

from ram_tf import runtime
from ram_tf_cli import deploy
from ram_tf_cli import figures
from ram_tf_cli import reproduce
from ram_tf_cli import runs
from ram_tf_cli.common import RamGroup
from ram_tf_cli.common import quiet_tensorflow
from ram_tf_cli.stderr_filter import filter_native_stderr


@click.group(cls=RamGroup,
             context_settings={"show_default": True,
                               "help_option_names": ["-h", "--help"]})
@click.version_option(importlib.metadata.version("ram-tf"),
                      prog_name="ram-tf")
def cli():
    """Recurrent Attention Model (Mnih et al. 2014) on MNIST-derived tasks."""
    quiet_tensorflow()  # before any command loads TensorFlow


for command in (runs.train, runs.evaluate, runs.data, runs.benchmark,
                deploy.export, deploy.predict, figures.visualize,
                figures.curves, reproduce.reproduce):
    cli.add_command(command)


def main():
    quiet_tensorflow()
    filter_native_stderr()  # before TensorFlow loads: its CUDA probe lines
    # Eigen kernels unless the user chose; commands that compute in
    # bfloat16 switch oneDNN on themselves (ram_tf.runtime).
    runtime.prepare_tensorflow("float32")
    cli(prog_name="ram-tf")


if __name__ == "__main__":
    main()
