"""Every hf_mim command the README and the docs show is parsed by that command's own parser, and the study command
of the attention page names folders the label-efficiency experiment writes."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
from pathlib import Path

import pytest

from .pages import cli_parsers, pages

SHELL = ("bash", "sh", "console", "shell")


def shown_commands() -> list[tuple[str, str, str, list[str], bool]]:
    """``(where, line, module, argv, elided)`` of every shell line that runs an hf_mim command."""
    found = []
    for page in pages():
        for block in page.blocks:
            if block.lang not in SHELL:
                continue
            for line in cli_parsers.shell_lines(block.code):
                command = cli_parsers.shown_command(line)
                if command:
                    found.append((block.where, line, *command, " ... " in f" {line} "))
    return found


COMMANDS = shown_commands()


def parse(module: str, argv: list[str], elided: bool) -> str | None:
    """The parser's error message for ``argv``, or None when it parses. With ``elided`` (the line leaves
    arguments out with ``...``) required arguments may be missing."""
    parser = cli_parsers.module_parser(module)
    saved = [(a, a.required) for a in parser._actions] + [(g, g.required) for g in parser._mutually_exclusive_groups]
    if elided:
        for item, _ in saved:
            item.required = False
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as exit_:
        return stderr.getvalue().strip().splitlines()[-1] if exit_.code else None
    finally:
        for item, required in saved:
            item.required = required
    return None


def test_the_pages_show_every_command():
    shown = {module.rsplit(".", 1)[-1] for _, _, module, _, _ in COMMANDS}
    assert {name for name, _ in cli_parsers.commands().values()} <= shown
    assert {"label_efficiency", "ablations"} <= shown


@pytest.mark.parametrize(("where", "line", "module", "argv", "elided"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_shown_command_parses(where, line, module, argv, elided):
    error = parse(module, argv, elided)
    assert error is None, f"{where}: `{line}` does not parse: {error}"


def test_a_wrong_flag_is_caught():
    assert "unrecognized arguments: --no_such_flag" in parse("hf_mim.cli.pretrain", ["--no_such_flag"], False)
    assert "invalid choice" in parse("hf_mim.cli.pretrain", ["--method", "beit"], False)
    assert parse("hf_mim.cli.finetune", ["--linear_probe"], True) is None  # elided: required flags may be missing
    assert "required" in parse("hf_mim.cli.finetune", ["--linear_probe"], False)


def test_the_analyze_command_names_folders_the_experiment_writes(tmp_path, monkeypatch):
    """Runs the label-efficiency experiment's own folder logic (training replaced by stubs that write what a real
    run writes) with the attention page's budget, then checks every folder its ``hf-mim analyze`` line names."""
    import datasets
    import numpy as np
    from PIL import Image

    from hf_mim.experiments import label_efficiency as le

    shown = [c for c in COMMANDS if c[0].startswith("docs/results/analysis.md") and c[2] == "hf_mim.cli.analyze"]
    study = [c for c in COMMANDS if c[0].startswith("docs/results/analysis.md") and c[2].endswith("label_efficiency")]
    assert len(shown) == 1 and len(study) == 1
    study_argv, analyze_argv = study[0][3], shown[0][3]

    class StubPretrainer:
        def __init__(self, args):
            self.out = Path(args.output_dir)
            self.args = args

        def train(self):
            self.out.mkdir(parents=True)
            config = {"hard_patches_mining": False}
            (self.out / "config.json").write_text(json.dumps(config))
            (self.out / "training_args.json").write_text(json.dumps({"recipe": None}))
            (self.out / "all_results.json").write_text(json.dumps({"train_runtime_s": 1.0, "train_loss": 1.0}))

    def stub_finetune(args, training_args):
        Path(training_args.output_dir).mkdir(parents=True)
        return {"eval_accuracy": 0.5}

    monkeypatch.setattr(le, "Pretrainer", StubPretrainer)
    monkeypatch.setattr(le, "finetune", stub_finetune)
    monkeypatch.setattr(le, "knn_top1", lambda *args: 0.5)
    monkeypatch.setattr(le, "plot", lambda *args: None)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(400)]
    data = datasets.Dataset.from_dict({"image": images, "label": [i % 10 for i in range(400)]})
    data.cast_column("image", datasets.Image()).to_parquet(str(tmp_path / "train.parquet"))

    options = cli_parsers.module_parser("hf_mim.experiments.label_efficiency").parse_args(study_argv)
    monkeypatch.chdir(tmp_path)
    argv = ["--train_file", "train.parquet", "--budget", options.budget, "--output_dir", options.output_dir,
            "--val_size", "100", "--cpu"]  # fmt: skip
    le.main(argv)

    parser = cli_parsers.module_parser("hf_mim.cli.analyze")
    args = parser.parse_args(analyze_argv)
    named = [*args.model_name_or_path, *args.data_files]
    missing = [path for path in named if not (tmp_path / path).exists()]
    command = shlex.join(["hf-mim", "analyze", *analyze_argv])
    assert not missing, f"`{command}` names folders the study never writes: {missing}"
