#!/usr/bin/env bash
# Fast FGSM hardening against PGD-AT on pipelines/fraud.toml, over several seeds (each seed
# draws another split and another clean model): the robust accuracy against the evaluated
# `pgd` on the test split after each. The variants are fraud.toml with only [harden] changed
# and [tradeoff] removed. See BENCHMARKS.md, "Fast FGSM hardening and its guard".
#
#   cargo build --release && benches/fgsm-seeds.sh 1 2 3 4 5 6 7 8 9 10
#
# EPOCHS, PATIENCE and STOP (default 15, 5 and objective, fraud.toml's) set both strategies'
# hardening epochs, early-stopping patience and `early_stopping`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/tempered"
epochs=${EPOCHS:-15}
patience=${PATIENCE:-5}
stop=${STOP:-objective}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

variant() { # strategy seed
    awk -v strategy="$1" -v seed="$2" -v root="$root" -v epochs="$epochs" -v patience="$patience" -v stop="$stop" '
        /^\[harden\]/ {
            print "[harden]\nstrategy = \"" strategy "\"\nattack = \"pgd\"\nepochs = " epochs "\nlr = 1e-3\npatience = " patience "\n"
            skip = 1; next
        }
        /^\[tradeoff\]/ { skip = 1; next }
        /^\[/ { skip = 0 }
        skip { next }
        /^seed = / { print "seed = " seed; next }
        { sub(/^path = "data\//, "path = \"" root "/data/"); print }
    ' "$root/pipelines/fraud.toml"
}

kept() { # out dir: the hardening epoch kept, of those run
    awk -F'|' '/^\| hardened/ { n = $3 + 0; if ($3 ~ /kept/) k = n } END { print k " of " n }' "$1/report.md"
}

robust() { # log
    grep "pgd (after)" "$1" | grep -o "robust accuracy [0-9.]*%" | grep -o "[0-9.]*%"
}

echo "| seed | PGD-AT (epoch kept) | FGSM, guard on (epoch kept) | gap (points) |"
echo "|---|---|---|---|"
for seed in "${@:-42}"; do
    for strategy in pgd fgsm; do
        variant "$strategy" "$seed" > "$work/$strategy.toml"
        "$bin" run "$work/$strategy.toml" --out "$work/out-$strategy-$seed" > "$work/$strategy-$seed.log" 2>&1
    done
    pgd=$(robust "$work/pgd-$seed.log")
    fgsm=$(robust "$work/fgsm-$seed.log")
    gap=$(awk -v a="${pgd%\%}" -v b="${fgsm%\%}" 'BEGIN { printf "%.1f", a - b }')
    echo "| $seed | $pgd ($(kept "$work/out-pgd-$seed")) | $fgsm ($(kept "$work/out-fgsm-$seed")) | $gap |"
done
