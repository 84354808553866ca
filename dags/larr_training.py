"""larr_training: LLM stages, embeddings, CTR model, evaluation and champion/challenger publication.

base backbone -> CPT -> contrastive fine-tuning -> embed the scene vocabulary with the new encoder ->
embeddings gate -> CTR training -> LLM evaluation report -> champion/challenger -> publish to Feast.

Scheduled on the feature assets of ``larr_features`` (or triggered on demand).  The GPU stages (CPT,
contrastive, CTR) run through the launch command of the config (``launch.*``: in-process, ``torchrun`` or
``deepspeed``; see training/README.md), so they start here exactly as at a shell, and they take a slot of
the ``LARR_GPU_POOL`` pool.  The new CTR model is published to the registry only if it beats the champion
on the validation day (both scored on the same day; the decision and both scores go to
``REGISTRY/decisions.jsonl``); when it loses, the offer task is skipped and so is the Feast publication.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from larr_common import (
    CHAMPION,
    CONTRASTIVE_PAIRS,
    CPT_CORPUS,
    CTR_SAMPLES,
    GATE_ARGS,
    GPU_POOL,
    KEPT,
    PIPELINE_DAG,
    SCENE_VOCAB,
    larr,
    paths,
)
from larr_common import gate as quality_gate


@dag(
    dag_id="larr_training",
    schedule=CPT_CORPUS & CONTRASTIVE_PAIRS & SCENE_VOCAB & CTR_SAMPLES,
    doc_md=__doc__,
    **PIPELINE_DAG,
)
def larr_training():
    @task.bash
    def base(params: dict | None = None, ds: str | None = None) -> str:
        """The backbone: the default small Llama built from config and pretrained here, or llm.backbone.path."""
        p = paths(params, ds)
        return larr(params, "train", "base", "--raw", p["raw"], "--jobs", p["jobs"], "--out", p["llm"])

    @task.bash(pool=GPU_POOL)
    def cpt(params: dict | None = None, ds: str | None = None) -> str:
        """Stage 1: continual pretraining on the CPT corpus (launch.cpt)."""
        p = paths(params, ds)
        return larr(params, "train", "cpt", "--raw", p["raw"], "--jobs", p["jobs"], "--out", p["llm"])

    @task.bash(pool=GPU_POOL)
    def contrastive(params: dict | None = None, ds: str | None = None) -> str:
        """Stage 2: InfoNCE fine-tuning of the CPT model into the encoder (launch.contrastive)."""
        p = paths(params, ds)
        return larr(params, "train", "contrastive", "--raw", p["raw"], "--jobs", p["jobs"], "--out", p["llm"])

    @task.bash
    def embed(params: dict | None = None, ds: str | None = None) -> str:
        """Every distinct feature text with the new encoder, into this run's own feature folder."""
        p = paths(params, ds)
        return larr(params, "embed", "--raw", p["raw"], "--out", p["jobs"], "--encoder", f"{p['llm']}/encoder",
                    "--features", p["run_features"])

    @task.bash(**GATE_ARGS)
    def embeddings_gate(params: dict | None = None, ds: str | None = None) -> str:
        p = paths(params, ds)
        return quality_gate(params, ds, "embeddings", p["run_features"], "--vocab", f"{p['jobs']}/scene_vocab")

    @task.bash(pool=GPU_POOL)
    def ctr_train(params: dict | None = None, ds: str | None = None) -> str:
        """Stage 3: the LARR CTR model on this run's vectors (launch.ctr); saves the candidate + metrics."""
        p = paths(params, ds)
        return larr(params, "ctr", "train", "--kind", "larr", "--data", p["raw"], "--jobs", p["jobs"],
                    "--features", p["run_features"], "--out", p["candidate"], "--quiet")

    @task.bash
    def report(params: dict | None = None, ds: str | None = None) -> str:
        """Evaluation report of the LLM stages (held-out CPT loss, recall@10) beside the candidate's metrics."""
        p = paths(params, ds)
        return larr(params, "train", "report", "--raw", p["raw"], "--jobs", p["jobs"], "--out", p["llm"])

    @task.bash(skip_on_exit_code=KEPT, outlets=[CHAMPION])
    def champion_challenger(params: dict | None = None, ds: str | None = None) -> str:
        """Publish the candidate to the registry only if it beats the champion on the validation day."""
        p = paths(params, ds)
        return larr(params, "registry", "offer", "--registry", p["registry"], "--candidate", p["candidate"],
                    "--data", p["raw"], "--jobs", p["jobs"], "--encoder", f"{p['llm']}/encoder",
                    "--features", p["run_features"], "--exit-code-if-kept", str(KEPT))

    @task.bash
    def publish_features(params: dict | None = None, ds: str | None = None) -> str:
        """The new champion's vectors (and the stats) into Feast: apply and materialize the online store."""
        p = paths(params, ds)
        return larr(params, "features", "publish", "--repo", p["repo"], "--raw", p["raw"], "--jobs", p["jobs"],
                    "--features", p["run_features"])

    base() >> cpt() >> contrastive() >> embed() >> embeddings_gate() >> ctr_train() >> report() \
        >> champion_challenger() >> publish_features()


larr_training()
