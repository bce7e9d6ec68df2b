#!/usr/bin/env python3
"""Print the anchor's per-condition table (markdown) from a built bench/ptychopinn study:
score.py's common scoring of PtychoPINN, its training wall/CPU time and stop epoch.

  python3 bench/ptychopinn/table.py [bench/ptychopinn/study]
"""
import json
import sys
from pathlib import Path

study = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent / "study")
print("| condition | amp SSIM | amp Pearson | phase Pearson | offset (dy, dx) px | unregistered amp SSIM / Pearson "
      "| stop epoch | train wall | train CPU | predict wall (CPU) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for c in ["gs1_idealized", "gs1_hybrid", "gs2_idealized", "gs2_hybrid"]:
    # recipe.py all: prediction, score and timing in the model target, the trained model in
    # its model/ subdirectory.
    ev = study / c / "model"
    mo = ev / "model"
    if not (ev / "score.json").is_file():
        print(f"| {c} | not built | | | | | | | | |")
        continue
    s = json.loads((ev / "score.json").read_text())
    t = json.loads((ev / "timing.json").read_text())
    m = json.loads((mo / "timing.json").read_text())
    r, u = s["registered"], s["unregistered"]
    print(f"| {c} | {r['amp_ssim']:.3f} | {r['amp_pearson']:.3f} | {r['phase_pearson']:.3f} | "
          f"({s['offset_yx'][0]:+.2f}, {s['offset_yx'][1]:+.2f}) | {u['amp_ssim']:.3f} / {u['amp_pearson']:.3f} | "
          f"{m.get('stop_epoch')}/{m.get('epochs_requested')} | {m['train_seconds'] / 60:.1f} min | "
          f"{m.get('train_cpu_seconds', float('nan')) / 60:.1f} min | {t['predict_seconds']:.0f} s "
          f"({t.get('predict_cpu_seconds', float('nan')):.0f} s) |")
