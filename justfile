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

# Start a new attack plugin from the example: just new-plugin my-attack
new-plugin name:
    mkdir -p plugins/{{name}}/src
    sed 's/tempered-example-jitter/tempered-{{name}}/; s|../../plugins/api|../api|' examples/plugin-jitter/Cargo.toml > plugins/{{name}}/Cargo.toml
    sed 's/name: "jitter"/name: "{{name}}"/' examples/plugin-jitter/src/lib.rs > plugins/{{name}}/src/lib.rs
    @echo "plugins/{{name}} created: add it to [workspace] members in Cargo.toml, then see docs/writing-plugins.md"
