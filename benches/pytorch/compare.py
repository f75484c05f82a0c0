"""Tempered vs PyTorch eager on the same rows, measured in one run (see README.md).

Exports the bench's training rows with `tempered bench --export-rows`, then runs
`tempered bench --json` and `mlp_bench.py --json` in alternation, several rounds, with each
thread count and AdamW implementation asked for, and prints the medians and the ratios
Tempered / PyTorch per epoch kind. Standard library only; `--python` is the interpreter
that has torch.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tempered", default="target/release/tempered", help="the tempered binary")
    p.add_argument("--python", default=sys.executable, help="a Python with torch (default: this one)")
    p.add_argument("--pipeline", default="pipelines/fraud.toml")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10, help="epochs of each kind, both sides")
    p.add_argument("--threads", default="1,2", help="thread counts, both sides (comma-separated)")
    p.add_argument("--adamw", default="default,fused", help="PyTorch AdamW implementations to run")
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda: both sides train there (`tempered` needs a CUDA build); "
        "on cuda the thread counts are not swept (1 host thread each)",
    )
    return p.parse_args()


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    a = parse_args()
    threads = [1] if a.device != "cpu" else [int(t) for t in a.threads.split(",")]
    impls = a.adamw.split(",")
    script = os.path.join(HERE, "mlp_bench.py")
    samples = {}  # (side, threads, impl) -> [(clean, adversarial)]
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        rows = os.path.join(tmp, "rows.json")
        subprocess.run(
            [a.tempered, "bench", "--pipeline", a.pipeline, "--epochs", str(a.epochs), "--export-rows", rows],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        jobs = []
        for t in threads:
            env = dict(os.environ, RAYON_NUM_THREADS=str(t))
            cmd = [a.tempered, "bench", "--pipeline", a.pipeline, "--epochs", str(a.epochs), "--json"]
            cmd += ["--device", a.device.split(":")[0]]
            jobs.append((("Tempered", t, "-"), cmd, env))
            for impl in impls:
                cmd = [a.python, script, rows, "--threads", str(t), "--adamw", impl, "--device", a.device, "--json"]
                jobs.append((("PyTorch", t, impl), cmd, None))
        for r in range(a.rounds):
            # Reversed every other round, so that neither side always runs first.
            for key, cmd, env in jobs if r % 2 == 0 else reversed(jobs):
                loads.append(os.getloadavg()[0])
                res = run_json(cmd, env)
                samples.setdefault(key, []).append((res["clean_per_sec"], res["adversarial_per_sec"]))
                print(f"round {r + 1}: {key[0]:<8} {key[1]} thread(s) {key[2]:<7} clean {res['clean_per_sec']:>11.0f}/s  "
                      f"PGD {res['adversarial_per_sec']:>9.0f}/s", file=sys.stderr)
    torch_version = subprocess.run(
        [a.python, "-c", "import torch; print(torch.__version__)"], check=True, stdout=subprocess.PIPE, text=True
    ).stdout.strip()

    med = {k: (statistics.median(c for c, _ in v), statistics.median(p for _, p in v)) for k, v in samples.items()}
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; PyTorch {torch_version}")
    print(f"{a.pipeline}, {a.epochs} epochs of each kind per run, {a.rounds} rounds, alternating; "
          f"1-minute load average during the run: {min(loads):.1f}-{max(loads):.1f} (median {statistics.median(loads):.1f})")
    print()
    print("| side | threads | AdamW | clean samples/s (median, min-max) | PGD-10 samples/s (median, min-max) |")
    print("|---|---|---|---|---|")
    for k, v in samples.items():
        c = [x for x, _ in v]
        p = [x for _, x in v]
        print(f"| {k[0]} | {k[1]} | {k[2]} | {med[k][0]:,.0f} ({min(c):,.0f}-{max(c):,.0f}) "
              f"| {med[k][1]:,.0f} ({min(p):,.0f}-{max(p):,.0f}) |")
    print()
    print("Ratios of medians, Tempered / PyTorch (PyTorch's faster AdamW at each thread count):")
    print("| | clean | PGD-10 |")
    print("|---|---|---|")

    def best(side, kind, t=None):
        return max(v[kind] for k, v in med.items() if k[0] == side and (t is None or k[1] == t))

    for t in threads:
        print(f"| {t} thread(s) each | {best('Tempered', 0, t) / best('PyTorch', 0, t):.1f}x "
              f"| {best('Tempered', 1, t) / best('PyTorch', 1, t):.1f}x |")
    clean, pgd = best("Tempered", 0) / best("PyTorch", 0), best("Tempered", 1) / best("PyTorch", 1)
    print(f"| best of each side | {clean:.1f}x | {pgd:.1f}x |")
    print()
    print(f"Targets (best of each side): clean >= 2x: {'met' if clean >= 2 else 'NOT met'} ({clean:.1f}x); "
          f"PGD-10 >= 1.5x: {'met' if pgd >= 1.5 else 'NOT met'} ({pgd:.1f}x)")


if __name__ == "__main__":
    main()
