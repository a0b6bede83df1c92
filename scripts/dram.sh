#!/usr/bin/env bash
# Issue 4's DRAM runs. Running it again resumes each run where it stopped.
# RUNS sets where run directories go (default runs/).
#   1. DRAM, 6 glimpses, on cluttered60 (reference.md: seed 2.75 % after
#      100,000 updates; the preset's 60,000 here), with REINFORCE into the
#      top layer and context (--gradient-scope where: faster than the
#      default "critic" on cluttered60; README, "DRAM gradient routing").
#   2. DRAM vs L-DRAM (every training digit's centre labelled) on
#      cluttered100, 30,000 updates each as the seed's L-DRAM tables, then
#      their learning curves and steps-to-90 % speed-up.
set -eu
runs="${RUNS:-runs}"
ram-tf train --model dram --task cluttered60 --gradient-scope where \
  --workdir "$runs/dram_cluttered60" --verbose 2
for model in dram ldram; do
  ram-tf train --model "$model" --task cluttered100 --steps 30000 \
    --workdir "$runs/${model}_cluttered100" --verbose 2
done
ram-tf curves "$runs/dram_cluttered100" "$runs/ldram_cluttered100" \
  --out results/ldram_vs_dram_cluttered100.png \
  --threshold 0.5 --threshold 0.8 --threshold 0.9 --threshold 0.95
