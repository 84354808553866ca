"""The report's targets pass only beyond two standard deviations, never on an empty slice, and say N/A
without a spread (one seed)."""

from __future__ import annotations

import math

from training.ctr_report import _targets


def _stats(values: list[float]) -> dict:
    n = len(values)
    mean = sum(values) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n, "values": values}


def _model(per_slice: dict[str, list[float]], ctcvr: list[float] | None = None) -> dict:
    return {"slices": {s: {"ctr_auc": _stats(v), "ctcvr_auc": _stats(ctcvr if ctcvr and s == "all" else v)}
                       for s, v in per_slice.items()}}


def test_noise_level_gain_fails_and_a_real_gain_passes() -> None:
    ple = _model({"all": [0.70, 0.71, 0.72], "new_apps": [0.60, 0.62, 0.64], "rest": [0.70, 0.71, 0.72]})
    noise = _model({"all": [0.705, 0.71, 0.725], "new_apps": [0.601, 0.63, 0.642], "rest": [0.70, 0.71, 0.72]})
    t = _targets({"ple": ple, "larr": noise}, ["ple", "larr"])
    assert t["larr_beats_ple_ctr_auc_by_2std"]["pass"] is False
    assert t["larr_largest_ctr_gain_on_new_apps"]["pass"] is False  # largest, but not beyond 2 std
    real = _model({"all": [0.80, 0.801, 0.802], "new_apps": [0.90, 0.901, 0.902], "rest": [0.75, 0.751, 0.752]})
    t = _targets({"ple": ple, "larr": real}, ["ple", "larr"])
    assert t["larr_beats_ple_ctr_auc_by_2std"]["pass"] is True
    assert t["larr_largest_ctr_gain_on_new_apps"]["pass"] is True


def test_empty_slice_is_skipped_never_passed() -> None:
    nan = math.nan
    ple = _model({"all": [0.70, 0.71, 0.72], "new_pois": [nan, nan, nan], "rest": [0.70, 0.71, 0.72]})
    larr = _model({"all": [0.80, 0.80, 0.81], "new_pois": [nan, nan, nan], "rest": [0.80, 0.80, 0.81]})
    t = _targets({"ple": ple, "larr": larr}, ["ple", "larr"])
    assert not any("new_pois" in k for k in t)


def test_one_seed_is_not_applicable() -> None:
    ple = _model({"all": [0.70], "new_pois": [0.6], "rest": [0.7]})
    larr = _model({"all": [0.80], "new_pois": [0.9], "rest": [0.7]})
    t = _targets({"ple": ple, "larr": larr, "noal": ple}, ["ple", "larr", "noal"])
    assert t["larr_beats_ple_ctr_auc_by_2std"]["pass"] is None
    assert t["larr_largest_ctr_gain_on_new_pois"]["pass"] is None
    assert t["larr_beats_noal"]["pass"] is None


def test_without_conversion_there_is_no_ctcvr_target() -> None:
    nan = math.nan
    ple = _model({"all": [0.70, 0.71, 0.72]}, ctcvr=[nan, nan, nan])
    larr = _model({"all": [0.80, 0.80, 0.81]}, ctcvr=[nan, nan, nan])
    t = _targets({"ple": ple, "larr": larr}, ["ple", "larr"])
    assert "larr_beats_ple_ctcvr_auc_by_2std" not in t and t["larr_beats_ple_ctr_auc_by_2std"]["pass"] is True


def test_largest_gain_needs_a_margin_beyond_2std_over_the_rest() -> None:
    """Both slices gain beyond 2 std over PLE, but the new-POI gain exceeds the rest's by noise only: the claim
    "the gain is largest on new POIs" fails."""
    ple = _model({"all": [0.70, 0.71, 0.72], "new_pois": [0.60, 0.61, 0.62], "rest": [0.70, 0.71, 0.72]})
    larr = _model({"all": [0.75, 0.76, 0.77], "new_pois": [0.651, 0.661, 0.671], "rest": [0.75, 0.76, 0.77]})
    t = _targets({"ple": ple, "larr": larr}, ["ple", "larr"])["larr_largest_ctr_gain_on_new_pois"]
    assert t["largest"] == "new_pois" and t["largest_z"] > 2
    assert t["pass"] is False and t["margin_over_rest_z"] < 2
    clear = _model({"all": [0.75, 0.76, 0.77], "new_pois": [0.70, 0.71, 0.72], "rest": [0.75, 0.76, 0.77]})
    t = _targets({"ple": ple, "larr": clear}, ["ple", "larr"])["larr_largest_ctr_gain_on_new_pois"]
    assert t["margin_over_rest_z"] > 2 and t["pass"] is True


def test_a_tuned_row_is_compared_only_at_equal_settings() -> None:
    """The validation-selected temperature row is not credited against noFT/noCPT, which were not tuned; it is
    compared with PLE and with noAL (which has no alignment and so no temperature)."""
    ple = _model({"all": [0.70, 0.71, 0.72], "rest": [0.70, 0.71, 0.72]})
    tuned = _model({"all": [0.80, 0.80, 0.81], "rest": [0.80, 0.80, 0.81]})
    models = {"ple": ple, "larr": ple, "larr_t1": tuned, "noal": ple, "noft": ple, "nocpt": ple}
    t = _targets(models, ["ple", "larr", "larr_t1", "noal", "noft", "nocpt"])
    assert {"larr_beats_noft", "larr_beats_nocpt", "larr_valsel_beats_noal"} <= set(t)
    assert "larr_valsel_beats_noft" not in t and "larr_valsel_beats_nocpt" not in t


def test_budgets_state_each_rows_tuning() -> None:
    """Issue 17.5: every row's tuning budget is stated; plain backbones and module rows share one (none), and
    the swept LARR row says its gain over PLE includes a tuning PLE did not get."""
    from larr.config import load_config
    from training.ctr_report import budgets

    cfg = load_config("tiny")
    b = budgets(cfg, 10_000, swept=True)
    assert b["id_models"]["tuning"].startswith("none") and "with and without the module" in b["id_models"]["tuning"]
    assert "validation-day" in b["larr"]["tuning"] and "includes the tuning" in b["larr"]["tuning"]
    assert b["p5"]["tuning"] == "none"
    assert budgets(cfg, 10_000, swept=False)["larr"]["tuning"] == b["id_models"]["tuning"]


def test_module_table_verdicts_need_every_backbone_beyond_2std() -> None:
    """The README's backbone x {plain, + LARR} table (training/module_table.py): 'every backbone gains' fails when
    one backbone's gain is at noise level or one backbone is missing, and 'the best backbone + LARR beats every
    plain backbone' needs z > 2 against each plain backbone (the strongest one included), not only PLE."""
    from training.module_table import block, markdown

    def row(all_: list[float], new: list[float]) -> dict:
        return _model({"all": all_, "new_pois": new, "rest": all_})

    base = {"ple": row([0.70, 0.71, 0.72], [0.60, 0.61, 0.62]), "wdl": row([0.70, 0.71, 0.72], [0.60, 0.61, 0.62]),
            "deepfm": row([0.70, 0.71, 0.72], [0.60, 0.61, 0.62]),
            "dcnv2": row([0.78, 0.781, 0.782], [0.60, 0.61, 0.62])}
    gains = {"larr": row([0.80, 0.801, 0.802], [0.80, 0.801, 0.802]),
             "wdl+larr": row([0.80, 0.801, 0.802], [0.80, 0.801, 0.802]),
             "deepfm+larr": row([0.80, 0.801, 0.802], [0.80, 0.801, 0.802]),
             "dcnv2+larr": row([0.79, 0.791, 0.792], [0.70, 0.71, 0.72])}
    b = block("clear", {**base, **gains})
    assert b["every_backbone_gains"] and b["best_module_beats_every_plain"]
    assert [r["backbone"] for r in b["rows"]] == ["ple", "wdl", "deepfm", "dcnv2"]
    subset = {k: v for k, v in {**base, **gains}.items() if not k.startswith("wdl")}
    assert not block("Wide&Deep missing", subset)["every_backbone_gains"]
    noisy = {**gains, "wdl+larr": row([0.705, 0.71, 0.725], [0.60, 0.61, 0.62])}
    b = block("one backbone at noise level", {**base, **noisy})
    assert not b["every_backbone_gains"] and b["best_module_beats_every_plain"]
    close = {k: row([0.78, 0.783, 0.786], v["slices"]["new_pois"]["ctr_auc"]["values"]) for k, v in gains.items()}
    b = block("best module within noise of the best plain backbone", {**base, **close})
    assert not b["best_module_beats_every_plain"]
    assert "| FAIL |" in markdown([b]) or "FAIL (z" in markdown([b])
