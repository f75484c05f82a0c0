"""PyTorch eager reference for `tempered bench` on a tabular pipeline (see README.md).

Trains the MLP that `tempered bench --export-rows` wrote out, on the same rows, with the
same optimiser and batch size, for a number of clean epochs and then as many PGD-AT epochs,
and prints the training throughput of each kind in samples per second. What it does per
batch mirrors the Rust side (core/src/bench.rs, nn/src/train/mod.rs and the `tabular`
plugin's `pgd`), so that the two rates measure the same arithmetic:

- the model standardises raw rows itself, (x - mean) * inv_std, then Linear-ReLU layers;
- a clean step is mean cross-entropy on the batch, one AdamW step;
- a PGD-AT step first attacks every row of the batch (L-inf ball of `epsilon` standardised
  units, i.e. `epsilon * std` raw units per column, cut to the column's bounds; a uniform
  random start in that box; `steps` signed-gradient steps of `step_size` standardised units,
  default 2.5 * epsilon / steps; integer columns rounded inside their box before every
  model call), then takes one AdamW step on (1 - w) * CE(clean) + w * CE(adversarial) over
  the clean and adversarial rows stacked into one forward pass.

Only the batch loops are timed (not loading, shuffling or the model's construction).
"""

import argparse
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rows", help="the JSON file `tempered bench --export-rows FILE` wrote")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of each kind (default: the file's)")
    p.add_argument(
        "--adamw",
        choices=["default", "foreach", "fused"],
        default="default",
        help="torch.optim.AdamW's implementation: its default (a per-parameter loop on CPU), "
        "foreach=True, or fused=True (one kernel for all parameters)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda[:N]: where the model, the rows and the attack live; "
        "the batch order is drawn on the CPU either way, the random starts on the device",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p.parse_args()


def bound(v):
    """A bound as the loader writes it: a number, or "inf" / "-inf"."""
    return float(v)


class Mlp(nn.Module):
    """The Tempered MLP: standardisation inside, Linear-ReLU-...-Linear."""

    def __init__(self, init):
        super().__init__()
        t = {e["name"]: torch.tensor(e["data"], dtype=torch.float32).reshape(e["shape"]) for e in init}
        self.register_buffer("mean", t["standardize.mean"])
        self.register_buffer("inv_std", t["standardize.inv_std"])
        layers = []
        i = 0
        while f"layer{i}.weight" in t:
            w, b = t[f"layer{i}.weight"], t[f"layer{i}.bias"]
            lin = nn.Linear(w.shape[0], w.shape[1])
            with torch.no_grad():
                # Tempered stores weights [in, out]; nn.Linear wants [out, in].
                lin.weight.copy_(w.t())
                lin.bias.copy_(b)
            layers += [lin, nn.ReLU()]
            i += 1
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, x):
        return self.net((x - self.mean) * self.inv_std)


class Pgd:
    """The `tabular` plugin's L-inf PGD on the true label's cross-entropy."""

    def __init__(self, features, params, constraints):
        norm = params.get("norm", "linf")
        if norm != "linf" or params.get("restarts", 1) != 1 or params.get("discrete", False):
            sys.exit(f"this reference implements L-inf PGD, one restart, no discrete moves; got {params}")
        if constraints.get("relations") or constraints.get("transitions") or any(
            d != "any" for d in constraints.get("directions", [])
        ):
            sys.exit("this reference implements bounds and integer columns only; the table has constraints")
        self.eps = float(params["epsilon"])
        self.steps = int(params.get("steps", 10))
        step = params.get("step_size")
        self.step = float(step) if step is not None else 2.5 * self.eps / max(self.steps, 1)
        self.random_start = bool(params.get("random_start", True))
        scale = np.array([f["std"] for f in features], dtype=np.float32)
        lower = np.array([bound(f["lower"]) for f in features], dtype=np.float32)
        upper = np.array([bound(f["upper"]) for f in features], dtype=np.float32)
        # The columns gradient steps move (`Columns::new` in plugins/tabular/src/shared.rs).
        moving = np.array(
            [
                f["mutable"]
                and f["group"] is None
                and f["kind"] in ("continuous", "integer")
                and math.isfinite(f["std"])
                and f["std"] > 0
                and bound(f["lower"]) <= bound(f["upper"])
                for f in features
            ]
        )
        integer = np.array([f["kind"] == "integer" for f in features]) & moving
        self.scale = torch.from_numpy(np.where(moving, scale, 0.0).astype(np.float32))
        self.lower = torch.from_numpy(lower)
        self.upper = torch.from_numpy(upper)
        self.moving = torch.from_numpy(moving)
        self.integer = torch.from_numpy(integer)
        self.any_integer = bool(integer.any())
        self.unit = self.step * self.scale

    def to(self, device):
        for name in ("scale", "lower", "upper", "moving", "integer", "unit"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def boxes(self, x):
        """Each value's interval: its bounds and the ball, integral ends for integers;
        the original value alone for columns that do not move or an empty interval."""
        r = self.eps * self.scale
        lo = torch.maximum(self.lower, x - r)
        hi = torch.minimum(self.upper, x + r)
        lo = torch.where(self.integer, torch.ceil(lo), lo)
        hi = torch.where(self.integer, torch.floor(hi), hi)
        keep = (lo > hi) | ~self.moving
        return torch.where(keep, x, lo), torch.where(keep, x, hi)

    def materialize(self, z, lo, hi):
        if not self.any_integer:
            return z
        return torch.where(self.integer, torch.clamp(torch.round(z), lo, hi), z)

    def __call__(self, model, x, y, gen):
        lo, hi = self.boxes(x)
        z = x
        if self.random_start and self.eps > 0:
            u = torch.rand(x.shape, generator=gen, device=x.device) * (2 * self.eps) - self.eps
            z = torch.clamp(x + u * self.scale, lo, hi)
        xa = self.materialize(z, lo, hi)
        for _ in range(self.steps):
            xa.requires_grad_(True)
            loss = F.cross_entropy(model(xa), y, reduction="sum")
            (g,) = torch.autograd.grad(loss, xa)
            g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
            z = torch.clamp(z + self.unit * torch.sign(g), lo, hi)
            xa = self.materialize(z, lo, hi)
        return xa.detach()


def synchronize(device):
    """Waits for the device's queued work, so that a clock read measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epoch(model, opt, x, y, batch, gen, dgen, attack=None, w=0.0):
    """One epoch; returns (seconds in the batch loop, mean training loss). `gen` (CPU)
    draws the batch order, `dgen` (on the rows' device) the attack's random starts."""
    order = torch.randperm(len(y), generator=gen).to(x.device)
    total, batches = 0.0, 0
    synchronize(x.device)
    start = time.perf_counter()
    for b in range(0, len(y), batch):
        idx = order[b : b + batch]
        xb, yb = x[idx], y[idx]
        if attack is None:
            loss = F.cross_entropy(model(xb), yb)
        else:
            xa = attack(model, xb, yb, dgen)
            logits = model(torch.cat([xb, xa]))
            n = len(yb)
            loss = (1 - w) * F.cross_entropy(logits[:n], yb) + w * F.cross_entropy(logits[n:], yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
        batches += 1
    synchronize(x.device)
    return time.perf_counter() - start, total / max(batches, 1)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    with open(args.rows) as f:
        spec = json.load(f)
    if spec.get("format") != "tempered-bench-rows/1":
        sys.exit(f"{args.rows}: not a file of `tempered bench --export-rows`")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: this PyTorch sees no CUDA device")
    width = spec["width"]
    x = torch.from_numpy(np.asarray(spec["train"]["x"], dtype=np.float32).reshape(-1, width)).to(device)
    y = torch.from_numpy(np.asarray(spec["train"]["y"], dtype=np.int64)).to(device)
    epochs = args.epochs if args.epochs is not None else spec["epochs"]
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"])
    dgen = gen if device.type == "cpu" else torch.Generator(device=device).manual_seed(spec["seed"])
    model = Mlp(spec["init"]).to(device)
    o = spec["optimizer"]
    impl = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[args.adamw]
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=o["lr"],
        betas=(o["beta1"], o["beta2"]),
        eps=o["eps"],
        weight_decay=o["weight_decay"],
        **impl,
    )
    attack = Pgd(spec["features"], spec["attack"]["params"], spec["constraints"]).to(device)
    batch, w = spec["batch_size"], spec["adversarial_weight"]
    clean = [epoch(model, opt, x, y, batch, gen, dgen) for _ in range(epochs)]
    adv = [epoch(model, opt, x, y, batch, gen, dgen, attack, w) for _ in range(epochs)]
    n = len(y)
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "adamw": args.adamw,
        "train_examples": n,
        "width": width,
        "params": sum(p.numel() for p in model.parameters()),
        "batch_size": batch,
        "epochs": epochs,
        "steps": attack.steps,
        "epsilon": attack.eps,
        "step_size": attack.step,
        "adversarial_weight": w,
        "clean_per_sec": n * epochs / sum(s for s, _ in clean),
        "adversarial_per_sec": n * epochs / sum(s for s, _ in adv),
        "clean_loss_last": clean[-1][1],
        "adversarial_loss_last": adv[-1][1],
    }
    result["ratio_clean_over_adversarial"] = result["clean_per_sec"] / result["adversarial_per_sec"]
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"PyTorch {result['torch']} eager · {result['params']} parameters · {width} values per example · "
        f"batch {batch} · {n} train examples · {result['threads']} thread(s) · AdamW {args.adamw}"
    )
    print(f"  clean epoch        {result['clean_per_sec']:>10.1f} examples/s  (last loss {clean[-1][1]:.4f})")
    print(f"  PGD-{attack.steps} epoch       {result['adversarial_per_sec']:>10.1f} examples/s  (last loss {adv[-1][1]:.4f})")
    print(f"  ratio clean/PGD    {result['ratio_clean_over_adversarial']:>10.2f}")


if __name__ == "__main__":
    main()
