"""Causal-LM training data: tokenised documents with the prompt masked, packed into fixed blocks.

CPT (paper 3.1) takes the loss on the target segments only: tokens whose text
starts before ``prompt_chars`` (name + location) get label -100.  Short
documents are packed end to end, separated by EOS, into ``block_size`` blocks so
no compute is spent on padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

IGNORE = -100


def tokenize_documents(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                       prompt_chars: Sequence[int] | None = None, max_length: int = 1024
                       ) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per document, EOS appended; labels are -100 on BOS and on prompt tokens."""
    enc = tokenizer(list(texts), return_offsets_mapping=True, add_special_tokens=True, truncation=True,
                    max_length=max_length - 1)
    out = []
    for i, (ids, offsets) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], strict=True)):
        boundary = prompt_chars[i] if prompt_chars is not None else 0
        labels = [IGNORE if (tok == tokenizer.bos_token_id and j == 0) or start < boundary else tok
                  for j, (tok, (start, _end)) in enumerate(zip(ids, offsets, strict=True))]
        out.append((list(ids) + [tokenizer.eos_token_id], labels + [tokenizer.eos_token_id]))
    return out


def pack(docs: Sequence[tuple[list[int], list[int]]], block_size: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Concatenate documents and cut into ``block_size`` blocks; the last block is padded (labels -100)."""
    ids: list[int] = []
    labels: list[int] = []
    for d_ids, d_labels in docs:
        ids += d_ids
        labels += d_labels
    n = max(1, -(-len(ids) // block_size))
    pad = n * block_size - len(ids)
    attn = [1] * len(ids) + [0] * pad
    ids += [pad_id] * pad
    labels += [IGNORE] * pad
    shape = (n, block_size)
    return {"input_ids": torch.tensor(ids).view(shape), "labels": torch.tensor(labels).view(shape),
            "attention_mask": torch.tensor(attn).view(shape)}


class BlockDataset(torch.utils.data.Dataset):
    """Packed blocks as a map-style dataset for the Hugging Face Trainer."""

    def __init__(self, blocks: dict[str, torch.Tensor]):
        self.blocks = blocks

    def __len__(self) -> int:
        return self.blocks["input_ids"].shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.blocks.items()}


@torch.inference_mode()
def target_loss(model: torch.nn.Module, docs: Sequence[tuple[list[int], list[int]]], batch_size: int = 16,
                pad_id: int = 0) -> float:
    """Mean causal-LM loss per target token over unpacked documents (the held-out CPT metric)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(docs), batch_size):
        chunk = docs[i:i + batch_size]
        width = max(len(d[0]) for d in chunk)
        ids = torch.full((len(chunk), width), pad_id)
        labels = torch.full((len(chunk), width), IGNORE)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, (d_ids, d_labels) in enumerate(chunk):
            ids[j, :len(d_ids)] = torch.tensor(d_ids)
            labels[j, :len(d_labels)] = torch.tensor(d_labels)
            attn[j, :len(d_ids)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits.float()
        shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(device)
        loss = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]),
                                                 shift_labels.reshape(-1), ignore_index=IGNORE, reduction="sum")
        total += float(loss)
        count += int((shift_labels != IGNORE).sum())
    return total / max(1, count)
