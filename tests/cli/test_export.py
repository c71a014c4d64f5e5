"""``hf-mim export``: the command's own refusals."""

from __future__ import annotations

import pytest

from hf_mim import get_model_spec


def test_export_refuses_to_overwrite_its_source(tmp_path, capsys):
    from hf_mim.cli import export

    spec = get_model_spec("maskfeat")
    spec.pretraining_class(spec.tiny_config()).save_pretrained(tmp_path)
    with pytest.raises(SystemExit):
        export.main(["--model_name_or_path", str(tmp_path), "--output_dir", str(tmp_path)])
    assert "would overwrite the checkpoint" in capsys.readouterr().err
