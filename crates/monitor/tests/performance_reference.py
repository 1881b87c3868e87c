# Expected numbers of the unit tests in crates/monitor/src/performance.rs,
# computed with NannyML's own CBPE functions and metric classes (and
# scikit-learn for the realised values), independently of the Rust code.
# Run: python3 -m venv /tmp/nm && /tmp/nm/bin/pip install nannyml statsmodels
#      && /tmp/nm/bin/python <this file>
# Output with the versions as printed is quoted in the tests.
import warnings

import numpy as np
import pandas as pd
import sklearn
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

import nannyml
import nannyml.sampling_error.binary_classification as bse
from nannyml.chunk import SizeBasedChunker
from nannyml.performance_estimation.confidence_based.metrics import (
    BinaryClassificationAP,
    BinaryClassificationAUROC,
    BinaryClassificationF1,
    BinaryClassificationPrecision,
    BinaryClassificationRecall,
    estimate_ap,
    estimate_f1,
    estimate_precision,
    estimate_recall,
    estimate_roc_auc,
)
from nannyml.thresholds import StandardDeviationThreshold

warnings.simplefilter("ignore")
np.set_printoptions(legacy="1.25")
print("nannyml", nannyml.__version__, "scikit-learn", sklearn.__version__, "numpy", np.__version__)
T = 0.5  # decision: p >= T, as revspend_core::metrics::Confusion::at


def cbpe(p):
    d = (p >= T).astype(int)
    return dict(
        precision=estimate_precision(d, p),
        recall=estimate_recall(d, p),
        f1=estimate_f1(d, p),
        pr_auc=estimate_ap(p, p),  # the monitor ranks by the calibrated p itself
        roc_auc=estimate_roc_auc(p, p),
    )


def realised(p, y):
    d = (p >= T).astype(int)
    return dict(
        precision=precision_score(y, d),
        recall=recall_score(y, d),
        f1=f1_score(y, d),
        pr_auc=average_precision_score(y, p),
        roc_auc=roc_auc_score(y, p),
    )


# [hand] the hand-computed window of the tests.
p = np.array([0.9, 0.8, 0.6, 0.4, 0.3, 0.1])
y = np.array([1, 1, 0, 1, 0, 0])
print("[hand] estimated", cbpe(p))
print("[hand] realised", realised(p, y))

# [ties] equal probabilities: NannyML steps row by row through a tie.
p = np.array([0.9, 0.9, 0.1, 0.1])
print("[ties] estimated", cbpe(p))

# [bands] reference of three chunks of 4 rows: one perfect, two half right.
c1p, c1y = [0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]
c2p, c2y = [0.9, 0.8, 0.2, 0.1], [1, 0, 1, 0]
ref = pd.DataFrame(
    {
        "p": np.array(c1p + c2p + c2p),
        "y": np.array(c1y + c2y + c2y),
    }
)
ref["uncalibrated_p"] = ref["p"]
ref["d"] = (ref["p"] >= T).astype(int)
for k in (1, 3):
    for cls in (
        BinaryClassificationPrecision,
        BinaryClassificationRecall,
        BinaryClassificationF1,
        BinaryClassificationAP,
        BinaryClassificationAUROC,
    ):
        m = cls(
            y_pred_proba="p",
            y_pred="d",
            y_true="y",
            chunker=SizeBasedChunker(chunk_size=4),
            threshold=StandardDeviationThreshold(std_lower_multiplier=k, std_upper_multiplier=k),
        )
        m.fit(ref)
        chunk_values = [m._realized_performance(c.data) for c in m.chunker.split(ref)]
        line = f"[bands k={k}] {m.name}: chunks {chunk_values} lower {m.lower_threshold_value} upper {m.upper_threshold_value}"
        if k == 3 and m.name != "average_precision":
            line += f" sampling components {m._sampling_error_components}"
            line += f" error(100 rows) {m._sampling_error(pd.concat([ref] * 25)[:100])}"
        print(line)


def mann_whitney_components(y, p):
    # The Rust definition: each positive's share of negatives ranked below it,
    # a tied negative counting one half (midrank among all minus midrank among
    # the positives); classes swapped and scores mirrored when positives are
    # more than half, as NannyML does.
    from scipy.stats import rankdata

    y, p = np.asarray(y), np.asarray(p, dtype=float)
    if y.mean() > 0.5:
        y, p = 1 - y, 1 - p
    pos = y == 1
    shares = (rankdata(p)[pos] - rankdata(p[pos])) / (~pos).sum()
    return np.std(shares), pos.mean()


print("[bands] auroc components, Mann-Whitney shares with half ties", mann_whitney_components(ref["y"], ref["p"]))
# Without ties (and the lowest score a negative) both definitions agree.
p = np.array([0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25])
y = np.array([1, 0, 1, 1, 0, 1, 0, 0])
print("[auroc no ties] nannyml", bse.auroc_sampling_error_components(pd.Series(y), pd.Series(p)))
print("[auroc no ties] mann-whitney", mann_whitney_components(y, p), "realised roc_auc", roc_auc_score(y, p))
# Mostly positives: NannyML swaps the classes and mirrors the scores.
y = np.array([1, 0, 1, 1, 0, 1, 1, 0])
print("[auroc flip] nannyml", bse.auroc_sampling_error_components(pd.Series(y), pd.Series(p)))
print("[auroc flip] mann-whitney", mann_whitney_components(y, p))
print("[auroc flip] mirrored", mann_whitney_components(1 - y, 1 - p))
