"""Tempered's word-CNN (nn/src/model/word_cnn.rs) in numpy, for inference only: the same
weights and the same probabilities (to float rounding) as the engine, so that TextAttack can
attack exactly the model Tempered's own attacks are measured on.

Reads a run's `checkpoints/clean.safetensors` and `checkpoints/tokenizer.json`."""
import json
import struct

import numpy as np

PAD, UNK = 0, 1


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        # A copy: matmul on a read-only view of the file's bytes is two orders slower.
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(t["shape"]).copy()
    return out


class WordCnn:
    def __init__(self, checkpoints, widths=(3, 4, 5), max_words=64):
        w = load_safetensors(f"{checkpoints}/clean.safetensors")
        self.table = w["embedding.weight"]
        self.convs = [(k, w[f"conv{k}.weight"], w[f"conv{k}.bias"]) for k in widths]
        self.out_w, self.out_b = w["out.weight"], w["out.bias"]
        with open(f"{checkpoints}/tokenizer.json") as f:
            self.vocab = json.load(f)["model"]["vocab"]
        self.max_words = max_words
        self.min_len = max(widths)

    def ids(self, text):
        # Whitespace words; unknown ones, and a literal "[PAD]", read as [UNK].
        ids = [self.vocab.get(t, UNK) for t in text.split()[: self.max_words]]
        return [UNK if i == PAD else i for i in ids]

    def probs(self, texts):
        texts = list(texts)
        parts = [self._probs(texts[s : s + 256]) for s in range(0, len(texts), 256)]
        return np.concatenate(parts) if parts else np.zeros((0, 2), np.float32)

    def _probs(self, texts):
        ids = [self.ids(t) for t in texts]
        lens = np.array([len(i) for i in ids])
        width = max(int(lens.max()), self.min_len)
        x = np.full((len(texts), width), PAD, np.int64)
        for r, i in enumerate(ids):
            x[r, : len(i)] = i
        e = self.table[x]
        features = []
        for k, weight, bias in self.convs:
            t = width - k + 1
            windows = np.concatenate([e[:, j : j + t, :] for j in range(k)], axis=2)
            h = windows @ weight
            # Only windows that start inside the text count (a short text: the one at 0).
            valid = np.maximum(lens - k, 0) + 1
            h[np.arange(t)[None, :] >= valid[:, None]] = -np.inf
            features.append(np.maximum(h.max(axis=1) + bias, 0))
        logits = np.concatenate(features, axis=1) @ self.out_w + self.out_b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)
