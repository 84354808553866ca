"""Language-model training data: tokenised documents with the prompt masked, packed into fixed blocks.

CPT (paper 3.1) takes the loss on the target segments only: tokens whose text
starts before ``prompt_chars`` (name + location) get label -100.  Short
documents are packed end to end, separated by EOS, into ``block_size`` blocks so
no compute is spent on padding.  For an encoder backbone (masked LM) the same
blocks are used, and :class:`MaskedTargetCollator` picks the masked positions
among the target tokens only, so both objectives learn the same segments.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

IGNORE = -100


def tokenize_documents(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                       prompt_chars: Sequence[int] | None = None, max_length: int = 1024
                       ) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per document; labels are -100 on the framing tokens (BOS, or an encoder's
    CLS/SEP) and on prompt tokens.  A causal tokenizer's documents get EOS appended (the separator between
    packed documents); an encoder's already end with its SEP."""
    eos = tokenizer.eos_token_id
    enc = tokenizer(list(texts), return_offsets_mapping=True, add_special_tokens=True, truncation=True,
                    max_length=max_length - (1 if eos is not None else 0))
    first = {tokenizer.bos_token_id, tokenizer.cls_token_id} - {None}
    sep = tokenizer.sep_token_id if eos is None else None
    out = []
    for i, (ids, offsets) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], strict=True)):
        boundary = prompt_chars[i] if prompt_chars is not None else 0
        labels = [IGNORE if (tok in first and j == 0) or (sep is not None and tok == sep) or start < boundary else tok
                  for j, (tok, (start, _end)) in enumerate(zip(ids, offsets, strict=True))]
        if eos is None:
            out.append((list(ids), labels))
        else:
            out.append((list(ids) + [eos], labels + [eos]))
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


def mask_targets(input_ids: torch.Tensor, labels: torch.Tensor, mask_id: int, vocab_size: int, probability: float,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT-style masking restricted to target tokens (``labels != -100``): each is chosen with ``probability``;
    a chosen token becomes the mask token 80% of the time, a random token 10%, itself 10%.  Returns (inputs,
    labels) with labels -100 everywhere but the chosen positions.  At least one target per row is chosen, so no
    row trains on nothing."""
    candidates = labels != IGNORE
    chosen = (torch.rand(labels.shape, generator=generator) < probability) & candidates
    # a row with targets but none chosen: take its first target (short documents would otherwise teach nothing)
    empty = ~chosen.any(dim=1) & candidates.any(dim=1)
    if empty.any():
        first = candidates.float().argmax(dim=1)
        chosen[empty, first[empty]] = True
    inputs = input_ids.clone()
    roll = torch.rand(labels.shape, generator=generator)
    inputs[chosen & (roll < 0.8)] = mask_id
    random_pos = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[random_pos] = torch.randint(vocab_size, labels.shape, generator=generator)[random_pos]
    return inputs, torch.where(chosen, labels, torch.full_like(labels, IGNORE))


class MaskedTargetCollator:
    """Stacks packed blocks and masks their target tokens (:func:`mask_targets`) for masked-LM CPT; drawn from
    torch's global generator, which the Trainer seeds."""

    def __init__(self, mask_id: int, vocab_size: int, probability: float = 0.15):
        if mask_id is None:
            raise ValueError("the tokenizer has no mask token: a masked-LM CPT needs one")
        self.mask_id, self.vocab_size, self.probability = mask_id, vocab_size, probability

    def __call__(self, features: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        batch = {k: torch.stack([f[k] for f in features]) for k in features[0]}
        batch["input_ids"], batch["labels"] = mask_targets(batch["input_ids"], batch["labels"], self.mask_id,
                                                           self.vocab_size, self.probability)
        return batch


@torch.inference_mode()
def masked_target_loss(model: torch.nn.Module, docs: Sequence[tuple[list[int], list[int]]], mask_id: int,
                       probability: float = 0.15, batch_size: int = 16, pad_id: int = 0, seed: int = 0) -> float:
    """Mean masked-LM loss per masked target token over unpacked documents, with a fixed masking draw (``seed``),
    so the before and after figures of CPT score the same positions."""
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    vocab = model.get_input_embeddings().weight.shape[0]
    total, count = 0.0, 0
    for i in range(0, len(docs), batch_size):
        ids, labels, attn = _padded(docs[i:i + batch_size], pad_id)
        inputs, targets = mask_targets(ids, labels, mask_id, vocab, probability, g)
        logits = model(input_ids=inputs.to(device), attention_mask=attn.to(device)).logits.float()
        targets = targets.to(device)
        total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                         ignore_index=IGNORE, reduction="sum"))
        count += int((targets != IGNORE).sum())
    return total / max(1, count)


def _padded(chunk: Sequence[tuple[list[int], list[int]]], pad_id: int
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(d[0]) for d in chunk)
    ids = torch.full((len(chunk), width), pad_id)
    labels = torch.full((len(chunk), width), IGNORE)
    attn = torch.zeros((len(chunk), width), dtype=torch.long)
    for j, (d_ids, d_labels) in enumerate(chunk):
        ids[j, :len(d_ids)] = torch.tensor(d_ids)
        labels[j, :len(d_labels)] = torch.tensor(d_labels)
        attn[j, :len(d_ids)] = 1
    return ids, labels, attn


@torch.inference_mode()
def target_loss(model: torch.nn.Module, docs: Sequence[tuple[list[int], list[int]]], batch_size: int = 16,
                pad_id: int = 0) -> float:
    """Mean causal-LM loss per target token over unpacked documents (the held-out CPT metric)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(docs), batch_size):
        ids, labels, attn = _padded(docs[i:i + batch_size], pad_id)
        logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits.float()
        shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(device)
        loss = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]),
                                                 shift_labels.reshape(-1), ignore_index=IGNORE, reduction="sum")
        total += float(loss)
        count += int((shift_labels != IGNORE).sum())
    return total / max(1, count)
