"""Top-1 / top-k accuracy as an `evaluate` metric module shipped with hf_mim, so it loads offline by path."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy: the fraction of predictions equal to the references (top-1), or, given scores, top-k."
_KWARGS = """
Args:
    predictions: predicted class ids, or per-class scores [N, num_classes] when `k` > 1.
    references: true class ids.
    k: count a hit when the reference is among the k highest scores (default 1).
Returns:
    {"accuracy": float} (top-1) or {"top{k}_accuracy": float}.
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=[
                datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("float32")),
                        "references": datasets.Value("int64"),
                    }
                ),
            ],
        )

    def _compute(self, predictions, references, k=1):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if predictions.ndim == 1:
            if k != 1:
                raise ValueError("top-k accuracy with k > 1 needs per-class scores as predictions.")
            return {"accuracy": float((predictions == references).mean())}
        topk = np.argsort(-predictions, axis=1)[:, :k]
        hits = (topk == references[:, None]).any(axis=1)
        return {"accuracy" if k == 1 else f"top{k}_accuracy": float(hits.mean())}
