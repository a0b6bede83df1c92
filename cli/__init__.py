"""The `ram-tf` command line (installed as the package `ram_tf_cli`)."""
