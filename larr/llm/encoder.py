"""The text encoder (paper eq. 10): L2-normalised linear projection of the last hidden state at the closing
special token of the text, and the saved encoder artefact that the embedding job and serving load.

With an encoder backbone (the pretrained path, :mod:`larr.llm.backbone`) the pooling is the mean of the last
hidden states over the text's tokens instead: a bidirectional model's closing token is not a summary of the
text, while the mean is what sentence encoders such as all-MiniLM-L6-v2 were trained to produce.

Artefact layout (``Encoder.save``)::

    DIR/backbone/        Hugging Face model + tokenizer (save_pretrained)
    DIR/projection.pt    state dict of the linear projection (absent: raw pooled hidden state)
    DIR/encoder.json     dims, max_length, pooling ("last closing field token" | "mean"), version (content hash)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from larr.llm.backbone import add_field_tokens, auto_model_class, closing_token_ids, is_encoder_only

CLOSING, MEAN = "last closing field token", "mean"


def pool_positions(input_ids: torch.Tensor, attention_mask: torch.Tensor, closing_ids: Sequence[int]) -> torch.Tensor:
    """Index of the last closing field token of each row; the last real token when a row has none."""
    is_close = torch.isin(input_ids, torch.tensor(list(closing_ids), device=input_ids.device)) & attention_mask.bool()
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    last_close = torch.where(is_close, positions, torch.full_like(positions, -1)).max(dim=1).values
    last_real = attention_mask.sum(dim=1) - 1
    return torch.where(last_close >= 0, last_close, last_real)


class TextEncoder(nn.Module):
    """Backbone + optional projection; ``forward`` returns L2-normalised embeddings.  ``pooling`` defaults to
    the backbone family's: the closing field token for a causal LM, the token mean for an encoder."""

    def __init__(self, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, proj_dim: int | None,
                 max_length: int = 256, field_tokens: list[str] | None = None, pooling: str | None = None):
        super().__init__()
        self.pooling = pooling or (MEAN if is_encoder_only(backbone.config) else CLOSING)
        if self.pooling not in (CLOSING, MEAN):
            raise ValueError(f"pooling {self.pooling!r}: expected {CLOSING!r} or {MEAN!r}")
        if field_tokens is not None or not closing_token_ids(tokenizer):
            add_field_tokens(backbone, tokenizer, field_tokens)  # field_tokens: the spec's (registry(spec))
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.max_length = max_length
        hidden = backbone.config.hidden_size
        self.projection = nn.Linear(hidden, proj_dim, bias=False) if proj_dim else None
        self.closing_ids = closing_token_ids(tokenizer)

    @property
    def dim(self) -> int:
        return self.projection.out_features if self.projection is not None else self.backbone.config.hidden_size

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Pad right; a truncated text keeps its last closing token at its last position so pooling is defined."""
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        full = self.tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
        for i, f in enumerate(full):
            if len(f) > self.max_length:
                closes = [t for t in f if t in set(self.closing_ids)]
                if closes:
                    ids[i, self.max_length - 1] = closes[-1]
        return {"input_ids": ids, "attention_mask": mask}

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden state at the last closing field token, or its mean over the real tokens (un-projected,
        un-normalised); the P5-style classifier puts its head here."""
        hidden = self.backbone.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == MEAN:
            w = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)
        pos = pool_positions(input_ids, attention_mask, self.closing_ids)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), pos]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.pooled(input_ids, attention_mask)
        if self.projection is not None:
            pooled = self.projection(pooled.to(self.projection.weight.dtype))
        return nn.functional.normalize(pooled.float(), dim=-1)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """float32 [n, dim], L2-normalised; batched in order of length (less padding), in inference mode,
        bf16 autocast on GPU."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        self.eval()
        device = next(self.parameters()).device
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            for i in range(0, len(texts), batch_size):
                idx = order[i:i + batch_size]
                enc = self.tokenize([texts[j] for j in idx])
                emb = self(enc["input_ids"].to(device), enc["attention_mask"].to(device))
                out[idx] = emb.float().cpu().numpy()
        return out

    # ---- artefact -------------------------------------------------------------------------------
    def save(self, out: str | Path, extra: dict[str, Any] | None = None) -> str:
        """Write the artefact; returns its version (a hash of the weights and settings)."""
        out = Path(out)
        (out / "backbone").mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(out / "backbone")
        self.tokenizer.save_pretrained(out / "backbone")
        h = hashlib.sha256()
        for f in sorted((out / "backbone").glob("*.safetensors")):
            h.update(f.read_bytes())
        if self.projection is not None:
            torch.save(self.projection.state_dict(), out / "projection.pt")
            h.update((out / "projection.pt").read_bytes())
        meta = {"dim": self.dim, "proj_dim": self.projection.out_features if self.projection is not None else None,
                "hidden_size": self.backbone.config.hidden_size, "max_length": self.max_length,
                "pooling": self.pooling, "family": "encoder" if is_encoder_only(self.backbone.config) else "causal",
                "normalised": True, **(extra or {})}
        h.update(json.dumps(meta, sort_keys=True).encode())
        meta["version"] = h.hexdigest()[:16]
        (out / "encoder.json").write_text(json.dumps(meta, indent=2) + "\n")
        return meta["version"]

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> TextEncoder:
        """Load an artefact written by :meth:`save` (local files only)."""
        path = Path(path)
        meta_path = path / "encoder.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"no encoder artefact at {path} (encoder.json missing)")
        meta = json.loads(meta_path.read_text())
        tok = AutoTokenizer.from_pretrained(path / "backbone", local_files_only=True)
        config = AutoConfig.from_pretrained(path / "backbone", local_files_only=True)
        model = auto_model_class(config).from_pretrained(path / "backbone", local_files_only=True)
        enc = cls(model, tok, meta["proj_dim"], meta["max_length"], pooling=meta.get("pooling", CLOSING))
        if meta["proj_dim"]:
            enc.projection.load_state_dict(torch.load(path / "projection.pt", map_location="cpu"))
        enc.version = meta["version"]
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return enc.to(dev)


def encoder_version(path: str | Path) -> str:
    """Version of a saved encoder without loading its weights."""
    return json.loads((Path(path) / "encoder.json").read_text())["version"]
