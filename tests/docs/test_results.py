"""The claims the results pages make about their numbers hold for the JSON files they are rendered from; a rerun
that changes a conclusion fails here until the text follows (docs/results/*.md)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from .pages import DOCS, generate


def load(path: str) -> dict:
    return json.loads((DOCS / path).read_text())


@pytest.fixture(scope="module")
def le():
    return load("label_efficiency/results.json")["summary"]


@pytest.fixture(scope="module")
def ablations():
    return load("ablations/results.json")["summary"]


@pytest.fixture(scope="module")
def analysis():
    return load("analysis/analysis.json")["models"]


FRACTIONS = ("0.01", "0.1")


def ratio(cell: dict) -> float:
    return cell["gain_over_scratch"] / cell["gain_std"]


def test_label_efficiency_architecture_matters_more_than_pretraining(le):
    for f in FRACTIONS:
        gap = le["scratch-mae"]["finetune"][f]["mean"] - le["scratch-vit"]["finetune"][f]["mean"]
        gains = [le[row]["finetune"][f]["gain_over_scratch"] for row in ("maskfeat", "simmim", "mae", "hpm")]
        assert gap > 3 * max(gains), "'the architectures differ more than the pretraining methods'"


def test_label_efficiency_frozen_features(le):
    for row in ("mae", "hpm"):
        for f in FRACTIONS:
            cell = le[row]["knn"][f]
            assert 0.025 <= cell["gain_over_scratch"] <= 0.04 and ratio(cell) >= 2, "'about three kNN points, 2x'"
    assert ratio(le["maskfeat"]["knn"]["0.1"]) >= 2 > ratio(le["maskfeat"]["knn"]["0.01"]), "'MaskFeat: clear at 10%'"
    assert all(abs(ratio(le["simmim"]["knn"][f])) < 2 for f in FRACTIONS), "'SimMIM: within noise'"


def test_label_efficiency_fine_tuning(le):
    for row in ("maskfeat", "simmim", "mae", "hpm"):
        assert all(le[row]["finetune"][f]["gain_over_scratch"] > 0 for f in FRACTIONS), f"'{row} ahead of scratch'"
    assert all(1.8 <= ratio(le["maskfeat"]["finetune"][f]) <= 3.5 for f in FRACTIONS), "'two to three std'"
    assert ratio(le["simmim"]["finetune"]["0.1"]) > 3, "'SimMIM at 10% among the clearest'"
    assert all(ratio(le[row]["finetune"][f]) < 1.2 for row in ("mae", "hpm") for f in FRACTIONS), "'about one std'"


def test_label_efficiency_hpm_against_mae(le):
    for protocol in ("knn", "finetune"):
        for f in FRACTIONS:
            hpm, mae = le["hpm"][protocol][f], le["mae"][protocol][f]
            assert 0 < hpm["mean"] - mae["mean"] <= max(hpm["std"], mae["std"]), "'ahead, within the spread'"


def test_label_efficiency_linear_probes(le):
    for row in ("maskfeat", "simmim", "mae", "hpm"):
        assert all(abs(ratio(le[row]["linear"][f])) <= 2.5 for f in FRACTIONS), "'within about two std'"
    swings = {(row, f): np.ptp(le[row]["linear"][f]["runs"]) for row in le for f in FRACTIONS}
    assert max(swings, key=swings.get) == ("hpm", "0.1"), "'swings of up to ... (HPM at 10%)'"


def test_ablations(ablations):
    for variant in ("maskfeat target=pixel", "maskfeat target=hog+pixel"):
        for protocol in ("knn", "finetune"):
            delta = ablations[variant][protocol]["delta"]
            assert delta["mean"] < 0, "'HOG ahead of pixels and HOG + pixels'"
            assert 0.9 <= abs(delta["mean"]) / delta["std"] <= 2, "'one to two of their standard deviations'"
    simmim = [v for v in ablations if v.startswith("simmim") and "delta" in ablations[v]["knn"]]
    assert len(simmim) == 3
    for variant in simmim:
        for protocol in ("knn", "finetune"):
            delta = ablations[variant][protocol]["delta"]
            assert abs(delta["mean"]) < 0.005 and abs(delta["mean"]) <= delta["std"] + 5e-4, "'within its spread'"
    losses = [ablations[f"simmim mask_patch_size={s}"]["pretrain_loss"]["mean"] for s in (4, 8, 16)]
    assert losses == sorted(losses), "'the pretraining loss rises with the cell size'"


def test_analysis(analysis):
    uniform = math.log(65)
    for name in ("random-init", "maskfeat", "simmim"):
        assert abs(np.mean(analysis[name]["entropy"]) - uniform) < 0.01, "'about ln 65, as at random init'"
    assert max(analysis["maskfeat"]["head_kl"] + analysis["simmim"]["head_kl"]) < 0.01, "'heads do not differ'"
    assert analysis["simmim"]["cka"][0][4] < analysis["random-init"]["cka"][0][4] - 0.2, "'SimMIM's CKA fell'"
    hpm = analysis["hpm"]
    assert np.mean(hpm["entropy"]) < uniform - 0.1 and min(hpm["head_kl"][:2]) > max(hpm["head_kl"][2:])
    others = [max(analysis[name]["head_kl"]) for name in analysis if not name.endswith("-ft")]
    finetuned = [max(analysis[name]["head_kl"]) for name in ("scratch-ft", "maskfeat-ft")]
    assert min(finetuned) > max(others), "'the most diverse heads belong to the two fine-tuned models'"
    distances = [np.mean(model["distance"]) for model in analysis.values()]
    assert max(distances) - min(distances) < 0.5, "'about the same attention distance in every model'"


def test_analysis_avgdist_rises_with_ratio_and_cell(analysis):
    masks = load("analysis/analysis.json")["mask_study"]["random_masks"]
    sizes = sorted({int(k.split("/")[0]) for k in masks})
    ratios = sorted({k.split("/")[1] for k in masks}, key=float)
    for size in sizes:
        values = [masks[f"{size}/{r}"]["avg_dist"] for r in ratios if masks[f"{size}/{r}"]]
        assert values == sorted(values)
    for r in ratios:
        values = [masks[f"{s}/{r}"]["avg_dist"] for s in sizes if masks[f"{s}/{r}"]]
        assert values == sorted(values)


def test_every_study_value_in_the_results_text_resolves():
    """The numbers in the text of the results pages are ``{{ study: path }}`` values; each one names a real key."""
    for page in ("label-efficiency", "ablations", "analysis"):
        text = (DOCS / "results" / f"{page}.md").read_text()
        values = generate._VALUE.findall(text)
        assert values, page
        for study, expr, fmt in values:
            generate.study_value(study, expr, fmt or None)  # each one resolves
