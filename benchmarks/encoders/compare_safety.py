"""The crisis net's meaning layer on another sentence encoder: fitted the same way, read on the dev splits.

    python benchmarks/encoders/compare_safety.py out/mpnet-q8e16.onnx mpnet/all-mpnet-base-v2/tokenizer.json
    python benchmarks/encoders/compare_safety.py --gguf nomic-embed-text-v1.5.f16.gguf --prefix "classification: "
    python benchmarks/encoders/compare_safety.py --gguf nomic….gguf --prefix "classification: " --with-minilm 0.5

Fits the semantic layer on the training corpus with the given encoder
(mean pooling, as MiniLM's), exactly as ``python -m
voice_journal.companion.safety.train`` does, then reports the whole net on
the dev split and on the hard dev split at several false-alarm rates (the
one constant that trades recall for false alarms). The frozen split is
never read. Nothing is written: the shipped model stays as it is.
Without arguments it runs on the project's own MiniLM, for comparison.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import copy
import os

import numpy as np

from voice_journal.companion.safety import corpus, rules, train
from voice_journal.companion.safety.levels import LEVELS
from voice_journal.companion.safety.net import SafetyNet

RATES = (0.02, 0.03, 0.05, 0.08)


def onnx_encoder(model: str, tokenizer: str, max_tokens: int = 384):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer)
    tok.enable_truncation(max_tokens)
    tok.enable_padding()
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = 2, 1, 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}

    def embed(texts: list[str]) -> np.ndarray:
        enc = tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], np.int64)
        mask = np.array([e.attention_mask for e in enc], np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        h = session.run(None, feeds)[0]
        v = (h * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    return embed


def gguf_encoder(model: str, prefix: str = "", threads: int = 2, template: str | None = None):
    """An embedding GGUF run by llama.cpp in-process (xllamacpp), pooled as its metadata says.

    nomic-embed-text-v1.5 wants a task prefix ("classification: ") on every
    text. llama.cpp answers one text at a time here: about 0.1 s a
    sentence on 2 busy cores, so a fit takes half an hour; ``--cache``
    keeps the vectors for the next run.

    With ``template`` (a chat model, such as the companion's own), each text
    is put into it where it says ``{}`` and the model's last hidden state is
    the vector: the state it would answer the template's question from (a
    linear probe on a chat model, not a sentence encoder).
    """
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path, params.embedding = model, True
    if template:
        params.pooling_type = xlc.llama_pooling_type.LLAMA_POOLING_TYPE_LAST
    params.verbosity = -1
    params.cpuparams.n_threads, params.n_ctx, params.n_batch, params.n_ubatch = threads, 8192, 2048, 2048
    params.cpuparams_batch.n_threads = threads
    server = xlc.Server(params)

    def embed(texts: list[str]) -> np.ndarray:
        # A turn longer than one batch of tokens cannot be embedded whole; the net's
        # sentence windows carry such turns anyway.
        shaped = [template.replace("{}", t[:4000]) if template else prefix + t[:4000] for t in texts]
        answer = server.handle_embeddings({"input": shaped, "model": "encoder"})
        v = np.array([d["embedding"] for d in sorted(answer["data"], key=lambda d: d["index"])], np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    return embed


def cached(embed, path: str | None = None):
    """Each text embedded once, in batches of 32: the fit reads the corpus many times.

    With ``path``, the vectors are also kept in that .npz between runs (one
    file per encoder: the file does not say which encoder wrote it). It is
    written once, at exit: the dev splits are read a phrase at a time.
    """
    seen: dict[str, np.ndarray] = {}
    if path and os.path.exists(path):
        with np.load(path) as kept:
            seen.update(zip(kept["texts"].tolist(), kept["vectors"]))
    if path:
        atexit.register(lambda: seen and np.savez(path, texts=np.array(list(seen)), vectors=np.stack(list(seen.values()))))

    def lookup(texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in seen]
        for i in range(0, len(new), 32):
            seen.update(zip(new[i : i + 32], embed(new[i : i + 32])))
        return np.stack([seen[t] for t in texts])

    return lookup


def joined(first, second, weight: float):
    """Two encoders read as one: unit vectors side by side, scaled so cosine = w·cos₁ + (1-w)·cos₂.

    The regression then sees both encoders' features, and the nearest
    phrases are those near in both meanings at once.
    """
    a, b = np.sqrt(weight), np.sqrt(1.0 - weight)

    def embed(texts: list[str]) -> np.ndarray:
        return np.hstack([a * first(texts), b * second(texts)]).astype(np.float32)

    return embed


def called_crisis(net: SafetyNet, phrases) -> str:
    by = collections.defaultdict(list)
    for p in phrases:
        by[p.level].append(net.assess(p.text).level == "crisis")
    return " · ".join(f"{level} {sum(v)}/{len(v)} ({100 * sum(v) / len(v):.1f}%)" for level, v in sorted(by.items()))


def matched(net: SafetyNet) -> None:
    """Recall where the dev split's hard negatives cross a given rate: fair to an encoder that saw the corpus.

    Cross-validated thresholds assume the encoder never saw the training
    phrases; a fine-tuned one has, so its out-of-fold scores flatter it.
    Here the crisis threshold is read off the dev split's own hard
    negatives instead (the word list's crises always count), and the same
    threshold is applied to the hard dev split.
    """
    def scored(phrases):
        return [(p, 2.0 if rules.assess(p.text).crisis else net.scores(p.text).crisis) for p in phrases]

    def share(rows, t, level):
        hits = [s >= t for p, s in rows if p.level == level and p.category != train.ORDINARY]
        return f"{100 * sum(hits) / len(hits):.1f}%"

    dev, hard = scored(corpus.dev()), scored(corpus.dev_hard())
    negatives = sorted((s for p, s in dev if p.level == "none" and p.category != train.ORDINARY), reverse=True)
    for rate in RATES:
        t = negatives[int(rate * len(negatives))] + 1e-9
        print(f"dev false alarms {rate:.2f}: dev crises {share(dev, t, 'crisis')}, concerns {share(dev, t, 'concern')}"
              f" | hard dev called crisis: crises {share(hard, t, 'crisis')}, concerns {share(hard, t, 'concern')},"
              f" look-alikes {share(hard, t, 'none')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", help="an ONNX encoder (default: the project's MiniLM)")
    ap.add_argument("tokenizer", nargs="?", help="its tokenizer.json")
    ap.add_argument("--gguf", help="an embedding GGUF run by llama.cpp instead (e.g. nomic-embed-text-v1.5)")
    ap.add_argument("--prefix", default="", help="put before every text (nomic: 'classification: ')")
    ap.add_argument("--template", help="a chat model's prompt with {} for the text: its last hidden state is the vector")
    ap.add_argument("--cache", help="keep the vectors in this .npz between runs (one file per encoder)")
    ap.add_argument("--with-minilm", type=float, metavar="W",
                    help="join the project's MiniLM to the encoder, weighted W (0..1) in every cosine")
    ap.add_argument("--minilm-cache", help="--cache for MiniLM's vectors when joined")
    ap.add_argument("--matched", action="store_true",
                    help="thresholds read off the dev split's false alarms (for an encoder fine-tuned on the corpus)")
    args = ap.parse_args()
    if args.gguf:
        embed = cached(gguf_encoder(args.gguf, args.prefix, template=args.template), args.cache)
    elif args.model:
        embed = cached(onnx_encoder(args.model, args.tokenizer), args.cache)
    else:
        from voice_journal.store.embedding import Embedder

        embed = cached(Embedder.load().embed, args.cache)
    if args.with_minilm is not None:
        from voice_journal.store.embedding import Embedder

        embed = joined(cached(Embedder.load().embed, args.minilm_cache), embed, args.with_minilm)
    fitted = train.fit_corpus(corpus.training(), embed)
    lv = np.array([LEVELS.index(p.level) for p in fitted.phrases])
    if args.matched:
        return matched(SafetyNet(embed, fitted.model))
    hard = np.array([p.category != train.ORDINARY for p in fitted.phrases])
    for rate in RATES:
        train.FALSE_ALARMS = rate
        model = copy.copy(fitted.model)
        model.thresholds = train.choose_thresholds(fitted.oof[hard], fitted.risk[hard], lv[hard])
        net = SafetyNet(embed, model)
        print(f"false alarms {rate:.2f} in cross-validation | {train.on_dev(net)}")
        print(f"{'':37s}| hard dev split, called crisis: {called_crisis(net, corpus.dev_hard())}")


if __name__ == "__main__":
    main()
