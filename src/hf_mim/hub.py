"""Model cards and Hub uploads.

Every card hf_mim writes carries the Hub's metadata: ``library_name``, ``license``, ``pipeline_tag``
(``image-feature-extraction`` for encoders, ``image-classification`` for classifiers), ``datasets`` (a Hub dataset
id), ``base_model`` (what a run started from: the backbone of a continued pretraining, the pretraining run of a
fine-tune or an export) and the ``model-index`` of what was measured (kNN, linear probe and fine-tuning top-1,
read from the result files of ``hf-mim finetune`` by :func:`eval_results_from_files`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError

from .backbones import backbone_source, encoder_sizes, hub_id
from .registry import get_model_spec

logger = logging.getLogger(__name__)

__all__ = [
    "TEMPLATES_DIR",
    "PushToHubError",
    "add_eval_results",
    "eval_results_from_files",
    "pretraining_repo_id",
    "push_folder",
    "render_model_card",
]


def _templates_dir() -> Path:
    """The model-card templates shipped as the package ``hf_mim.model_cards`` (or ``$HF_MIM_MODEL_CARDS``)."""
    if os.environ.get("HF_MIM_MODEL_CARDS"):
        return Path(os.environ["HF_MIM_MODEL_CARDS"])
    from importlib.resources import files

    return Path(str(files("hf_mim.model_cards")))


#: Model card templates, one per method: ``{method}.md``.
TEMPLATES_DIR = _templates_dir()


def render_model_card(
    method: str,
    model_id: str,
    config,
    hyperparameters: dict[str, Any] | None = None,
    dataset: str | None = None,
    results: list[dict[str, Any]] | None = None,
    pipeline_tag: str = "image-feature-extraction",
    license: str = "apache-2.0",
    base_model: str | None = None,
    template: str | None = None,
    **template_values: Any,
) -> ModelCard:
    """Fills a card template through ``huggingface_hub.ModelCard`` with valid metadata.

    Args:
        method: ``maskfeat``, ``simmim`` or ``hpm``.
        model_id: Repo id or local name shown in the loading snippets.
        config: The model config (architecture summary).
        hyperparameters: Training hyper-parameters for the card's table.
        dataset: Training dataset name (Hub id or a description).
        results: ``[{"dataset": ..., "metric": ..., "value": ...}]`` for ``model-index``, each optionally with
            ``task`` (default ``image-classification``), ``task_name`` (e.g. ``kNN (k=20)``), ``metric_name``,
            ``dataset_name`` and ``split`` (:func:`eval_results_from_files` makes them).
        pipeline_tag: ``image-feature-extraction`` (encoders) or ``image-classification`` (classifiers).
        license: SPDX-like license id of the weights.
        base_model: The Hub id the model started from (the backbone, or the pretraining run); None when unknown
            or local.
        template: The template's name in ``model_cards/`` (default: the method's, ``{method}.md``; ``export``:
            an encoder exported as a plain transformers class).
        template_values: Further variables of the template.
    """
    from huggingface_hub import EvalResult

    path = TEMPLATES_DIR / f"{template or method}.md"
    if not path.is_file():
        raise ValueError(f"No model card template {path.name!r} at {path}.")
    eval_results = None
    if results:
        eval_results = [
            EvalResult(
                task_type=r.get("task", "image-classification"),
                task_name=r.get("task_name"),
                dataset_type=r["dataset"],
                dataset_name=r.get("dataset_name", r["dataset"]),
                metric_type=r["metric"],
                metric_name=r.get("metric_name"),
                metric_value=float(r["value"]),
                dataset_split=r.get("split"),
            )
            for r in results
        ]
    card_data = ModelCardData(
        library_name="transformers",
        license=license,
        tags=["hf_mim", method, "masked-image-modeling", "self-supervised", "vision"],
        datasets=[dataset] if dataset and "/" in dataset else None,
        pipeline_tag=pipeline_tag,
        base_model=base_model,
        model_name=model_id,
        eval_results=eval_results,
    )
    hyperparameters = hyperparameters or {}
    table = "\n".join(f"| {k} | {v} |" for k, v in hyperparameters.items()) or "| (not recorded) | |"
    return ModelCard.from_template(
        card_data,
        template_path=str(path),
        model_id=model_id,
        paper=get_model_spec(method).paper or method,
        architecture=_architecture(config),
        dataset=dataset or "not recorded",
        hyperparameters_table=table,
        results_table=_results_table(results) or "| (no evaluation yet) | | |",
        base_model=base_model,
        **template_values,
    )


def _results_table(results: list[dict[str, Any]] | None) -> str:
    return "\n".join(f"| {r['dataset']} | {r.get('metric_name') or r['metric']} | {float(r['value']):.4f} |"
                     for r in results or [])  # fmt: skip


#: How each evaluation ``hf-mim finetune`` writes (its ``mode`` in ``all_results.json``) appears in a model-index.
_MODES = {"knn": "kNN", "linear probe": "linear probe", "fine-tuning": "fine-tuning"}


def eval_results_from_files(paths: list[str | os.PathLike]) -> list[dict[str, Any]]:
    """Model-index rows from the ``all_results.json`` files of ``hf-mim finetune`` runs: kNN (``--knn``), linear
    probe (``--linear_probe``) and fine-tuning top-1 (and top-5) accuracy, each with its dataset.

    Raises:
        ValueError: A file that is missing or holds no such result (naming it).
    """
    import json

    rows = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"--eval_results {path}: no such file (an all_results.json written by hf-mim finetune).")
        data = json.loads(path.read_text())
        dataset = str(data.get("dataset") or "not recorded")
        if "knn_accuracy" in data:
            rows.append({"task_name": f"kNN (k={data.get('knn_k')}, frozen features)", "dataset": dataset,
                         "metric": "accuracy", "metric_name": "kNN top-1", "value": data["knn_accuracy"]})  # fmt: skip
        elif "eval_accuracy" in data:
            mode = _MODES.get(data.get("mode"), "fine-tuning")
            rows.append({"task_name": mode, "dataset": dataset, "metric": "accuracy", "metric_name": f"{mode} top-1",
                         "value": data["eval_accuracy"], "split": "validation"})  # fmt: skip
            if "eval_top5_accuracy" in data:
                rows.append({"task_name": mode, "dataset": dataset, "metric": "top5_accuracy",
                             "metric_name": f"{mode} top-5", "value": data["eval_top5_accuracy"],
                             "split": "validation"})  # fmt: skip
        else:
            raise ValueError(f"--eval_results {path}: holds neither knn_accuracy nor eval_accuracy (files of "
                             "hf-mim finetune, with or without --knn / --linear_probe).")  # fmt: skip
    return rows


def add_eval_results(folder: str | os.PathLike, paths: list[str | os.PathLike]) -> ModelCard:
    """Adds the results of ``paths`` (:func:`eval_results_from_files`) to the model-index of ``folder/README.md``
    (a card hf_mim wrote) and saves it; returns the card."""
    from huggingface_hub import EvalResult

    card_path = Path(folder) / "README.md"
    if not card_path.is_file():
        raise ValueError(f"{folder} has no README.md (model card) to add evaluation results to.")
    card = ModelCard.load(card_path)
    rows = eval_results_from_files(paths)
    new = [EvalResult(task_type="image-classification", task_name=r["task_name"], dataset_type=r["dataset"],
                      dataset_name=r["dataset"], metric_type=r["metric"], metric_name=r["metric_name"],
                      metric_value=float(r["value"]), dataset_split=r.get("split")) for r in rows]  # fmt: skip
    card.data.eval_results = [*(card.data.eval_results or []), *new]
    card.data.model_name = card.data.model_name or Path(folder).name
    card.save(card_path)
    return card


def pretraining_repo_id(name_or_path: str | os.PathLike) -> str | None:
    """The Hub id of an hf_mim checkpoint, for the ``base_model`` of what is made from it: ``name_or_path`` itself
    when it is a Hub id, else the ``hub_model_id`` its run was pushed to (``training_args.json``), else None."""
    import json

    if hub_id(name_or_path) is not None:
        return str(name_or_path)
    record = Path(name_or_path) / "training_args.json"
    if record.is_file():
        arguments = json.loads(record.read_text()).get("arguments", {})
        return hub_id(arguments.get("hub_model_id"))
    return None


def _architecture(config) -> str:
    source = backbone_source(config)
    if source:  # a wrapped released class
        sizes = encoder_sizes(config.encoder_config)
        return (f"{source['class']} (hidden {sizes['hidden_size']}, {sizes['num_hidden_layers']} layers), patch "
                f"{config.encoder_config.patch_size}, {sizes['image_size']} px")  # fmt: skip
    encoder = getattr(config, "encoder_config", None)  # a nested transformers encoder (SimMIM)
    if encoder is not None:
        if getattr(config, "backbone", None) == "swin":
            return f"Swin (embed_dim {encoder.embed_dim}, depths {list(encoder.depths)}), {config.image_size} px"
        config = encoder
    return (
        f"ViT (hidden {config.hidden_size}, {config.num_hidden_layers} layers, {config.num_attention_heads} heads), "
        f"patch {config.patch_size}, {config.image_size} px"
    )


class PushToHubError(RuntimeError):
    """Upload failed after retries; the local output is complete and the message says how to retry."""


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    retries: int = 4,
    backoff: float | None = None,
    ignore_patterns: list[str] | None = None,
    commit_message: str = "Upload with hf_mim",
) -> str:
    """Creates ``repo_id`` if needed and uploads ``folder``, retrying transient failures (HTTP 5xx, 429,
    connection errors) with exponential backoff (``backoff`` seconds, doubling; env ``HF_MIM_PUSH_BACKOFF``).

    Returns:
        The commit URL.

    Raises:
        PushToHubError: after the last try, with the command that retries the upload alone.
    """
    backoff = float(os.environ.get("HF_MIM_PUSH_BACKOFF", 2.0)) if backoff is None else backoff
    api = HfApi(token=token)
    ignore_patterns = ignore_patterns if ignore_patterns is not None else ["checkpoints/*", "runs/*", "*.tmp"]
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            info = api.upload_folder(
                folder_path=str(folder),
                repo_id=repo_id,
                repo_type="model",
                ignore_patterns=ignore_patterns,
                commit_message=commit_message,
            )
            return str(getattr(info, "commit_url", info))
        except HfHubHTTPError as err:
            status = getattr(getattr(err, "response", None), "status_code", None)
            if status is not None and status < 500 and status != 429:
                last_error = err
                break  # a client error (auth, bad repo id) does not heal by retrying
            last_error = err
        except (ConnectionError, OSError, TimeoutError) as err:
            last_error = err
        if attempt < retries:
            delay = backoff * 2 ** (attempt - 1)
            logger.warning(
                "Upload to %s failed (%s); retry %d/%d in %.1fs", repo_id, last_error, attempt, retries, delay
            )
            time.sleep(delay)
    raise PushToHubError(
        f"Uploading {folder} to {repo_id} failed: {last_error}. The local output in {folder} is complete; retry the "
        f"upload alone with: hf-mim push --output_dir {folder} --hub_model_id {repo_id}"
        + (" --hub_private" if private else "")
    ) from last_error
