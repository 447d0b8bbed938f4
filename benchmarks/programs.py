"""Training iterations of two real-program shapes: disttorch against PyTorch CPU, each in its own process.

- ``dcgan``: one DCGAN iteration as the PyTorch example does it (nz 100, ngf = ndf = 64, 3x64x64 images,
  batch 64; BatchNorm, ReLU/LeakyReLU, BCELoss, two Adam optimizers): discriminator on a real and a fake
  batch, then the generator through the discriminator.
- ``gpt``: one training step of a nanoGPT-style character model (4 layers, 128-d embedding, 4 heads, context
  128, batch 32, vocabulary 65, exact GELU, LayerNorm, causal ``scaled_dot_product_attention``, AdamW).

Each round starts one fresh process per library (``--lib``), alternating disttorch and PyTorch, so each runs
with its own default thread pools as a user gets them and neither disturbs the other; the table reports the
median milliseconds per iteration over rounds and the ratio disttorch / PyTorch. ``--threads 1`` pins every
pool (OMP, OpenBLAS, MKL, PyTorch's intra-op) to one thread for the one-thread figures.

Usage::

    python benchmarks/programs.py                 # both models, default threads (needs torch: the bench extra)
    python benchmarks/programs.py --threads 1
    python benchmarks/programs.py --only dcgan --rounds 3
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"dcgan": 1.5, "gpt": 1.5}


# ---- the models, written once against ``lib`` (disttorch or torch) ----------------------------------------
def dcgan(lib, batch: int = 64, nz: int = 100, ngf: int = 64, ndf: int = 64, nc: int = 3):
    nn = lib.nn
    G = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())
    D = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    crit = nn.BCELoss()
    opt_d = lib.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = lib.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = lib.rand(batch, nc, 64, 64) * 2 - 1
    ones, zeros = lib.ones(batch), lib.zeros(batch)

    def step():
        D.zero_grad()
        err_real = crit(D(real).view(-1), ones)
        err_real.backward()
        fake = G(lib.randn(batch, nz, 1, 1))
        err_fake = crit(D(fake.detach()).view(-1), zeros)
        err_fake.backward()
        opt_d.step()
        G.zero_grad()
        err_g = crit(D(fake).view(-1), ones)
        err_g.backward()
        opt_g.step()
        return err_g.item()
    return step


def gpt(lib, batch: int = 32, block: int = 128, vocab: int = 65, n_layer: int = 4, n_embd: int = 128,
        n_head: int = 4):
    nn, F = lib.nn, lib.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
            self.c_attn, self.c_proj = nn.Linear(n_embd, 3 * n_embd), nn.Linear(n_embd, n_embd)
            self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(self.ln_1(x)).split(n_embd, dim=2)
            q = q.view(B, T, n_head, C // n_head).transpose(1, 2)
            k = k.view(B, T, n_head, C // n_head).transpose(1, 2)
            v = v.view(B, T, n_head, C // n_head).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, n_embd), nn.Embedding(block, n_embd)
            self.h = nn.ModuleList([Block() for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab, bias=False)
            self.wte.weight = self.lm_head.weight  # weight tying, as nanoGPT

        def forward(self, idx, targets):
            pos = lib.arange(idx.size(1))
            x = self.wte(idx) + self.wpe(pos)
            for blk in self.h:
                x = blk(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    model = GPT()
    opt = lib.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    idx = lib.randint(0, vocab, (batch, block))
    tgt = lib.randint(0, vocab, (batch, block))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(idx, tgt)
        loss.backward()
        opt.step()
        return loss.item()
    return step


MODELS = {"dcgan": dcgan, "gpt": gpt}


# ---- one library in one process -----------------------------------------------------------------------------
def child(lib_name: str, model: str, steps: int, warmup: int) -> dict:
    if lib_name == "torch":
        import torch as lib
    else:
        sys.path.insert(0, str(ROOT))
        import disttorch as lib
    lib.manual_seed(0)
    step = MODELS[model](lib)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    if not math.isfinite(loss):
        raise SystemExit(f"{lib_name} {model}: loss is {loss}")
    return {"ms": statistics.median(times) * 1e3, "threads": lib.get_num_threads()}


def _env(threads: int | None) -> dict:
    env = dict(os.environ)
    if threads is not None:
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = str(threads)
    return env


def run_child(lib_name: str, model: str, steps: int, warmup: int, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--lib", lib_name, "--only", model, "--steps", str(steps), "--warmup", str(warmup)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(threads), check=False, timeout=1800)
    if out.returncode:
        raise SystemExit(f"{lib_name} {model} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", choices=sorted(MODELS), action="append")
    p.add_argument("--rounds", type=int, default=5, help="processes per library, alternated (median over them)")
    p.add_argument("--steps", type=int, default=5, help="timed iterations per process (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="pin every thread pool (default: each library's own)")
    p.add_argument("--lib", choices=("disttorch", "torch"), help=argparse.SUPPRESS)  # child mode
    args = p.parse_args(argv)
    names = args.only or sorted(MODELS)
    if args.lib:
        print(json.dumps(child(args.lib, names[0], args.steps, args.warmup)))
        return
    threads = "default" if args.threads is None else str(args.threads)
    print(f"ms per iteration, median of {args.rounds} processes per library (each the median of {args.steps} "
          f"steps), threads: {threads}")
    print(f"{'model':8s} {'disttorch':>10s} {'torch':>10s} {'ratio':>7s} {'target':>7s}")
    for name in names:
        d, t = [], []
        for _ in range(args.rounds):
            d.append(run_child("disttorch", name, args.steps, args.warmup, args.threads)["ms"])
            t.append(run_child("torch", name, args.steps, args.warmup, args.threads)["ms"])
        md, mt = statistics.median(d), statistics.median(t)
        print(f"{name:8s} {md:10.1f} {mt:10.1f} {md / mt:7.2f} {TARGETS[name]:7.2f}", flush=True)


if __name__ == "__main__":
    main()
