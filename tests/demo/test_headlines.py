"""The demo's headline findings follow the report's tests: a subset is called better than the full model only
when its paired McNemar test says so (BH q < 0.05), and a misleading modality only when attribution names one."""

from mixsig.demo.pipeline import headline_findings


def _report(paired, attribution):
    f1 = {"text": 0.81, "audio": 0.70, "text+audio": 0.79}
    return {"metrics": {s: {"over_seeds": {"macro_f1": {"mean": v}}} for s, v in f1.items()},
            "paired": paired, "attribution": attribution}


def test_planted_better_subset_and_misleading_modality_are_named():
    paired = {"text": {"full_right_other_wrong": 3, "full_wrong_other_right": 19, "mcnemar_p_bh": 0.004},
              "audio": {"full_right_other_wrong": 30, "full_wrong_other_right": 4, "mcnemar_p_bh": 0.0001}}
    att = {"n_misled": 12, "misleading_modality": "audio", "by_modality": {"audio": {"fixes": 9, "share": 0.75}}}
    first, third = headline_findings(_report(paired, att))
    assert first.startswith("text is right more often than the full model text+audio") and "0.004" in first
    assert "not always better" in first
    assert third == "Of 12 misled samples, removing audio fixes 9 (75%), more than removing any other modality."


def test_a_higher_f1_without_a_paired_difference_is_not_called_better():
    paired = {"text": {"full_right_other_wrong": 9, "full_wrong_other_right": 11, "mcnemar_p_bh": 0.82},
              "audio": {"full_right_other_wrong": 30, "full_wrong_other_right": 4, "mcnemar_p_bh": 0.0001}}
    att = {"n_misled": 12, "misleading_modality": None, "why_none": "text leads with 5 fixes, but p = 0.6"}
    first, third = headline_findings(_report(paired, att))
    assert "not always better" not in first and "no subset differs from it on the same samples" in first
    assert third.startswith("No single modality misled the fusion on its 12 misled samples: text leads")
