"""Suite ``corpus``: the CPT corpus and the contrastive pairs the LLM stages read (newest ``ds=`` of each).

What stages 1 and 2 assume of their text, checked before a GPU hour is spent on it:

* ``cpt_corpus``: at least one document, one per item (unique item key), non-empty text, every field token
  closed in order (:meth:`larr.text.TextRegistry.is_balanced`), the prompt boundary inside the text, split
  ``train``/``heldout`` with some training documents, and every document's token length inside the CPT
  context window ``llm.backbone.max_length`` (a longer document is truncated, so its target is cut);
* ``contrastive_pairs``: at least one pair, every pair kind of the spec present and no other, each
  (kind, anchor, positive) once, both texts balanced and inside ``llm.contrastive.max_length`` tokens.

Token lengths need the tokenizer the stages will use.  It is ``--tokenizer`` (a ``tokenizer.json`` or its
folder), else ``llm.backbone.path``'s; without either the default backbone's tokenizer does not exist yet
(``larr train base`` trains it on this very text), so the suite trains one by the same recipe
(:func:`larr.llm.backbone.train_tokenizer`: byte-level BPE of ``llm.backbone.vocab_size`` on the corpus and
the anchors, field tokens stripped), with the ``tokenizers`` library alone so the gate does not load torch.
Field tokens count one token each (they are added as special tokens); BOS and EOS add two.  On the tiny and
small worlds these counts equal the trained base tokenizer's to within a token.
"""

from __future__ import annotations

import re
from pathlib import Path

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.expectations.expectation import Expectation

from larr.config import LarrConfig
from larr.quality import Inputs
from larr.quality.gx import Batch, newest_partition
from larr.spec import Spec
from larr.text import registry

CORPUS, PAIRS = "cpt_corpus", "contrastive_pairs"  # the Spark jobs' output folders
SPLITS = ["train", "heldout"]
_TAG = re.compile(r"</?[A-Za-z]+(?:_[A-Za-z]+)?>")
_BASE_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def batches(path: Path, cfg: LarrConfig, spec: Spec, inputs: Inputs) -> list[Batch]:
    """The newest CPT corpus and pairs under the jobs folder ``path``, with token lengths and balance."""
    jobs = Path(path)
    for name in (CORPUS, PAIRS):
        if not (jobs / name).is_dir():
            raise FileNotFoundError(f"corpus suite: {jobs} has no {name}/ (PATH is the Spark job outputs folder; "
                                    f"run `larr spark {name}`)")
    c_part, p_part = newest_partition(jobs / CORPUS), newest_partition(jobs / PAIRS)
    key = spec.item_key
    corpus = pd.read_parquet(c_part, columns=[key, "prompt", "text", "prompt_chars", "split"])
    pairs = pd.read_parquet(p_part, columns=["kind", "anchor_id", "positive_id", "anchor_text", "positive_text",
                                             "split"])
    reg = registry(spec)
    count, how = _token_counter(cfg, inputs, spec, corpus["text"].tolist() + pairs["anchor_text"].tolist())
    corpus["text.balanced"] = [reg.is_balanced(t) for t in corpus["text"]]
    corpus["text.tokens"] = count(corpus["text"].tolist())
    corpus["prompt_chars.inside_text"] = ((corpus["prompt_chars"] > 0)
                                          & (corpus["prompt_chars"] <= corpus["text"].str.len()))
    corpus = corpus.drop(columns=["prompt"]).set_index(pd.Index(corpus[key], name=key))
    for side in ("anchor", "positive"):
        pairs[f"{side}_text.balanced"] = [reg.is_balanced(t) for t in pairs[f"{side}_text"]]
        pairs[f"{side}_text.tokens"] = count(pairs[f"{side}_text"].tolist())
    pairs = pairs.set_index(pd.MultiIndex.from_frame(pairs[["kind", "anchor_id", "positive_id"]]))
    note_c = f"{CORPUS}/{c_part.name}: token lengths by {how}"
    note_p = f"{PAIRS}/{p_part.name}: token lengths by {how}"
    return [Batch(CORPUS, corpus, _corpus_expectations(cfg, key), note_c),
            Batch(PAIRS, pairs, _pair_expectations(cfg, spec), note_p)]


def _corpus_expectations(cfg: LarrConfig, key: str) -> list[Expectation]:
    window = cfg.llm.backbone.max_length
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, notes="the CPT corpus is not empty"),
        gxe.ExpectColumnValuesToBeUnique(column=key, notes="one document per item"),
        gxe.ExpectColumnValuesToNotBeNull(column="text"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1, notes="no empty document"),
        gxe.ExpectColumnValuesToBeInSet(column="text.balanced", value_set=[True],
                                        notes="every field token is closed, in order, and known to the spec"),
        gxe.ExpectColumnValuesToBeInSet(column="prompt_chars.inside_text", value_set=[True],
                                        notes="the prompt/target boundary lies inside the document"),
        gxe.ExpectColumnValuesToBeBetween(column="text.tokens", min_value=1, max_value=window,
                                          notes="tokens per document (BOS and EOS included) fit the CPT "
                                                "context window llm.backbone.max_length; longer ones are "
                                                "truncated and lose their target"),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=SPLITS),
        gxe.ExpectColumnDistinctValuesToContainSet(column="split", value_set=["train"],
                                                   notes="some documents to train on"),
    ]


def _pair_expectations(cfg: LarrConfig, spec: Spec) -> list[Expectation]:
    window = cfg.llm.contrastive.max_length
    kinds = list(spec.pairs)
    ex: list[Expectation] = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, notes="the contrastive pairs are not empty"),
        gxe.ExpectColumnDistinctValuesToContainSet(column="kind", value_set=kinds,
                                                   notes="every pair kind of the spec has pairs"),
        gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=kinds, notes="no pair kind the spec lacks"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["kind", "anchor_id", "positive_id"],
                                            notes="pairs are deduplicated"),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=SPLITS),
    ]
    for side in ("anchor", "positive"):
        ex += [
            gxe.ExpectColumnValueLengthsToBeBetween(column=f"{side}_text", min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column=f"{side}_text.balanced", value_set=[True],
                                            notes="every field token is closed, in order, and known"),
            gxe.ExpectColumnValuesToBeBetween(column=f"{side}_text.tokens", min_value=1, max_value=window,
                                              notes="tokens per text fit llm.contrastive.max_length"),
        ]
    return ex


# ----------------------------------------------------------------------------------------- tokens
def _token_counter(cfg: LarrConfig, inputs: Inputs, spec: Spec, train_texts: list[str]):
    """A function texts -> token counts (field tokens one each, plus BOS/EOS), and how it was obtained."""
    from tokenizers import Tokenizer

    source = inputs.tokenizer or (Path(cfg.llm.backbone.path) if cfg.llm.backbone.path else None)
    if source is not None:
        file = source / "tokenizer.json" if source.is_dir() else source
        if not file.exists():
            raise FileNotFoundError(f"corpus suite: no tokenizer.json at {source} (--tokenizer or "
                                    "llm.backbone.path)")
        tok = Tokenizer.from_file(str(file))
        how = f"the tokenizer {file}"
    else:
        tok = _default_tokenizer([_TAG.sub(" ", t) for t in train_texts], cfg.llm.backbone.vocab_size)
        how = (f"the default backbone's recipe (byte-level BPE, vocab {cfg.llm.backbone.vocab_size}, trained on "
               "this corpus; pass --tokenizer for the real one)")
    tok.add_special_tokens(registry(spec).special_tokens())

    def count(texts: list[str]) -> np.ndarray:
        enc = tok.encode_batch(texts, add_special_tokens=False)
        return np.array([len(e.ids) + 2 for e in enc], dtype=np.int64)

    return count, how


def _default_tokenizer(texts: list[str], vocab_size: int):
    """:func:`larr.llm.backbone.train_tokenizer`'s BPE, without the transformers wrapper (and its import)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_BASE_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok

