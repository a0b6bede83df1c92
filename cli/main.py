"""`ram-tf`: train, evaluate, look at data, export, predict, visualize.

Only this package talks to the terminal. Bad input (unknown task or model,
impossible settings, missing MNIST) ends with one line saying what was
wrong and what is allowed, and exit code 2.
"""

from __future__ import annotations

import importlib.metadata

import click

from ram_tf_cli import deploy
from ram_tf_cli import figures
from ram_tf_cli import runs


@click.group(context_settings={"show_default": True,
                               "help_option_names": ["-h", "--help"]})
@click.version_option(importlib.metadata.version("ram-tf"),
                      prog_name="ram-tf")
def cli():
    """Recurrent Attention Model (Mnih et al. 2014) on MNIST-derived tasks."""


for command in (runs.train, runs.evaluate, runs.data, runs.benchmark,
                deploy.export, deploy.predict, figures.visualize,
                figures.curves):
    cli.add_command(command)


def main():
    cli(prog_name="ram-tf")


if __name__ == "__main__":
    main()
