"""A character-level language model (LSTM or Transformer) trained on a text file, printing samples.

    python examples/char_lm.py                        # trains on the repository's README.md
    python examples/char_lm.py my_text.txt --model transformer --steps 1500

Every ``--sample-every`` steps it prints the loss and a sample generated from the model (temperature
sampling from the softmax over characters). Written against PyTorch's API: only the imports say disttorch.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

import disttorch as torch
import disttorch.nn.functional as F
from disttorch import nn

DEFAULT_TEXT = Path(__file__).resolve().parent.parent / "README.md"


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, hidden: int = 256, layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = nn.LSTM(hidden, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.rnn(self.embed(x), state)
        return self.head(out), state


class CharTransformer(nn.Module):
    def __init__(self, vocab: int, hidden: int = 128, layers: int = 2, heads: int = 4, context: int = 128,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.context = context
        self.embed = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(context, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        x = x[:, -self.context:]
        t = x.shape[1]
        h = self.embed(x) + self.pos(torch.arange(t))
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        return self.head(self.encoder(h, mask=mask, is_causal=True)), None


@torch.no_grad()
def sample(model, stoi: dict, itos: list, prompt: str, length: int, temperature: float) -> str:
    model.eval()
    ids = [stoi[c] for c in prompt if c in stoi] or [0]
    x = torch.tensor([ids])
    out, state = [], None
    recurrent = isinstance(model, CharLSTM)
    for _ in range(length):
        logits, state = model(x, state)
        probs = F.softmax(logits[0, -1] / temperature, dim=-1)
        nxt = int(torch.multinomial(probs, 1).item())
        out.append(itos[nxt])
        ids.append(nxt)
        x = torch.tensor([[nxt]]) if recurrent else torch.tensor([ids])
    model.train()
    return prompt + "".join(out)


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("text", nargs="?", default=str(DEFAULT_TEXT), help="training text file (default: README.md)")
    p.add_argument("--model", choices=["lstm", "transformer"], default="lstm")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--sample-every", type=int, default=200)
    p.add_argument("--sample-len", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    text = Path(args.text).read_text(encoding="utf-8", errors="replace")
    if len(text) < args.seq_len + 2:
        raise SystemExit(f"{args.text}: need at least {args.seq_len + 2} characters, got {len(text)}")
    itos = sorted(set(text))
    stoi = {c: i for i, c in enumerate(itos)}
    data = np.array([stoi[c] for c in text], dtype=np.int64)
    if args.model == "lstm":
        model = CharLSTM(len(itos), args.hidden, args.layers)
    else:
        model = CharTransformer(len(itos), args.hidden, args.layers, context=args.seq_len)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    print(f"{args.text}: {len(text)} characters, vocabulary {len(itos)}; {args.model} with "
          f"{sum(p.numel() for p in model.parameters())} parameters")
    t0, loss_avg = time.perf_counter(), math.log(len(itos))
    for step in range(1, args.steps + 1):
        starts = rng.integers(0, len(data) - args.seq_len - 1, args.batch_size)
        idx = starts[:, None] + np.arange(args.seq_len + 1)
        chunk = torch.from_numpy(data[idx])
        x, y = chunk[:, :-1], chunk[:, 1:]
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, len(itos)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_avg = 0.95 * loss_avg + 0.05 * loss.item()
        if step % args.sample_every == 0 or step == args.steps:
            prompt = text[:8] if text[:8].strip() else "The "
            print(f"step {step}  loss {loss_avg:.3f}  ({time.perf_counter() - t0:.0f} s)")
            print("  sample: " + sample(model, stoi, itos, prompt, args.sample_len, args.temperature).replace(
                "\n", "\n          "), flush=True)
    return loss_avg


if __name__ == "__main__":
    main()
