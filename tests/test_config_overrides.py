"""``--config_overrides`` and config files: typed by the config's fields, unknown keys refused with a suggestion."""

from __future__ import annotations

import pytest

from hf_mim.config_overrides import parse_config_overrides


def test_config_overrides_are_typed_and_checked():
    assert parse_config_overrides("hard_patches_mining=False,norm_pix_loss=0,mask_ratio=0.6", "hpm") == {
        "hard_patches_mining": False, "norm_pix_loss": False, "mask_ratio": 0.6}  # fmt: skip
    with pytest.raises(ValueError, match="Did you mean 'hidden_size'"):
        parse_config_overrides("hiden_size=64", "maskfeat")
    with pytest.raises(ValueError, match="boolean"):
        parse_config_overrides("norm_pix_loss=maybe", "hpm")
    nested = parse_config_overrides("encoder_config.window_size=6,encoder_config.depths=[2,2,6,2]", "simmim")
    assert nested == {"encoder_config": {"window_size": 6, "depths": [2, 2, 6, 2]}}
    with pytest.raises(ValueError, match="Did you mean 'window_size'"):
        parse_config_overrides("encoder_config.windw_size=6", "simmim")
    from hf_mim.training import build_config

    config = build_config(
        "simmim", preset="swin-test", **parse_config_overrides("encoder_config.window_size=2", "simmim")
    )
    assert config.encoder_config.window_size == 2 and config.encoder_config.embed_dim == 16


def test_config_file_with_unknown_keys_is_refused(tmp_path):
    from hf_mim.training import build_config

    (tmp_path / "c.json").write_text('{"hidden_size": 64, "hiden_size": 64}')
    with pytest.raises(ValueError, match="Unknown maskfeat config .*hiden_size.*Did you mean 'hidden_size'"):
        build_config("maskfeat", config_file=str(tmp_path / "c.json"))
