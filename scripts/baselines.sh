#!/usr/bin/env bash
# The paper's baselines (Mnih et al. 2014, Tables 1-2): FC-256 and CNN on
# translated60 and cluttered60, with RAM's recipe and data. Running it again
# resumes each run where it stopped. RUNS sets where run directories go.
set -u
runs="${RUNS:-runs}"
for task in translated60 cluttered60; do
  ram-tf train --model fc --task "$task" --workdir "$runs/fc256_$task" --verbose 2
  ram-tf train --model cnn --task "$task" --workdir "$runs/cnn_$task" --verbose 2
done
