"""The Python peer: scikit-learn's HistGradientBoostingClassifier fitted on the
same train split revspend's `train` reads, scored on the same holdout rows.

What a Python data scientist would write: the model's default settings with
early stopping, the feature list build-features chose (data/features.json),
missing values left to the model. Prints one JSON object: read and fit
seconds, iterations, holdout PR-AUC / ROC-AUC / Brier, peak RSS.

    python scripts/peer/hgb.py --splits data/splits --features data/features.json
"""

import argparse
import json
import resource
import time

import numpy as np
import pyarrow.parquet as pq
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

TARGET = "is_revenge_spending"


def read(path, features):
    table = pq.read_table(path, columns=features + [TARGET])
    x = np.column_stack([table.column(f).to_numpy(zero_copy_only=False).astype(np.float64) for f in features])
    y = table.column(TARGET).to_numpy(zero_copy_only=False).astype(bool)
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", required=True, help="directory of train.parquet and holdout.parquet")
    ap.add_argument("--features", required=True, help="build-features' feature list (JSON)")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    with open(args.features, encoding="utf-8") as f:
        features = json.load(f)["features"]
    started = time.perf_counter()
    x_train, y_train = read(f"{args.splits}/train.parquet", features)
    x_holdout, y_holdout = read(f"{args.splits}/holdout.parquet", features)
    read_seconds = time.perf_counter() - started

    model = HistGradientBoostingClassifier(early_stopping=True, random_state=args.seed)
    started = time.perf_counter()
    model.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started

    p = model.predict_proba(x_holdout)[:, 1]
    print(
        json.dumps(
            {
                "model": "sklearn HistGradientBoostingClassifier (defaults, early stopping)",
                "train_rows": int(len(y_train)),
                "features": len(features),
                "read_seconds": round(read_seconds, 3),
                "fit_seconds": round(fit_seconds, 3),
                "iterations": int(model.n_iter_),
                "holdout": {
                    "rows": int(len(y_holdout)),
                    "pr_auc": float(average_precision_score(y_holdout, p)),
                    "roc_auc": float(roc_auc_score(y_holdout, p)),
                    "brier": float(brier_score_loss(y_holdout, p)),
                },
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
