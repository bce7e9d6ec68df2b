#!/usr/bin/env python3
"""PtychoPINN's own trainer and inference on studymake's datasets, as studymake recipes.

This is our code; PtychoPINN's is never copied here. Every subcommand takes the path of a
PtychoPINN checkout (`--ptychopinn DIR`, holding `ptycho/`, `ptycho/FRC/` and `scripts/`) and runs
its code unmodified, with the venv made by `bench/ptychopinn/setup.sh`.

Subcommands:

  train    PtychoPINN's `scripts/training/train.py` on a studymake `train_data.npz` (its defaults:
           batch 16, Keras validation_split 0.05, ReduceLROnPlateau on val_loss, EarlyStopping
           on loss with patience 3; `--gridsize`, `--nepochs`, `--n_images`, `--n_filters_scale`,
           `--nphotons` from our arguments). Writes OUTDIR/wts.h5.zip (its ModelManager archive),
           training.log (the trainer's whole output), history.json (per-epoch losses and learning
           rate, read back from the log) and timing.json.
  predict  Inference on a studymake `test_data.npz` as PtychoPINN's `scripts/compare_models.py`
           does (ModelManager archive, `diffraction_to_obj.predict([X * intensity_scale, coords],
           batch_size=32)`, `tf_helper.reassemble_position(M=20)`, `image.cropping.
           align_for_evaluation`), in the test file's own groups (`group_index`). Writes
           prediction.npz, reconstruction.npz, ground_truth.npz, stitched.npz, timing.json and,
           unless --no-score, score.json (bench/ptychopinn/score.py on prediction.npz).
  all      train into OUTDIR/model, then predict into OUTDIR: the whole anchor in one call;
           also writes OUTDIR/model.json (the losses per epoch, for studymake's report).

Each writes {"params": {"gridsize": G, ...}} to --report (or $STUDYMAKE_REPORT), as a studymake
command recipe must.

Grouping. Training uses PtychoPINN's own grouping (gridsize 1: every pattern alone, in file
order; gridsize 2: its KD-tree "group-then-sample" over the 5 nearest neighbours, `n_images`
groups drawn at random), as its trainer does. Inference feeds PtychoPINN the test file's own
`group_index` (studymake's grouping) through `RawData._generate_dataset_from_groups`, the
function PtychoPINN's grouping itself ends in, so that `prediction.npz` is in the test file's
group order and the patches are those studymake's evaluation would score. At gridsize 1 the two
groupings are the same (every pattern alone, in file order); this is checked.

Seeding. PtychoPINN seeds nothing. `--seed S` calls `tf.keras.utils.set_random_seed(S)` (Python,
NumPy and TensorFlow generators) before its trainer runs, so its group sampling, weight
initialisation and batch shuffling are repeatable for a given thread count.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write_report(path, params):
    path = path or os.environ.get("STUDYMAKE_REPORT")
    if path:
        Path(path).write_text(json.dumps({"params": params}) + "\n")


def checkout_digest(root: Path) -> str:
    """blake2b over the checkout's Python sources (relative path and bytes): which code ran."""
    h = hashlib.blake2b(digest_size=16)
    files = sorted(p for p in root.rglob("*.py") if p.is_file() and "__pycache__" not in p.parts)
    for p in files:
        rel = p.relative_to(root).as_posix()
        if not (rel.startswith("ptycho/") or rel.startswith("scripts/")):
            continue
        h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def child_env(ptychopinn: Path, threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "USER")}
    env["PYTHONPATH"] = str(ptychopinn)
    env["TF_CPP_MIN_LOG_LEVEL"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["MPLBACKEND"] = "Agg"
    env["MPLCONFIGDIR"] = env.get("TMPDIR", "/tmp")
    if threads > 0:
        env["TF_NUM_INTRAOP_THREADS"] = str(threads)
        env["TF_NUM_INTEROP_THREADS"] = "1"
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def check_checkout(d: Path) -> Path:
    d = d.resolve()
    for f in ["ptycho/model.py", "scripts/training/train.py", "ptycho/FRC/fourier_ring_corr.py"]:
        if not (d / f).is_file():
            sys.exit(f"recipe.py: {d}/{f} is missing: not a PtychoPINN checkout with ptycho/FRC "
                     "(see bench/README.md, 'Anchor')")
    return d


# --------------------------------------------------------------------------------------- train

EPOCH_RE = re.compile(r"Epoch (\d+)/(\d+)")
METRIC_RE = re.compile(r"\b(loss|val_loss|learning_rate|lr)\b: ([-+0-9.eE]+)")


def parse_history(log: str):
    """Per-epoch losses and learning rate from Keras' verbose=1 output (the last line of each
    epoch carries every metric)."""
    epochs, current = [], None
    for line in re.split(r"[\r\n\x08]+", log):
        m = EPOCH_RE.search(line)
        if m:
            current = {"epoch": int(m.group(1))}
            epochs.append(current)
            continue
        if "val_loss" in line:
            if current is None or "loss" in current:
                # Keras prints no "Epoch k/E" header when E == 1
                current = {"epoch": epochs[-1]["epoch"] + 1 if epochs else 1}
                epochs.append(current)
            for k, v in METRIC_RE.findall(line):
                try:
                    current["learning_rate" if k == "lr" else k] = float(v)
                except ValueError:
                    pass
    return [e for e in epochs if "loss" in e]


def cmd_train(a):
    pp = check_checkout(Path(a.ptychopinn))
    out = Path(a.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    # PtychoPINN writes its gridsize-2 group cache beside the training file and train_debug.log
    # into its working directory: give it a directory of our own for both.
    train = work / "train_data.npz"
    if train.is_symlink() or train.exists():
        train.unlink()
    train.symlink_to(Path(a.train).resolve())
    argv = [
        str(pp / "scripts/training/train.py"),
        "--train_data_file", str(train),
        "--gridsize", str(a.gridsize),
        "--n_filters_scale", str(a.n_filters_scale),
        "--nepochs", str(a.epochs),
        "--n_images", str(a.n_images),
        "--nphotons", repr(float(a.nphotons)),
        "--output_dir", str(out),
    ]
    child = [sys.executable, str(Path(__file__).resolve()), "_train_child", "--seed", str(a.seed), "--"] + argv
    import resource
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    with open(out / "training.log", "w") as log:
        log.write(f"recipe.py: {' '.join(child)}\n")
        log.write(f"gridsize: {a.gridsize}\n")
        log.flush()
        rc = subprocess.call(child, cwd=work, env=child_env(pp, a.threads), stdout=log, stderr=subprocess.STDOUT)
    train_s = time.time() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    train_cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if rc != 0:
        sys.stderr.write((out / "training.log").read_text()[-4000:])
        sys.exit(f"recipe.py: PtychoPINN's trainer failed (exit {rc}); see {out}/training.log")
    if not (out / "wts.h5.zip").is_file():
        sys.exit(f"recipe.py: the trainer wrote no {out}/wts.h5.zip")
    hist = parse_history((out / "training.log").read_text(errors="replace"))
    (out / "history.json").write_text(json.dumps(hist, indent=1) + "\n")
    # The work directory holds the trainer's train_debug.log (training.log at DEBUG level), its
    # memoized_data/ and gridsize-2 group cache: kept only when asked.
    if not a.keep_work:
        import shutil
        shutil.rmtree(work)
    timing = {
        "train_seconds": round(train_s, 1),
        "train_cpu_seconds": round(train_cpu_s, 1),
        "peak_rss_mib": round(ru1.ru_maxrss / 1024, 1),
        "stop_epoch": hist[-1]["epoch"] if hist else None,
        "epochs_requested": a.epochs,
        "threads": a.threads,
        "checkout": str(pp),
        "checkout_digest": checkout_digest(pp),
        "python": sys.version.split()[0],
    }
    try:
        import importlib.metadata as md
        timing["versions"] = {p: md.version(p) for p in ["tensorflow-cpu", "tensorflow-probability", "keras", "numpy"]}
    except Exception:  # noqa: BLE001 - versions are a courtesy
        pass
    (out / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    write_report(a.report, {"gridsize": a.gridsize, "seed": a.seed, "epochs": a.epochs,
                            "n_images": a.n_images, "n_filters_scale": a.n_filters_scale})
    print(f"recipe.py: trained gridsize {a.gridsize} in {train_s:.0f} s, stopped at epoch "
          f"{timing['stop_epoch']}/{a.epochs}")


def cmd_train_child(a):
    """Runs inside the venv with the checkout on PYTHONPATH: seed, then PtychoPINN's train.py
    as __main__, unmodified."""
    import runpy
    import tensorflow as tf
    tf.keras.utils.set_random_seed(a.seed)
    script = a.argv[0]
    sys.argv = list(a.argv)
    sys.path.insert(0, str(Path(script).parent))
    runpy.run_path(script, run_name="__main__")


# ------------------------------------------------------------------------------------- predict

def cmd_predict(a):
    import numpy as np
    pp = check_checkout(Path(a.ptychopinn))
    sys.path.insert(0, str(pp))
    out = Path(a.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    model_dir = Path(a.model).resolve()
    if not (model_dir / "wts.h5.zip").is_file():
        sys.exit(f"recipe.py: no PtychoPINN model at {model_dir}/wts.h5.zip")
    a.test = str(Path(a.test).resolve())
    if a.report:
        a.report = str(Path(a.report).resolve())
    # PtychoPINN makes ./memoized_data at import: a directory of our own, removed at the end.
    work = out / "work"
    work.mkdir(exist_ok=True)
    os.chdir(work)
    if a.threads > 0:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(a.threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")

    t_load = time.time()
    from ptycho import params as p
    from ptycho.config.config import TrainingConfig, ModelConfig, update_legacy_dict
    from ptycho.workflows.components import load_data, create_ptycho_data_container
    from ptycho import loader
    from ptycho.model_manager import ModelManager
    from ptycho.tf_helper import reassemble_position
    from ptycho.image.cropping import align_for_evaluation

    g = a.gridsize
    test_npz = np.load(a.test)
    group_index = np.asarray(test_npz["group_index"]).astype(np.int64)
    if group_index.ndim != 2 or group_index.shape[1] != g * g:
        sys.exit(f"recipe.py: {a.test}: group_index has shape {group_index.shape}, not (M, {g * g})")
    N = int(test_npz["probeGuess"].shape[0])

    # As compare_models.py: the global configuration first, then the data, then the model.
    cfg = TrainingConfig(model=ModelConfig(N=N, gridsize=g), train_data_file=Path("dummy.npz"), n_images=None)
    update_legacy_dict(p.cfg, cfg)
    raw = load_data(str(a.test), n_images=None)
    cfg = TrainingConfig(model=ModelConfig(N=N, gridsize=g), train_data_file=Path("dummy.npz"),
                         n_images=int(raw.diff3d.shape[0]))
    update_legacy_dict(p.cfg, cfg)
    if g == 1:
        # PtychoPINN's own path; its gridsize-1 groups are every pattern alone in file order.
        if not np.array_equal(group_index[:, 0], np.arange(group_index.shape[0])):
            sys.exit("recipe.py: gridsize 1 but the test file's group_index is not 0..M-1")
        container = create_ptycho_data_container(raw, cfg)
    else:
        dset = raw._generate_dataset_from_groups(group_index, N, 4)
        container = loader.load(lambda: dset, raw.probeGuess, which=None, create_split=False)
    used = np.asarray(container.nn_indices).reshape(group_index.shape[0], -1)
    if not np.array_equal(used, group_index):
        sys.exit("recipe.py: PtychoPINN's container does not hold the test file's groups")

    models = ModelManager.load_multiple_models(str(model_dir / "wts.h5"))
    model = models.get("diffraction_to_obj")
    if model is None:
        sys.exit("recipe.py: no 'diffraction_to_obj' model in the archive")
    if int(p.get("gridsize")) != g:
        sys.exit(f"recipe.py: the model was trained with gridsize {p.get('gridsize')}, not {g}")
    scale = float(p.get("intensity_scale"))
    load_s = time.time() - t_load

    t0 = time.time()
    c0 = time.process_time()
    patches = model.predict([container.X * scale, container.coords_nominal], batch_size=32, verbose=0)
    predict_s = time.time() - t0
    predict_cpu_s = time.process_time() - c0
    patches = np.asarray(patches)
    t1 = time.time()
    stitched = np.squeeze(np.asarray(reassemble_position(patches, container.global_offsets, M=a.stitch_crop_size)))
    stitch_s = time.time() - t1
    offsets = np.asarray(container.global_offsets)  # (M, 1, 2, 1): [x, y]
    centroids = offsets.reshape(offsets.shape[0], 2).astype(np.float64)
    gt = np.asarray(test_npz["objectGuess"])
    recon_al, gt_al = align_for_evaluation(stitched, gt[None, ..., None], centroids[:, [1, 0]], a.stitch_crop_size)

    np.savez(out / "prediction.npz", patches=patches[..., 0].astype(np.complex64), centroids=centroids,
             group_index=group_index)
    np.savez(out / "reconstruction.npz", reconstruction=np.asarray(recon_al).astype(np.complex64))
    np.savez(out / "ground_truth.npz", ground_truth=np.asarray(gt_al).astype(np.complex64))
    np.savez(out / "stitched.npz", stitched=stitched.astype(np.complex64))
    timing = {
        "predict_seconds": round(predict_s, 2),
        "predict_cpu_seconds": round(predict_cpu_s, 2),
        "stitch_seconds": round(stitch_s, 2),
        "load_seconds": round(load_s, 1),
        "intensity_scale": scale,
        "n_groups": int(group_index.shape[0]),
        "grouping": "test file group_index (studymake's)",
        "threads": a.threads,
        "checkout_digest": checkout_digest(pp),
    }
    tj = model_dir / "timing.json"
    if tj.is_file():
        timing["model"] = json.loads(tj.read_text())
    (out / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    if not a.no_score:
        sys.path.insert(0, str(HERE))
        import score
        s = score.score_prediction(out / "prediction.npz", Path(a.test))
        s["method"] = "ptychopinn"
        (out / "score.json").write_text(json.dumps(s, indent=1) + "\n")
        print(f"recipe.py: amplitude SSIM {s['registered']['amp_ssim']:.3f}, Pearson "
              f"{s['registered']['amp_pearson']:.3f}; phase Pearson {s['registered']['phase_pearson']:.3f}"
              f" (offset {s['offset_yx']})")
    os.chdir(out)
    import shutil
    shutil.rmtree(work)
    write_report(a.report, {"gridsize": g})
    print(f"recipe.py: predicted {group_index.shape[0]} groups in {predict_s:.1f} s")


def cmd_all(a):
    out = Path(a.output).resolve()
    a_train = argparse.Namespace(**vars(a))
    a_train.output = str(out / "model")
    a_train.report = None
    cmd_train(a_train)
    a_pred = argparse.Namespace(**vars(a))
    a_pred.model = str(out / "model")
    # predict runs in a fresh process: PtychoPINN builds its model from global state at import.
    venv_py = sys.executable
    argv = [venv_py, str(Path(__file__).resolve()), "predict", "--ptychopinn", a.ptychopinn,
            "--model", a_pred.model, "--test", a.test, "--gridsize", str(a.gridsize),
            "--output", str(out), "--threads", str(a.threads)]
    if a.no_score:
        argv.append("--no-score")
    rc = subprocess.call(argv, env=child_env(check_checkout(Path(a.ptychopinn)), a.threads))
    if rc != 0:
        sys.exit(f"recipe.py: predict failed (exit {rc})")
    import shutil
    shutil.copyfile(out / "model" / "training.log", out / "training.log")
    # The per-epoch losses where studymake's report reads a model's curves.
    hist = json.loads((out / "model" / "history.json").read_text())
    (out / "model.json").write_text(json.dumps({"history": {"epochs": hist}}, indent=1) + "\n")
    write_report(a.report, {"gridsize": a.gridsize, "seed": a.seed, "epochs": a.epochs,
                            "n_images": a.n_images, "n_filters_scale": a.n_filters_scale})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(s):
        s.add_argument("--ptychopinn", required=True, help="PtychoPINN checkout (ptycho/, ptycho/FRC, scripts/)")
        s.add_argument("--gridsize", type=int, required=True)
        s.add_argument("--output", required=True, help="output directory")
        s.add_argument("--report", help="JSON report for studymake (default $STUDYMAKE_REPORT)")
        s.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: its default)")

    def training(s):
        s.add_argument("--train", required=True, help="studymake train_data.npz")
        s.add_argument("--epochs", type=int, required=True)
        s.add_argument("--n-images", type=int, required=True,
                       help="patterns (gridsize 1) or groups (gridsize 2), PtychoPINN's --n_images")
        s.add_argument("--n-filters-scale", type=int, default=2, help="PtychoPINN's default is 2")
        s.add_argument("--nphotons", type=float, default=1e9)
        s.add_argument("--seed", type=int, default=42)
        s.add_argument("--keep-work", action="store_true", help="keep the trainer's work directory")

    s = sub.add_parser("train", help="PtychoPINN's train.py")
    common(s)
    training(s)
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("predict", help="inference and stitching as compare_models.py")
    common(s)
    s.add_argument("--model", required=True, help="directory holding wts.h5.zip")
    s.add_argument("--test", required=True, help="studymake test_data.npz")
    s.add_argument("--stitch-crop-size", type=int, default=20)
    s.add_argument("--no-score", action="store_true")
    s.set_defaults(fn=cmd_predict)

    s = sub.add_parser("all", help="train, then predict")
    common(s)
    training(s)
    s.add_argument("--test", required=True, help="studymake test_data.npz")
    s.add_argument("--no-score", action="store_true")
    s.set_defaults(fn=cmd_all)

    s = sub.add_parser("_train_child")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("argv", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_train_child)

    a = ap.parse_args()
    if a.cmd == "_train_child" and a.argv and a.argv[0] == "--":
        a.argv = a.argv[1:]
    a.fn(a)


if __name__ == "__main__":
    main()
