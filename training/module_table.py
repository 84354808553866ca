"""The README's backbone x {plain, + LARR} table across experiments: one block of rows per (world, encoder
path), read from each experiment's ``report.json`` (``larr experiment paper``), so that the question "does the
LARR module help every backbone, on every world, with either encoder?" is answered from the reports themselves.

    .venv/bin/larr module-table NAME=REPORT_DIR[,REPORT_DIR] [NAME=REPORT_DIR ...] [--json OUT]

Per backbone: the plain model's and the model-with-module's CTR AUC (mean ± std over seeds), the module's gain
on the test day and on new items, and how much larger the new items' gain is than the rest's, each with z =
gain / std of the difference, computed as the experiment's own report does (``training/ctr_report.gain`` and
``gain_margin``); and two verdicts per block:
every backbone + LARR beats its plain backbone beyond two standard deviations, and the best backbone + LARR
beats every plain backbone beyond two standard deviations of that difference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from larr.ctr.kinds import BACKBONE_NAMES, canonical_kind
from larr.entry import UserError
from training.ctr_report import gain, gain_margin

Z_PASS = 2.0
# each backbone and its model with the LARR module (PLE + LARR is LARR Complete)
MODULE_BACKBONES = {b: canonical_kind(f"{b}+larr") for b in BACKBONE_NAMES}


def block(name: str, models: dict[str, Any]) -> dict[str, Any]:
    """One (world, encoder path) block: the rows and the two verdicts.  ``models``: the reports' ``models``."""
    rows = []
    for backbone, module in MODULE_BACKBONES.items():
        if backbone not in models or module not in models:
            continue
        new = next((k for k in models[backbone]["slices"] if k.startswith("new")), None)  # new POIs, new apps
        P, L = models[backbone]["slices"], models[module]["slices"]
        rows.append({"backbone": backbone, "plain": P["all"]["ctr_auc"], "larr": L["all"]["ctr_auc"],
                     "gain_all": gain(L["all"]["ctr_auc"], P["all"]["ctr_auc"]),
                     "gain_new": gain(L[new]["ctr_auc"], P[new]["ctr_auc"]) if new else None,
                     "new_over_rest": gain_margin(L, P, new, "rest") if new and "rest" in P else None})
    plain = [b for b in MODULE_BACKBONES if b in models]
    modules = [m for b, m in MODULE_BACKBONES.items() if m in models]
    best = max(modules, key=lambda m: models[m]["slices"]["all"]["ctr_auc"]["mean"]) if modules else None
    vs_plain = {b: gain(models[best]["slices"]["all"]["ctr_auc"], models[b]["slices"]["all"]["ctr_auc"])
                for b in plain} if best else {}
    # every backbone must be in the block: a gain on a subset is not "every backbone"
    every = len(rows) == len(MODULE_BACKBONES) and all(r["gain_all"]["z"] > Z_PASS for r in rows)
    best_beats = bool(vs_plain) and all(v["z"] > Z_PASS for v in vs_plain.values())
    return {"name": name, "rows": rows, "best_module": best, "best_vs_plain": vs_plain,
            "every_backbone_gains": every, "best_module_beats_every_plain": best_beats}


def _fmt(s: dict[str, float]) -> str:
    return f"{s['mean']:.4f} ± {s['std']:.4f}"


def _gain(g: dict[str, float] | None) -> str:
    return "--" if not g else f"{g['gain']:+.4f} (z {g['z']:.1f})"


LABELS = {"ple": "PLE", "wdl": "Wide&Deep", "deepfm": "DeepFM", "dcnv2": "DCN-V2"}


def markdown(blocks: list[dict[str, Any]]) -> str:
    lines = ["| world, encoder path | backbone | plain | + LARR | gain, test day (z) | gain, new items (z) | "
             "new items' gain minus the rest's (z) |", "|---|---|---|---|---|---|---|"]
    for b in blocks:
        for r in b["rows"]:
            lines.append(f"| {b['name']} | {LABELS.get(r['backbone'], r['backbone'])} | {_fmt(r['plain'])} | "
                         f"{_fmt(r['larr'])} | {_gain(r['gain_all'])} | {_gain(r['gain_new'])} | {_gain(r['new_over_rest'])} |")
    lines += ["", "| world, encoder path | every backbone + LARR > plain (z > 2) | best + LARR | best + LARR > every "
              "plain (smallest z) |", "|---|---|---|---|"]
    for b in blocks:
        zmin = min((v["z"] for v in b["best_vs_plain"].values()), default=float("nan"))
        lines.append(f"| {b['name']} | {'PASS' if b['every_backbone_gains'] else 'FAIL'} | "
                     f"{b['best_module']} | "
                     f"{'PASS' if b['best_module_beats_every_plain'] else 'FAIL'} (z {zmin:.1f}) |")
    return "\n".join(lines) + "\n"


def render(items: list[str], json_out: str | None = None) -> str:
    """The markdown table of ``items`` (``NAME=REPORT_DIR[,REPORT_DIR]``: a block's name and the experiment
    folder(s) holding its report.json, merged with the first folder's row winning); the blocks also go to
    ``json_out`` when given."""
    blocks = []
    for item in items:
        name, _, folders = item.rpartition("=")
        if not name or not folders:
            raise UserError(f"{item!r} names no block", "NAME=REPORT_DIR",
                            "give a block name, '=', and the folder(s) holding report.json")
        models: dict[str, Any] = {}
        for folder in reversed(folders.split(",")):
            path = Path(folder) / "report.json"
            if not path.exists():
                raise UserError(f"{path} does not exist", name,
                                f"run `larr experiment paper ... --out {folder}` first")
            models.update(json.loads(path.read_text())["models"])
        blocks.append(block(name, models))
    if json_out:
        Path(json_out).write_text(json.dumps(blocks, indent=1, default=str) + "\n")
    return markdown(blocks)
