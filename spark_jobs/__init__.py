"""PySpark batch jobs: CPT corpus, contrastive pairs, scene vocabulary, CTR samples.

Each module runs under ``spark-submit spark_jobs/<job>.py --raw DIR --out DIR`` on a
cluster (with the ``larr`` package installed on the executors) and as
``larr spark <job>`` in local mode.
"""

JOBS = ("cpt_corpus", "contrastive_pairs", "scene_vocab", "ctr_samples")
