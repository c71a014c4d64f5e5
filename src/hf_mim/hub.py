"""Model cards and Hub uploads."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError

from .registry import get_model_spec

logger = logging.getLogger(__name__)

__all__ = ["TEMPLATES_DIR", "render_model_card", "push_folder", "PushToHubError"]


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
) -> ModelCard:
    """Fills ``model_cards/{method}.md`` through ``huggingface_hub.ModelCard`` with valid metadata.

    Args:
        method: ``maskfeat``, ``simmim`` or ``hpm``.
        model_id: Repo id or local name shown in the loading snippets.
        config: The model config (architecture summary).
        hyperparameters: Training hyper-parameters for the card's table.
        dataset: Training dataset name (Hub id or a description).
        results: ``[{"task": ..., "dataset": ..., "metric": ..., "value": ...}]`` for ``model-index``.
        pipeline_tag: ``image-feature-extraction`` (pretraining) or ``image-classification`` (fine-tuned).
        license: SPDX-like license id of the weights.
    """
    from huggingface_hub import EvalResult

    template = TEMPLATES_DIR / f"{method}.md"
    if not template.is_file():
        raise ValueError(f"No model card template for method {method!r} at {template}.")
    eval_results = None
    if results:
        eval_results = [
            EvalResult(
                task_type=r.get("task", "image-classification"),
                dataset_type=r["dataset"],
                dataset_name=r.get("dataset_name", r["dataset"]),
                metric_type=r["metric"],
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
        model_name=model_id,
        eval_results=eval_results,
    )
    hyperparameters = hyperparameters or {}
    table = "\n".join(f"| {k} | {v} |" for k, v in hyperparameters.items()) or "| (not recorded) | |"
    rows = "\n".join(f"| {r['dataset']} | {r['metric']} | {float(r['value']):.4f} |" for r in results or [])
    return ModelCard.from_template(
        card_data,
        template_path=str(template),
        model_id=model_id,
        paper=get_model_spec(method).paper or method,
        architecture=_architecture(config),
        dataset=dataset or "not recorded",
        hyperparameters_table=table,
        results_table=rows or "| (no evaluation yet) | | |",
    )


def _architecture(config) -> str:
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
