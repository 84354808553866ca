"""Champion/challenger on real trained models: a worse challenger is kept out, a better one is published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import NO_CHAMPION
from cli.main import main as larr_main
from larr import registry as reg

KEPT = 4


def _train(world: Path, jobs: Path, out: Path, *overrides: str) -> dict:
    args = ["ctr", "train", "--profile", "tiny", "--kind", "ple", "--data", str(world), "--jobs", str(jobs),
            "--out", str(out), "--quiet", "--set", "ctr.epochs=2"]
    for o in overrides:
        args += ["--set", o]
    assert larr_main(args) == 0
    return json.loads((out / "metrics.json").read_text())


def _offer(registry: Path, candidate: Path, world: Path, jobs: Path) -> int:
    return larr_main(["registry", "offer", "--profile", "tiny", "--registry", str(registry), "--candidate",
                      str(candidate), "--data", str(world), "--jobs", str(jobs), "--exit-code-if-kept", str(KEPT)])


@pytest.fixture(scope="module")
def candidates(tiny_world: Path, tiny_jobs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("candidates")
    # "weak": a learning rate so small the weights barely move (validation AUC ~0.5); "good": the profile's.
    weak = _train(tiny_world, tiny_jobs, root / "weak", "ctr.lr=1e-9")
    good = _train(tiny_world, tiny_jobs, root / "good")
    assert good["valid_ctr_auc"] > weak["valid_ctr_auc"] + 0.02, (good["valid_ctr_auc"], weak["valid_ctr_auc"])
    return {"weak": root / "weak", "good": root / "good"}


def test_better_challenger_is_published_worse_is_not(candidates: dict[str, Path], tiny_world: Path,
                                                     tiny_jobs: Path, tmp_path: Path, capsys) -> None:
    registry = tmp_path / "registry"
    assert larr_main(["registry", "champion", "--registry", str(registry)]) == NO_CHAMPION

    assert _offer(registry, candidates["weak"], tiny_world, tiny_jobs) == 0  # no champion yet: published
    weak_version = reg.champion(registry)["version"]

    assert _offer(registry, candidates["good"], tiny_world, tiny_jobs) == 0  # better: replaces the champion
    good_version = reg.champion(registry)["version"]
    assert good_version != weak_version

    assert _offer(registry, candidates["weak"], tiny_world, tiny_jobs) == KEPT  # worse: the champion stays
    assert reg.champion(registry)["version"] == good_version

    log = reg.decisions(registry)
    assert [d["published"] for d in log] == [True, True, False]
    # both scores on the same validation day are recorded, and they are the ones the decision compared
    assert log[1]["champion_score"] == pytest.approx(log[0]["candidate_score"])
    assert log[2]["champion_score"] == pytest.approx(log[1]["candidate_score"])
    assert log[2]["candidate_score"] < log[2]["champion_score"]
    assert len({tuple(d["valid_days"]) for d in log}) == 1
    # the re-scored challenger equals the AUC measured at training time (same rows, same preprocessing)
    assert log[1]["candidate_score"] == pytest.approx(
        json.loads((candidates["good"] / "metrics.json").read_text())["valid_ctr_auc"], abs=1e-9)
    # a published version is complete and loadable by path
    champ = registry / "versions" / good_version
    assert all((champ / f).exists() for f in reg.CANDIDATE_FILES)
    capsys.readouterr()
    assert larr_main(["registry", "champion", "--registry", str(registry), "--part", "model.pt"]) == 0
    assert capsys.readouterr().out.strip() == str(champ / "model.pt")


def test_incomplete_candidate_is_a_clear_error(tiny_world: Path, tiny_jobs: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "cand"
    bad.mkdir()
    (bad / "model.pt").write_bytes(b"")
    assert _offer(tmp_path / "registry", bad, tiny_world, tiny_jobs) == 1
    err = capsys.readouterr().err
    assert "missing preprocessor.json, model.json, metrics.json" in err and "larr ctr train" in err
    assert not (tmp_path / "registry" / "champion.json").exists()
