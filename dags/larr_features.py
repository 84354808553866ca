"""larr_features: the daily feature pipeline, one run per run date.

raw gate -> Spark (CPT corpus, contrastive pairs, scene vocabulary, CTR samples) -> corpus and samples gates
-> embed the new feature texts with the champion's encoder -> embeddings gate -> publish + materialize to
Feast.  Each Spark output is an asset; ``larr_training`` is scheduled on them.  Before the first model is
published there is no champion encoder: the embed task is skipped (and with it the embedding gate and the
Feast publication) until ``larr_training`` publishes one.  A failing gate fails its task with the
expectation summary in the log; nothing downstream runs and nothing reaches Feast.
"""

from __future__ import annotations

from airflow.sdk import Asset, dag, task
from larr_common import (
    EMBEDDINGS,
    FEATURE_ASSETS,
    GATE_ARGS,
    NO_CHAMPION,
    ONLINE_FEATURES,
    PIPELINE_DAG,
    larr,
    paths,
)
from larr_common import gate as quality_gate


def spark_task(job: str, outlet: Asset):
    """One Spark job as a task (each has its own retries and its own asset)."""

    @task.bash(task_id=job, outlets=[outlet])
    def run_job(params: dict | None = None, ds: str | None = None) -> str:
        p = paths(params, ds)
        return larr(params, "spark", job, "--raw", p["raw"], "--out", p["jobs"])

    return run_job()


@dag(
    dag_id="larr_features",
    schedule="@daily",
    doc_md=__doc__,
    **PIPELINE_DAG,
)
def larr_features():
    @task.bash(**GATE_ARGS)
    def raw_gate(params: dict | None = None, ds: str | None = None) -> str:
        """Raw logs against the data contract (keys, types, allowed values, freshness vs the run date)."""
        return quality_gate(params, ds, "raw", paths(params, ds)["raw"])

    @task.bash(**GATE_ARGS)
    def corpus_gate(params: dict | None = None, ds: str | None = None) -> str:
        """CPT corpus and contrastive pairs: non-empty, tokens balanced, lengths in the window, every pair kind."""
        return quality_gate(params, ds, "corpus", paths(params, ds)["jobs"])

    @task.bash(**GATE_ARGS)
    def samples_gate(params: dict | None = None, ds: str | None = None) -> str:
        """CTR samples: label rates, no test-day row in training, test-day OOV share."""
        return quality_gate(params, ds, "samples", paths(params, ds)["jobs"])

    @task.bash(skip_on_exit_code=NO_CHAMPION, outlets=[EMBEDDINGS])
    def embed(params: dict | None = None, ds: str | None = None) -> str:
        """Embed only the feature texts not embedded yet, with the champion's encoder (skipped: no champion)."""
        p = paths(params, ds)
        find = larr(params, "registry", "champion", "--registry", p["registry"], "--part", "encoder", config=False)
        embed_cmd = larr(params, "embed", "--raw", p["raw"], "--out", p["jobs"], "--features", p["features"])
        return f'encoder=$({find}) || exit $?; {embed_cmd} --encoder "$encoder"'

    @task.bash(**GATE_ARGS)
    def embeddings_gate(params: dict | None = None, ds: str | None = None) -> str:
        """Vectors: dimension, finite, unit norm, unique keys, coverage of the scene vocabulary."""
        p = paths(params, ds)
        return quality_gate(params, ds, "embeddings", p["features"], "--vocab", f"{p['jobs']}/scene_vocab")

    @task.bash(outlets=[ONLINE_FEATURES])
    def publish(params: dict | None = None, ds: str | None = None) -> str:
        """Export stats, region scene rows and vectors to the Feast repo, apply, materialize the online store."""
        p = paths(params, ds)
        return larr(params, "features", "publish", "--repo", p["repo"], "--raw", p["raw"], "--jobs", p["jobs"],
                    "--features", p["features"])

    jobs = [spark_task(job, asset) for job, asset in
            zip(("cpt_corpus", "contrastive_pairs", "scene_vocab", "ctr_samples"), FEATURE_ASSETS, strict=True)]
    raw = raw_gate()
    corpus, samples = corpus_gate(), samples_gate()
    raw >> jobs
    jobs[:2] >> corpus
    jobs[3] >> samples
    vectors = embed()
    [corpus, samples, jobs[2]] >> vectors
    vectors >> embeddings_gate() >> publish()


larr_features()
