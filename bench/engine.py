#!/usr/bin/env python3
"""Engine benchmark: studymake vs GNU make vs ninja on equivalent generated studies.

Generates, for each size N, three copies of the same study (same graph, same recipe scripts,
same arguments): a Studyfile, a Makefile and a build.ninja, then times cold builds, no-op
rebuilds and a one-condition parameter change with each tool at the same -j. See README.md.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

# The recipes: tiny sh scripts with the argument conventions of fixtures/study/recipes. They
# write deterministic bytes and the `{report}` JSON that confirms the gridsize.
RECIPES = {
    "probe.sh": """#!/bin/sh
# probe.sh OUTPUT NAME
printf 'probe %s\\n' "$2" > "$1"
""",
    "hybrid.sh": """#!/bin/sh
# hybrid.sh OUTPUT AMPLITUDE PHASE
{ printf 'hybrid of\\n'; cat "$2" "$3"; } > "$1"
""",
    "object.sh": """#!/bin/sh
# object.sh OUTPUT LINES
printf 'lines object %s\\n' "$2" > "$1"
""",
    "data.sh": """#!/bin/sh
# data.sh OUTPUT REPORT GRIDSIZE SEED N PROBE OBJECT
set -e
{ printf 'dataset gridsize=%s seed=%s n=%s\\n' "$3" "$4" "$5"; cat "$6" "$7"; } > "$1"
printf '{"params": {"gridsize": %s, "seed": %s}}\\n' "$3" "$4" > "$2"
""",
    "model.sh": """#!/bin/sh
# model.sh OUTPUT REPORT GRIDSIZE SEED EPOCHS TRAIN_DATA
set -e
mkdir -p "$1"
printf 'weights gridsize=%s seed=%s epochs=%s\\n' "$3" "$4" "$5" > "$1/weights.txt"
cat "$6" > "$1/trained_on.txt"
printf '{"params": {"gridsize": %s}}\\n' "$3" > "$2"
""",
    "metrics.sh": """#!/bin/sh
# metrics.sh OUTPUT REPORT GRIDSIZE MODEL TEST_DATA
set -e
mkdir -p "$1"
{ printf 'metrics gridsize=%s\\n' "$3"; cat "$4/weights.txt" "$5"; } > "$1/metrics.txt"
printf '{"params": {"gridsize": %s}}\\n' "$3" > "$2"
""",
    "report.sh": """#!/bin/sh
# report.sh OUTPUT
mkdir -p "$1"
printf 'report\\n' > "$1/summary.md"
""",
}

N_TRAIN, N_TEST, TRAIN_SEED, TEST_SEED, EPOCHS, LINES = 4, 2, 42, 43, 3, 400
PROBES = ["idealized", "hybrid"]


def conditions(n):
    """(name, gridsize, probe) of n conditions: gridsize alternates 1, 2; probe every two."""
    out = []
    for k in range(n):
        g = 1 + k % 2
        out.append((f"gs{g}_{k:04d}", g, PROBES[(k // 2) % 2]))
    return out


def studyfile(n, seeds):
    """The Studyfile; `seeds` maps a condition name to its train_seed override."""
    s = [
        "[study]", 'name = "bench"', 'output = "out"', "",
        "[params]", f"n_train = {N_TRAIN}", f"n_test = {N_TEST}",
        f"train_seed = {TRAIN_SEED}", f"test_seed = {TEST_SEED}", f"epochs = {EPOCHS}", "",
        "[probes.idealized]", 'command = ["sh", "recipes/probe.sh", "{output}", "idealized"]',
        'output = "npy"', "",
        "[probes.experimental]",
        'command = ["sh", "recipes/probe.sh", "{output}", "experimental"]', 'output = "npy"', "",
        "[probes.hybrid]",
        'command = ["sh", "recipes/hybrid.sh", "{output}", "{input.amplitude}", "{input.phase}"]',
        'output = "npy"', 'inputs = { amplitude = "idealized", phase = "experimental" }', "",
        "[objects.lines]", 'command = ["sh", "recipes/object.sh", "{output}", "{param.lines}"]',
        'output = "npz"', f"params = {{ lines = {LINES} }}", "",
        "[recipes.train_data]",
        'command = ["sh", "recipes/data.sh", "{output}", "{report}", "{gridsize}", "{seed}", '
        '"{param.n_images}", "{input.probe}", "{input.object}"]', "",
        "[recipes.test_data]",
        'command = ["sh", "recipes/data.sh", "{output}", "{report}", "{gridsize}", "{seed}", '
        '"{param.n_images}", "{input.probe}", "{input.object}"]', "",
        "[recipes.model]",
        'command = ["sh", "recipes/model.sh", "{output}", "{report}", "{gridsize}", "{seed}", '
        '"{param.epochs}", "{input.train_data}"]', "",
        "[recipes.metrics]",
        'command = ["sh", "recipes/metrics.sh", "{output}", "{report}", "{gridsize}", '
        '"{input.model}", "{input.test_data}"]', "",
        "[recipes.report]", 'command = ["sh", "recipes/report.sh", "{output}"]', "",
    ]
    for name, g, p in conditions(n):
        s += [f"[conditions.{name}]", f"gridsize = {g}", f'probe = "{p}"']
        if name in seeds:
            s.append(f"train_seed = {seeds[name]}")
        s.append("")
    return "\n".join(s)


def makefile(n):
    """The same graph for GNU make. Directory outputs are represented by a file they contain
    (make compares mtimes, and a directory's mtime does not change when a file in it is
    rewritten). A condition's train_seed lives in params/<condition>.train_seed."""
    conds = conditions(n)
    finals = ["out/report/summary.md"]
    s = [".SUFFIXES:", "all: " + " ".join(finals), ""]
    s += ["out/idealized_probe.npy:", "\tsh recipes/probe.sh $@ idealized", ""]
    s += ["out/experimental_probe.npy:", "\tsh recipes/probe.sh $@ experimental", ""]
    s += ["out/hybrid_probe.npy: out/idealized_probe.npy out/experimental_probe.npy",
          "\tsh recipes/hybrid.sh $@ out/idealized_probe.npy out/experimental_probe.npy", ""]
    s += ["out/lines_object.npz:", f"\tsh recipes/object.sh $@ {LINES}", ""]
    report_deps = []
    for c, g, p in conds:
        probe, obj, seedf = f"out/{p}_probe.npy", "out/lines_object.npz", f"params/{c}.train_seed"
        s += [f"out/{c}/train_data.npz: {seedf} {probe} {obj}",
              f"\tsh recipes/data.sh $@ out/{c}/train_data.json {g} $$(cat {seedf}) {N_TRAIN} {probe} {obj}",
              f"out/{c}/test_data.npz: {probe} {obj}",
              f"\tsh recipes/data.sh $@ out/{c}/test_data.json {g} {TEST_SEED} {N_TEST} {probe} {obj}",
              f"out/{c}/model/weights.txt: {seedf} out/{c}/train_data.npz",
              f"\tsh recipes/model.sh out/{c}/model out/{c}/model.json {g} $$(cat {seedf}) {EPOCHS} out/{c}/train_data.npz",
              f"out/{c}/evaluation/metrics.txt: out/{c}/model/weights.txt out/{c}/test_data.npz",
              f"\tsh recipes/metrics.sh out/{c}/evaluation out/{c}/metrics.json {g} out/{c}/model out/{c}/test_data.npz",
              ""]
        report_deps += [f"out/{c}/evaluation/metrics.txt", f"out/{c}/model/weights.txt"]
    report_deps += ["out/idealized_probe.npy", "out/experimental_probe.npy", "out/hybrid_probe.npy"]
    s += ["out/report/summary.md: " + " ".join(report_deps), "\tsh recipes/report.sh out/report", ""]
    return "\n".join(s)


def ninjafile(n):
    """The same graph and commands for ninja (seed read from the same params file)."""
    conds = conditions(n)
    s = [
        "rule probe", "  command = sh recipes/probe.sh $out $name",
        "rule hybrid", "  command = sh recipes/hybrid.sh $out $in",
        "rule object", "  command = sh recipes/object.sh $out $lines",
        "rule data", "  command = sh recipes/data.sh $out $rep $g $seed $n $probe $obj",
        "rule model", "  command = sh recipes/model.sh $dir $rep $g $seed $epochs $train",
        "rule metrics", "  command = sh recipes/metrics.sh $dir $rep $g $model $test",
        "rule report", "  command = sh recipes/report.sh out/report", "",
        "build out/idealized_probe.npy: probe", "  name = idealized",
        "build out/experimental_probe.npy: probe", "  name = experimental",
        "build out/hybrid_probe.npy: hybrid out/idealized_probe.npy out/experimental_probe.npy",
        "build out/lines_object.npz: object", f"  lines = {LINES}", "",
    ]
    report_deps = []
    for c, g, p in conds:
        probe, obj, seedf = f"out/{p}_probe.npy", "out/lines_object.npz", f"params/{c}.train_seed"
        s += [f"build out/{c}/train_data.npz: data {probe} {obj} | {seedf}",
              f"  rep = out/{c}/train_data.json", f"  g = {g}", f"  seed = $$(cat {seedf})",
              f"  n = {N_TRAIN}", f"  probe = {probe}", f"  obj = {obj}",
              f"build out/{c}/test_data.npz: data {probe} {obj}",
              f"  rep = out/{c}/test_data.json", f"  g = {g}", f"  seed = {TEST_SEED}",
              f"  n = {N_TEST}", f"  probe = {probe}", f"  obj = {obj}",
              f"build out/{c}/model/weights.txt: model out/{c}/train_data.npz | {seedf}",
              f"  dir = out/{c}/model", f"  rep = out/{c}/model.json", f"  g = {g}",
              f"  seed = $$(cat {seedf})", f"  epochs = {EPOCHS}", f"  train = out/{c}/train_data.npz",
              f"build out/{c}/evaluation/metrics.txt: metrics out/{c}/model/weights.txt out/{c}/test_data.npz",
              f"  dir = out/{c}/evaluation", f"  rep = out/{c}/metrics.json", f"  g = {g}",
              f"  model = out/{c}/model", f"  test = out/{c}/test_data.npz", ""]
        report_deps += [f"out/{c}/evaluation/metrics.txt", f"out/{c}/model/weights.txt"]
    report_deps += ["out/idealized_probe.npy", "out/experimental_probe.npy", "out/hybrid_probe.npy"]
    s += ["build out/report/summary.md: report " + " ".join(report_deps),
          "default out/report/summary.md", ""]
    return "\n".join(s)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def generate(root, n):
    """Create root/{studymake,make,ninja} for n conditions."""
    for tool in ("studymake", "make", "ninja"):
        d = os.path.join(root, tool)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, "recipes"))
        for name, text in RECIPES.items():
            write(os.path.join(d, "recipes", name), text)
    write(os.path.join(root, "studymake", "Studyfile"), studyfile(n, {}))
    write(os.path.join(root, "make", "Makefile"), makefile(n))
    write(os.path.join(root, "ninja", "build.ninja"), ninjafile(n))
    for tool in ("make", "ninja"):
        os.makedirs(os.path.join(root, tool, "params"))
        for c, _, _ in conditions(n):
            write(os.path.join(root, tool, "params", f"{c}.train_seed"), f"{TRAIN_SEED}\n")


def clean(root, tool, n):
    """Remove every output (and, for studymake, its state and cache; for ninja, its log)."""
    d = os.path.join(root, tool)
    shutil.rmtree(os.path.join(d, "out"), ignore_errors=True)
    for f in (".ninja_log", ".ninja_deps"):
        if os.path.exists(os.path.join(d, f)):
            os.remove(os.path.join(d, f))
    if tool != "studymake":
        # make and ninja recipes write into place; their directories are made here, untimed
        # (studymake creates its own directories while it builds).
        for c, _, _ in conditions(n):
            os.makedirs(os.path.join(d, "out", c))


def command(tool, binary, jobs):
    if tool == "studymake":
        return [binary, "-j", str(jobs)]
    if tool == "make":
        return ["make", f"-j{jobs}"]
    return ["ninja", f"-j{jobs}"]


def run(root, tool, binary, jobs):
    """Run one build; return (seconds, number of commands it executed)."""
    d = os.path.join(root, tool)
    t0 = time.perf_counter()
    p = subprocess.run(command(tool, binary, jobs), cwd=d, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{tool} failed in {d}:\n{p.stdout[-3000:]}")
    out = p.stdout
    if tool == "studymake":
        ran = studymake_built(out)
    elif tool == "make":
        ran = sum(1 for l in out.splitlines() if l.startswith("sh recipes/"))
    else:
        ran = sum(1 for l in out.splitlines() if l.startswith("["))
    return dt, ran, out


def studymake_built(out):
    """The `N built` count from studymake's closing line (0 for `nothing to do`)."""
    m = re.search(r"^studymake: \d+ targets: (\d+) built,", out, re.M)
    return int(m.group(1)) if m else 0


def change(root, tool, n, cond, seed):
    """Set one condition's train_seed: in the Studyfile, or in its parameter file."""
    if tool == "studymake":
        write(os.path.join(root, tool, "Studyfile"), studyfile(n, {cond: seed}))
    else:
        write(os.path.join(root, tool, "params", f"{cond}.train_seed"), f"{seed}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--studymake", required=True, help="path of the studymake binary")
    ap.add_argument("--dir", required=True, help="scratch directory for the generated studies")
    ap.add_argument("--sizes", default="10,100,1000", help="numbers of conditions")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of no-op and change")
    ap.add_argument("--cold-runs", default="3,3,1",
                    help="cold builds per size (one number, or one per size)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--tools", default="studymake,ninja,make")
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    colds = [int(x) for x in a.cold_runs.split(",")]
    colds = (colds + [colds[-1]] * len(sizes))[: len(sizes)]
    tools = a.tools.split(",")
    binary = os.path.abspath(a.studymake)
    rows = []
    for n, cold_runs in zip(sizes, colds):
        root = os.path.join(os.path.abspath(a.dir), f"n{n}")
        generate(root, n)
        cond = conditions(n)[n // 2][0]
        res = {}
        for tool in tools:
            cold = []
            for _ in range(cold_runs):
                clean(root, tool, n)
                dt, ran, out = run(root, tool, binary, a.jobs)
                cold.append(dt)
            cold_ran = ran
            run(root, tool, binary, a.jobs)  # settle (untimed)
            noop = []
            for _ in range(a.runs):
                dt, ran, out = run(root, tool, binary, a.jobs)
                noop.append(dt)
                if ran != 0:
                    sys.exit(f"{tool}: a no-op run executed something:\n{out[-2000:]}")
            chg = []
            for r in range(a.runs):
                change(root, tool, n, cond, 1000 + r)
                dt, ran, out = run(root, tool, binary, a.jobs)
                chg.append(dt)
                if ran != 4:
                    sys.exit(f"{tool}: a one-condition change ran {ran} commands, expected 4 "
                             f"(train_data, model, metrics, report):\n{out[-2000:]}")
            res[tool] = dict(cold=statistics.median(cold), noop=statistics.median(noop),
                             change=statistics.median(chg), cold_ran=cold_ran,
                             cold_runs=cold_runs)
            print(f"  n={n} {tool}: cold {res[tool]['cold']*1e3:.0f} ms ({cold_ran} commands), "
                  f"no-op {res[tool]['noop']*1e3:.1f} ms, change {res[tool]['change']*1e3:.1f} ms",
                  file=sys.stderr, flush=True)
        rows.append((n, res))
    print()
    print(f"studymake engine benchmark, -j{a.jobs}, medians of {a.runs} runs "
          f"(cold: {','.join(map(str, colds))} runs per size)")
    hdr = f"{'conditions':>10} {'targets':>7} {'case':<8}" + "".join(
        f"{t:>12}" for t in tools)
    ratios = [t for t in ("ninja", "make") if t in tools and "studymake" in tools]
    hdr += "".join(f"{'sm/' + t:>10}" for t in ratios)
    print(hdr)
    for n, res in rows:
        for case in ("cold", "noop", "change"):
            line = f"{n:>10} {4 * n + 5:>7} {case:<8}" + "".join(
                f"{res[t][case] * 1e3:>9.1f} ms" for t in tools)
            line += "".join(f"{res['studymake'][case] / res[t][case]:>9.2f}x" for t in ratios)
            print(line)


if __name__ == "__main__":
    main()
