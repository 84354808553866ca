"""``spark_jobs/embed_features.py`` is a spark-submit entry point like every other job: the script prints its
usage, refuses a missing encoder with one line, and embeds the tiny world end to end (an untrained encoder
built in seconds: the job's contract does not depend on what the encoder learned)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from larr.config import load_config
from larr.llm.backbone import build_default_model, train_tokenizer
from larr.llm.encoder import TextEncoder
from larr.spec import load_spec
from larr.text import registry
from spark_jobs import embed_features

ROOT = Path(__file__).resolve().parents[1]
CFG = load_config("tiny")


def test_the_script_entry_prints_its_usage(tmp_path: Path) -> None:
    """spark-submit runs the file as a script (not ``-m``), from anywhere."""
    r = subprocess.run([sys.executable, str(ROOT / "spark_jobs" / "embed_features.py"), "--help"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for option in ("--raw", "--out", "--encoder", "--features", "--encoder-version", "--profile", "--no-validate"):
        assert option in r.stdout, option
    missing = subprocess.run([sys.executable, str(ROOT / "spark_jobs" / "embed_features.py"), "--raw", "x"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "--out" in missing.stderr and "--encoder" in missing.stderr


def test_main_refuses_a_missing_encoder_with_one_line(spark, tiny_world: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    rc = embed_features.main(["--raw", str(tiny_world), "--out", str(tmp_path), "--profile", "tiny",
                              "--encoder", str(tmp_path / "nothing"), "--no-validate"])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("embed_features: no encoder artefact at") and "larr train contrastive" in err


def _untrained_encoder(out: Path) -> Path:
    spec = load_spec(CFG.spec)
    tok = train_tokenizer(["heavy rain at lunch", "noodle soup, hot and sour", "a quiet user near the park"] * 20,
                          vocab_size=300)
    model = build_default_model(CFG.llm.backbone, tok, seed=0)
    TextEncoder(model, tok, CFG.features.embedding_dim, 64, registry(spec).special_tokens()).save(out)
    return out


def test_main_embeds_the_tiny_world(spark, tiny_world: Path, tiny_jobs: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    jobs = tmp_path / "jobs"
    shutil.copytree(tiny_jobs / "scene_vocab", jobs / "scene_vocab")
    encoder = _untrained_encoder(tmp_path / "encoder")
    argv = ["--raw", str(tiny_world), "--out", str(jobs), "--profile", "tiny", "--encoder", str(encoder),
            "--features", str(tmp_path / "features")]
    assert embed_features.main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["job"] == "embed_features" and summary["embedded_now"] > 0
    assert summary["rows_in"] and all(v > 0 for v in summary["rows_out"].values())
    scene = pd.read_parquet(tmp_path / "features" / "scene_value_embeddings.parquet")
    assert set(scene["scene_key"]) == set(pd.read_parquet(jobs / "scene_vocab")["key"])
    assert np.stack(scene["embedding"].to_numpy()).shape[1] == CFG.features.embedding_dim
    # the encoder version pin is honoured through the script's arguments
    assert embed_features.main([*argv, "--encoder-version", "deadbeef"]) == 1
    assert "unknown encoder version 'deadbeef'" in capsys.readouterr().err


def test_worker_settings_reach_the_worker(tmp_path: Path) -> None:
    """A Python worker's first encode sets its threads (torch intra-op as given, one inter-op, no tokenizer
    Rayon pool), so W workers on W cores do not oversubscribe them; a fresh process stands in for the worker."""
    encoder = _untrained_encoder(tmp_path / "encoder")
    code = ("import json, os, sys, pandas as pd, torch\n"
            "from spark_jobs.embed_features import _embed_fn\n"
            "df = pd.DataFrame({'text_hash': [1, 2, 3], 'text': ['heavy rain', 'noodle soup', 'a quiet user']})\n"
            "out = pd.concat(list(_embed_fn(sys.argv[1], 2, 1)(iter([df]))))\n"
            "print(json.dumps({'rows': len(out), 'threads': torch.get_num_threads(),\n"
            "                  'interop': torch.get_num_interop_threads(),\n"
            "                  'tokenizers': os.environ.get('TOKENIZERS_PARALLELISM'),\n"
            "                  'omp': os.environ.get('OMP_NUM_THREADS')}))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM")}
    r = subprocess.run([sys.executable, "-c", code, str(encoder)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == {"rows": 3, "threads": 1, "interop": 1, "tokenizers": "false", "omp": "1"}
    assert "torch threads 1/1" in r.stderr  # the worker's log line says what it ran with


def test_embed_texts_matches_in_process_encoding(spark, tmp_path: Path) -> None:
    """The job's Spark path (:func:`embed_texts`, the benchmark's too) gives every text the vector of in-process
    ``TextEncoder.encode``, with one torch thread per worker when several share the machine."""
    encoder = _untrained_encoder(tmp_path / "encoder")
    texts = [f"<POI_cuisine>{'noodle soup ' * (i % 7)}{i}</POI_cuisine>" for i in range(300)]
    df = spark.createDataFrame(pd.DataFrame({"text_hash": np.arange(300, dtype="int64"), "text": texts}))
    assert embed_features.worker_threads(spark, 2) == 1 and embed_features.worker_threads(spark, 1) == 0
    got = embed_features.embed_texts(df, encoder, 16, workers=2).toPandas().sort_values("text_hash")
    assert got["text_hash"].tolist() == list(range(300))
    want = TextEncoder.load(encoder, device="cpu").encode(texts, 16)
    np.testing.assert_allclose(np.stack(got["embedding"].to_numpy()), want, atol=1e-5)
