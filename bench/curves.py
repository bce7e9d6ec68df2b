#!/usr/bin/env python3
"""Learning curves against time: where each profile's models sit.

    python3 bench/curves.py STUDY_DIR [STUDY_DIR ...] [--every 10]

For every `pinn` model of each built study (a directory holding `.studymake/`), prints the
held-out patch quality of every `--every`-th epoch (`model.json`, `history.epochs[].quality`:
amplitude SSIM, amplitude and phase Pearson against the true patches of the validation split)
beside the wall minutes of training spent by then (the manifest's build time, split evenly over
the epochs, which cost the same), then the stitched, registered scores of the model's
evaluation (`metrics.json`) and the ePIE baseline's on the same test data. Standard library only.
"""

import glob
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def manifests(study):
    for path in sorted(glob.glob(os.path.join(study, ".studymake", "manifests", "*.json"))):
        yield load(path)


def recipe_name(m):
    return m.get("material", {}).get("recipe", {}).get("Builtin", {}).get("name")


def stitched(study, model_target):
    """The evaluation of the model `model_target`, if one is built."""
    for m in manifests(study):
        if recipe_name(m) == "evaluate" and m["input_sources"].get("model") == model_target:
            path = os.path.join(study, m["output_path"], "metrics.json")
            if os.path.exists(path):
                return load(path)["metrics"]
    return None


def main(argv):
    every = 10
    dirs = []
    i = 0
    while i < len(argv):
        if argv[i] == "--every":
            every = int(argv[i + 1])
            i += 2
        else:
            dirs.append(argv[i])
            i += 1
    if not dirs:
        sys.exit(__doc__)
    for study in dirs:
        for m in manifests(study):
            if recipe_name(m) != "pinn":
                continue
            target = m["target"]
            info = load(os.path.join(study, m["output_path"], "model.json"))
            epochs = info["history"]["epochs"]
            total = len(epochs)
            minutes = m["seconds"] / 60.0
            p = m["material"]["params"]
            print(
                f"{study}: {target} (epochs {p['epochs']}, batch {p['batch_size']}, "
                f"seed {p['seed']}, {minutes:.1f} min)"
            )
            print("  epoch  minutes  patch amp SSIM  amp r   phase r")
            for e in epochs:
                if e["epoch"] % every and e["epoch"] != total:
                    continue
                q = e["quality"]
                print(
                    f"  {e['epoch']:5d}  {minutes * e['epoch'] / total:7.1f}  "
                    f"{q['amp_ssim']:14.3f}  {q['amp_pearson']:.3f}  {q['phase_pearson']:7.3f}"
                )
            s = stitched(study, target)
            if s:
                a, e = s["PtychoPINN"], s["ePIE"]
                print(
                    f"  stitched: amp SSIM {a['amplitude']['ssim']:.3f}, phase Pearson "
                    f"{a['phase']['pearson']:.3f}, amp FRC50 {a['amplitude']['frc50']:.2f} | "
                    f"ePIE amp SSIM {e['amplitude']['ssim']:.3f}, FRC50 {e['amplitude']['frc50']:.2f}"
                )


if __name__ == "__main__":
    main(sys.argv[1:])
