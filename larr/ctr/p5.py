"""The P5-style baseline: the LLM in the loop, fine-tuned to classify an impression's whole text.

P5 (Geng et al. 2022) turns recommendation into a language task for a T5 model.  Our counterpart keeps the
same information LARR gets, but hands it to the LLM as *one* sequence per impression -- the N rendered field
texts of the impression (user profile, home, recent orders, the POI's dishes, region, time slot, day type,
weather, temperature band, out-of-area flag) concatenated in ``features.scene_fields`` order -- and trains the
whole backbone plus a two-logit head (CTR, CVR; CTCVR = pCTR x pCVR as for every other model here).

This is also the serving-efficiency baseline: scoring needs one LLM forward pass per candidate at request
time, where LARR needs N table lookups and a 1-layer transformer over N vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from larr.llm.backbone import load_backbone
from larr.llm.encoder import TextEncoder


class SceneTexts:
    """Scene-value key -> rendered text (from the ``scene_vocab`` job); an impression's text is its N field
    texts joined in order.  A key missing from the vocabulary is an error: the job outputs disagree."""

    def __init__(self, vocab_dir: Path):
        df = pd.read_parquet(vocab_dir, columns=["key", "text"]).drop_duplicates("key")
        self.text = pd.Series(df["text"].to_numpy(), index=df["key"].to_numpy())

    def impressions(self, keys: np.ndarray) -> list[str]:
        """[n, N] scene keys -> n impression texts."""
        flat = self.text.reindex(keys.reshape(-1))
        if flat.isna().any():
            missing = int(flat.isna().sum())
            raise KeyError(f"scene_keys: {missing} of {flat.size} keys have no text in scene_vocab; re-run "
                           "`larr spark scene_vocab` and `larr spark ctr_samples` on the same raw data")
        parts = flat.to_numpy().reshape(keys.shape)
        return ["".join(row) for row in parts]


class P5Classifier(nn.Module):
    """Backbone + a linear head on the pooled last hidden state -> (CTR logit, CVR logit)."""

    def __init__(self, backbone_dir: Path, max_length: int = 256):
        super().__init__()
        model, tok = load_backbone(backbone_dir)
        self.encoder = TextEncoder(model, tok, proj_dim=None, max_length=max_length)
        self.head = nn.Linear(model.config.hidden_size, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.head(self.encoder.pooled(input_ids, attention_mask).float())
        ctr, cvr = logits[:, 0], logits[:, 1]
        p_ctr = torch.sigmoid(ctr)
        return {"ctr_logit": ctr, "cvr_logit": cvr, "p_ctr": p_ctr, "p_ctcvr": p_ctr * torch.sigmoid(cvr)}

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.encoder.tokenize(texts)

    @torch.inference_mode()
    def score(self, texts: Sequence[str], batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """(pCTR, pCTCVR) per text, batched in length order (less padding)."""
        self.eval()
        p_ctr = np.zeros(len(texts), np.float32)
        p_ctcvr = np.zeros(len(texts), np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        device = self.head.weight.device
        for i in range(0, len(texts), batch_size):
            idx = order[i:i + batch_size]
            enc = self.tokenize([texts[j] for j in idx])
            out = self(enc["input_ids"].to(device), enc["attention_mask"].to(device))
            p_ctr[idx] = out["p_ctr"].float().cpu().numpy()
            p_ctcvr[idx] = out["p_ctcvr"].float().cpu().numpy()
        return p_ctr, p_ctcvr
