#!/usr/bin/env bash
# The GPU checks of docs/gpu.md, prepared here and run on a lent GPU machine that has the
# NVIDIA driver, nvcc, PyTorch and NVIDIA's CUDA libraries, but no Rust toolchain and no
# network.
#
#   scripts/device-check.sh pack              # here: the CUDA build + plugins → one archive
#   scripts/device-check.sh run               # there, in the repository root, with $OUT set
#   scripts/device-check.sh compare A B [--exact] [--tol T] [--slack N]   # two metrics.json
#
# pack   needs `just cuda-build` first (target-cuda/release/tempered and the plugin .so
#        files). It writes target-cuda/device-bundle.tar.xz (a stripped `tempered`, the
#        first-party plugins beside it, a MANIFEST with their sha256 and the commit), which
#        git ignores: carry it to the GPU machine explicitly (the remote `run` tool's
#        `carry: ["target-cuda/device-bundle.tar.xz"]`; at most 64 MiB).
# run    unpacks the archive, points the loader at the CUDA libraries PyTorch brings, then,
#        most important first and within DEVICE_CHECK_BUDGET seconds (default 480):
#        nvidia-smi; each of fraud-small, speech-small, sentiment-small with --device cuda
#        and --device cpu, their metrics.json compared; a second cuda run of each that must
#        repeat the first exactly; `tempered bench` on cuda and cpu; the PyTorch reference
#        bench if it can run on cuda (each command at most DEVICE_CHECK_RUN_LIMIT seconds,
#        default 150). Everything lands in $OUT; the summary is
#        $OUT/summary.txt. Exit status 0 only if every check that ran passed.
# compare  what `run` uses: the quality numbers (accuracies, PR-AUC, success rates, robust
#        accuracies) of two runs of one pipeline may differ by --tol (default 0.05) or by
#        --slack examples (default 3) of the count they are a rate over, whichever is more;
#        the structure (attacks, phases, sweeps) must match; every other differing number
#        is listed, not judged. CPU and GPU runs add in different orders (gemm against
#        cuBLAS, the hand-written CPU paths against autograd), so after a few epochs their
#        numbers differ in the last examples, not in kind. --exact: everything but the
#        timings must be identical (a seeded rerun on the same device).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bundle_default="target-cuda/device-bundle.tar.xz"
pipelines=(fraud-small speech-small sentiment-small)

compare() {
    python3 - "$@" <<'PY'
import argparse, json, sys

p = argparse.ArgumentParser(prog="device-check.sh compare")
p.add_argument("a")
p.add_argument("b")
p.add_argument("--exact", action="store_true")
p.add_argument("--tol", type=float, default=0.05)
p.add_argument("--slack", type=int, default=3)
a = p.parse_args()

def load(path):
    with open(path) as f:
        return json.load(f)

def strip(v):
    # Timings are the only numbers two runs with the same seed may differ in.
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k != "seconds"}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v

A, B = strip(load(a.a)), strip(load(a.b))

def leaves(v, path=""):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from leaves(x, f"{path}.{k}" if path else k)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from leaves(x, f"{path}[{i}]")
    else:
        yield path, v

if a.exact:
    la, lb = dict(leaves(A)), dict(leaves(B))
    diff = sorted(k for k in la.keys() | lb.keys() if la.get(k, "<missing>") != lb.get(k, "<missing>"))
    for k in diff[:40]:
        print(f"  differs: {k}: {la.get(k, '<missing>')!r} vs {lb.get(k, '<missing>')!r}")
    print(f"exact: {'identical' if not diff else f'{len(diff)} value(s) differ'} ({a.a} vs {a.b})")
    sys.exit(1 if diff else 0)

failures, notes = [], []

def num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)

def check(what, x, y, count):
    # A rate over `count` examples: `slack` examples either way, or `tol`, whichever is more.
    if x is None or y is None:
        if (x is None) != (y is None):
            failures.append(f"{what}: {x} vs {y}")
        return
    allowed = max(a.tol, a.slack / count) if count else a.tol
    # A rate of exactly `slack` examples' difference must pass despite float rounding.
    d = abs(x - y) - 1e-9
    line = f"{what}: {x:.4f} vs {y:.4f} (|Δ| {abs(x - y):.4f}, allowed {allowed:.4f})"
    if d > allowed:
        failures.append(line)
    elif d > 0:
        notes.append(line)

RATES = ("accuracy", "pr_auc", "recall_at_1pct_fpr", "precision", "recall", "false_positive_rate", "f1")
for phase in ("before", "after"):
    ca, cb = (A.get("clean") or {}).get(phase), (B.get("clean") or {}).get(phase)
    if (ca is None) != (cb is None):
        failures.append(f"clean.{phase}: present in one run only")
        continue
    if ca is None:
        continue
    for k in RATES:
        if k in ca or k in cb:
            check(f"clean.{phase}.{k}", ca.get(k), cb.get(k), ca.get("examples"))

def key(x):
    return (x.get("id"), x.get("phase"))

atk_a = {key(x): x for x in A.get("attacks", [])}
atk_b = {key(x): x for x in B.get("attacks", [])}
if atk_a.keys() != atk_b.keys():
    failures.append(f"attacks differ: {sorted(map(str, atk_a.keys() ^ atk_b.keys()))}")
for k in sorted(atk_a.keys() & atk_b.keys(), key=str):
    x, y = atk_a[k], atk_b[k]
    name = f"attack {k[0]} ({k[1]})"
    check(f"{name} success_rate", x.get("success_rate"), y.get("success_rate"), x.get("attacked"))
    check(f"{name} robust_accuracy", x.get("robust_accuracy"), y.get("robust_accuracy"), x.get("examples"))
    if x.get("constraint_violations") or y.get("constraint_violations"):
        failures.append(f"{name}: constraint violations {x.get('constraint_violations')} / {y.get('constraint_violations')}")

def skey(s):
    return (s.get("attack_id"), s.get("phase"), s.get("budget"))

sw_a = {skey(s): s for s in A.get("sweeps", [])}
sw_b = {skey(s): s for s in B.get("sweeps", [])}
if sw_a.keys() != sw_b.keys():
    failures.append(f"sweeps differ: {sorted(map(str, sw_a.keys() ^ sw_b.keys()))}")
for k in sorted(sw_a.keys() & sw_b.keys(), key=str):
    attacked = (atk_a.get((k[0], k[1])) or {}).get("attacked")
    examples = (atk_a.get((k[0], k[1])) or {}).get("examples")
    check(f"sweep {k} success_rate", sw_a[k].get("success_rate"), sw_b[k].get("success_rate"), attacked)
    check(f"sweep {k} robust_accuracy", sw_a[k].get("robust_accuracy"), sw_b[k].get("robust_accuracy"), examples)

# Everything else (queries, perturbation sizes, counts) is shown when it differs, not judged.
la, lb = dict(leaves(A)), dict(leaves(B))
judged = {"success_rate", "robust_accuracy"} | set(RATES)
for k in sorted(la.keys() & lb.keys()):
    if la[k] != lb[k] and k.rsplit(".", 1)[-1] not in judged:
        notes.append(f"(not judged) {k}: {la[k]!r} vs {lb[k]!r}")

for line in notes:
    print("  " + line)
for line in failures:
    print("  FAIL " + line)
verdict = "within tolerance" if not failures else f"{len(failures)} number(s) out of tolerance"
print(f"tolerance: {verdict} (tol {a.tol}, slack {a.slack} examples; {a.a} vs {a.b})")
sys.exit(1 if failures else 0)
PY
}

pack() {
    local out=${1:-$root/$bundle_default}
    local rel=${CARGO_TARGET_DIR:-$root/target-cuda}/release
    local bin=$rel/tempered
    [ -x "$bin" ] || { echo "pack: no $bin: run \`just cuda-build\` first" >&2; return 1; }
    # A CPU-only binary would pass every CPU check and fail every cuda one, confusingly.
    if ! readelf -d "$bin" | grep -q 'libcudart\|libcublas\|libcuda\.so'; then
        echo "pack: $bin links no CUDA library: it is not a \`--features tempered-core/cuda\` build" >&2
        return 1
    fi
    local newer
    newer=$(find "$root/core/src" "$root/plugins" -name '*.rs' -newer "$bin" 2>/dev/null | head -n3)
    if [ -n "$newer" ]; then
        echo "pack: warning: sources changed since $bin was built (\`just cuda-build\` again?):" >&2
        echo "$newer" | sed 's/^/    /' >&2
    fi
    local plugins=()
    for name in tabular audio text; do
        local so=$rel/libtempered_$name.so
        [ -f "$so" ] || so=$root/target/release/libtempered_$name.so
        [ -f "$so" ] || { echo "pack: no libtempered_$name.so in $rel or target/release" >&2; return 1; }
        plugins+=("$so")
    done
    local stage
    stage=$(mktemp -d)
    pack_into "$stage" "$out" "$bin" "${plugins[@]}"
    local status=$?
    rm -rf "$stage"
    return $status
}

pack_into() { # stage out bin plugins...
    local stage=$1 out=$2
    shift 2
    cp "$@" "$stage/"
    strip "$stage/tempered" "$stage"/*.so
    {
        echo "commit $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
        echo "packed $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        (cd "$stage" && sha256sum tempered ./*.so | sed 's|\./||')
    } >"$stage/MANIFEST"
    mkdir -p "$(dirname "$out")"
    (cd "$stage" && tar -cf - MANIFEST tempered ./*.so) | xz -9 -T0 >"$out.partial" || {
        rm -f "$out.partial"
        return 1
    }
    mv "$out.partial" "$out"
    local size
    size=$(stat -c %s "$out")
    echo "packed $out: $((size / 1024 / 1024)) MiB ($(xz -l "$out" | awk 'NR==2 { print $5, $6 }') unpacked)"
    cat "$stage/MANIFEST"
    if [ "$size" -gt $((60 * 1024 * 1024)) ]; then
        echo "pack: the archive is over 60 MiB; the remote tool carries 64 MiB in all" >&2
        return 1
    fi
}

# --- run: on the GPU machine ---------------------------------------------------------------

log() { echo "[device-check $(date -u +%H:%M:%S) +${SECONDS}s] $*" | tee -a "$OUT/summary.txt"; }
results=()
record() { # name status detail
    results+=("$(printf '%-44s %-5s %s' "$1" "$2" "$3")")
    log "$1: $2 $3"
}
left() { echo $((budget - SECONDS)); }
# Runs "$@" with a timeout that keeps `reserve` seconds of the budget for what comes after,
# and at most DEVICE_CHECK_RUN_LIMIT seconds (default 150), so one hung run cannot starve
# the checks after it.
timed() {
    local reserve=$1
    shift
    local t=$(($(left) - reserve)) cap=${DEVICE_CHECK_RUN_LIMIT:-150}
    [ "$t" -gt "$cap" ] && t=$cap
    if [ "$t" -lt 10 ]; then
        echo "skipped: out of time budget" >&2
        return 124
    fi
    timeout --kill-after=5 "$t" "$@"
}

cuda_libs() {
    # The directories of PyTorch's nvidia-* packages that hold the libraries the binary
    # loads (README, "Building for a CUDA GPU").
    python3 - <<'PY'
import glob, os, site, sys
roots = [p for p in set(site.getsitepackages() + [site.getusersitepackages()] + sys.path) if p and os.path.isdir(p)]
want = ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10"]
dirs = []
for lib in want:
    for r in roots:
        hits = glob.glob(os.path.join(r, "nvidia", "**", lib + "*"), recursive=True)
        if hits:
            d = os.path.dirname(hits[0])
            if d not in dirs:
                dirs.append(d)
            break
    else:
        print(f"missing {lib}", file=sys.stderr)
print(":".join(dirs))
PY
}

run_pipeline() { # name device out
    local name=$1 device=$2 out=$3
    timed 60 "$bin" run "pipelines/$name.toml" --device "$device" --out "$out" >"$out.log" 2>&1
}

run_all() {
    : "${OUT:?set OUT to the folder the results go to}"
    mkdir -p "$OUT"
    : >"$OUT/summary.txt"
    budget=${DEVICE_CHECK_BUDGET:-480}
    SECONDS=0
    local archive=${DEVICE_BUNDLE:-$bundle_default}
    cd "$root" || return 1

    log "nvidia-smi"
    nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv >>"$OUT/nvidia-smi.txt" 2>&1

    [ -f "$archive" ] || {
        record "unpack" FAIL "no $archive (pack it here with \`just device-pack\` and carry it)"
        return 1
    }
    local dir=${TMPDIR:-/tmp}/tempered-device
    rm -rf "$dir" && mkdir -p "$dir"
    if ! xz -dc "$archive" | tar -C "$dir" -xf -; then
        record "unpack" FAIL "$archive does not unpack"
        return 1
    fi
    if ! (cd "$dir" && tail -n +3 MANIFEST | sha256sum --check --quiet); then
        record "unpack" FAIL "checksums differ from the MANIFEST"
        return 1
    fi
    cp "$dir/MANIFEST" "$OUT/MANIFEST"
    bin=$dir/tempered
    local libs
    libs=$(cuda_libs 2>>"$OUT/summary.txt")
    export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    ldd "$bin" >"$OUT/ldd.txt" 2>&1
    if grep -q "not found" "$OUT/ldd.txt"; then
        record "libraries" FAIL "$(grep 'not found' "$OUT/ldd.txt" | tr -s ' \t\n' ' ')"
        return 1
    fi
    record "unpack + libraries" ok "$(head -n1 "$dir/MANIFEST")"
    "$bin" plugins >"$OUT/plugins.txt" 2>&1

    # The three pipelines on cuda and cpu, compared; first the pairs, then the reruns, so
    # that a short budget still gets every modality once.
    mkdir -p "$OUT/runs" "$OUT/compare"
    local name dev
    for name in "${pipelines[@]}"; do
        for dev in cuda cpu; do
            if run_pipeline "$name" "$dev" "$OUT/runs/$name-$dev"; then
                record "$name --device $dev" ok "$(tail -n1 "$OUT/runs/$name-$dev.log")"
            else
                record "$name --device $dev" FAIL "exit $? (see runs/$name-$dev.log)"
            fi
        done
        if [ -f "$OUT/runs/$name-cuda/metrics.json" ] && [ -f "$OUT/runs/$name-cpu/metrics.json" ]; then
            if compare "$OUT/runs/$name-cuda/metrics.json" "$OUT/runs/$name-cpu/metrics.json" \
                >"$OUT/compare/$name-cuda-vs-cpu.txt" 2>&1; then
                record "$name cuda vs cpu" ok "$(tail -n1 "$OUT/compare/$name-cuda-vs-cpu.txt")"
            else
                record "$name cuda vs cpu" FAIL "$(tail -n1 "$OUT/compare/$name-cuda-vs-cpu.txt")"
            fi
        fi
    done
    for name in "${pipelines[@]}"; do
        [ -f "$OUT/runs/$name-cuda/metrics.json" ] || continue
        if run_pipeline "$name" cuda "$OUT/runs/$name-cuda-again"; then
            if compare "$OUT/runs/$name-cuda/metrics.json" "$OUT/runs/$name-cuda-again/metrics.json" --exact \
                >"$OUT/compare/$name-cuda-rerun.txt" 2>&1; then
                record "$name cuda rerun repeats" ok "$(tail -n1 "$OUT/compare/$name-cuda-rerun.txt")"
            else
                record "$name cuda rerun repeats" FAIL "$(tail -n1 "$OUT/compare/$name-cuda-rerun.txt")"
            fi
        else
            record "$name cuda rerun" FAIL "exit $? (see runs/$name-cuda-again.log)"
        fi
    done

    # tempered bench: --device where the binary has it, else a copy of the pipeline with
    # `device = "cuda"` under [pipeline] (in pipelines/, so its paths resolve as the
    # original's do; removed afterwards).
    mkdir -p "$OUT/bench"
    local has_device=0
    "$bin" bench --help 2>/dev/null | grep -q -- '--device' && has_device=1
    for name in fraud speech-small; do
        for dev in cuda cpu; do
            local file=pipelines/$name.toml args=()
            if [ "$has_device" = 1 ]; then
                args=(--device "$dev")
            else
                file=pipelines/.device-check-$name-$dev.toml
                awk -v dev="$dev" '{ print } /^\[pipeline\]/ { print "device = \"" dev "\"" }' \
                    "pipelines/$name.toml" >"$file"
            fi
            if timed 30 "$bin" bench --pipeline "$file" --epochs 2 --json "${args[@]}" \
                >"$OUT/bench/$name-$dev.json" 2>"$OUT/bench/$name-$dev.log"; then
                record "bench $name ($dev)" ok "$(tail -c 300 "$OUT/bench/$name-$dev.json")"
            else
                record "bench $name ($dev)" FAIL "exit $? (see bench/$name-$dev.log)"
            fi
            [ "$has_device" = 1 ] || rm -f "$file"
        done
    done

    # The PyTorch reference (benches/pytorch) on the same rows, when it can be told a device.
    if python3 benches/pytorch/mlp_bench.py --help 2>/dev/null | grep -q -- '--device'; then
        if timed 5 "$bin" bench --pipeline pipelines/fraud.toml --epochs 2 --export-rows "$OUT/bench/rows.json" \
            >/dev/null 2>&1 &&
            timed 5 python3 benches/pytorch/mlp_bench.py "$OUT/bench/rows.json" --device cuda --epochs 2 --json \
                >"$OUT/bench/pytorch-cuda.json" 2>"$OUT/bench/pytorch-cuda.log"; then
            record "pytorch reference (cuda)" ok "$(tail -c 300 "$OUT/bench/pytorch-cuda.json")"
        else
            record "pytorch reference (cuda)" FAIL "see bench/pytorch-cuda.log"
        fi
    else
        record "pytorch reference (cuda)" skip "benches/pytorch/mlp_bench.py has no --device"
    fi

    {
        echo
        echo "== device-check summary (${SECONDS}s of ${budget}s) =="
        printf '%s\n' "${results[@]}"
    } | tee -a "$OUT/summary.txt"
    ! printf '%s\n' "${results[@]}" | grep -q ' FAIL '
}

case "${1:-}" in
pack)
    shift
    pack "$@"
    ;;
run) run_all ;;
compare)
    shift
    compare "$@"
    ;;
*)
    sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
    ;;
esac
