import math

import numpy as np
import pytest

from hf_mim.masking import (
    BlockwiseMaskGenerator,
    RandomMaskGenerator,
    SimMIMMaskGenerator,
    build_mask_generator,
)


@pytest.mark.parametrize("num_patches, ratio", [(196, 0.75), (196, 0.4), (64, 0.6), (49, 0.75), (10, 0.0)])
def test_random_exact_count_mae_convention(num_patches, ratio):
    gen = RandomMaskGenerator(num_patches, ratio, rng=0)
    expected = num_patches - int(num_patches * (1 - ratio))
    assert gen().shape == (num_patches,) and gen().dtype == bool
    assert gen().sum() == expected
    batch = gen.generate(32)
    assert batch.shape == (32, num_patches) and batch.dtype == bool
    assert (batch.sum(1) == expected).all()


def test_random_is_uniform_over_positions():
    gen = RandomMaskGenerator(49, 0.75, rng=1)
    freq = gen.generate(4000).mean(0)
    expected = (49 - int(49 * 0.25)) / 49
    assert np.abs(freq - expected).max() < 0.04


def test_seed_determinism_all_generators():
    makers = [
        lambda s: RandomMaskGenerator(196, 0.75, rng=s),
        lambda s: SimMIMMaskGenerator(192, 32, 4, 0.6, rng=s),
        lambda s: BlockwiseMaskGenerator(14, 78, rng=s),
    ]
    for make in makers:
        a, b, c = make(7).generate(8), make(7).generate(8), make(8).generate(8)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
        # a Generator instance is accepted as well as a seed
        np.testing.assert_array_equal(make(np.random.default_rng(7)).generate(8), a)


def test_simmim_counts_and_block_structure():
    gen = SimMIMMaskGenerator(input_size=192, mask_patch_size=32, model_patch_size=4, mask_ratio=0.6, rng=0)
    assert gen.num_patches == 48 * 48
    mask = gen().reshape(48, 48)
    cells = mask.reshape(6, 8, 6, 8).transpose(0, 2, 1, 3).reshape(6, 6, 64)
    # every coarse cell is either fully masked or fully visible
    assert set(np.unique(cells.sum(-1))) <= {0, 64}
    assert cells.all(-1).sum() == math.ceil(36 * 0.6)
    assert mask.sum() == math.ceil(36 * 0.6) * 64


def test_simmim_vit_grid_and_coverage():
    gen = SimMIMMaskGenerator(input_size=224, mask_patch_size=32, model_patch_size=16, mask_ratio=0.6, rng=3)
    batch = gen.generate(3000)
    assert batch.shape == (3000, 196)
    assert (batch.sum(1) == math.ceil(49 * 0.6) * 4).all()
    assert np.abs(batch.mean(0) - math.ceil(49 * 0.6) / 49).max() < 0.04


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"input_size": 100}, "input_size"),
        ({"mask_patch_size": 12, "model_patch_size": 5}, "mask_patch_size"),
        ({"mask_ratio": 1.5}, "mask_ratio"),
        ({"model_patch_size": 0}, "model_patch_size"),
    ],
)
def test_simmim_divisibility_errors(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SimMIMMaskGenerator(**kwargs)


def test_simmim_refuses_a_mask_that_hides_every_cell():
    # 32 px cells on a 32 px image: one cell, ceil(0.6) = 1 masked, the encoder would see nothing
    with pytest.raises(ValueError, match="mask all 1 cell"):
        SimMIMMaskGenerator(input_size=32, mask_patch_size=32, model_patch_size=4, mask_ratio=0.6)
    assert SimMIMMaskGenerator(input_size=32, mask_patch_size=8, model_patch_size=4, mask_ratio=0.6)().mean() < 1
    assert SimMIMMaskGenerator.hides_every_cell(32, 32, 0.6) and SimMIMMaskGenerator.hides_every_cell(192, 64, 0.9)
    assert not SimMIMMaskGenerator.hides_every_cell(192, 64, 0.8)  # ceil(9 * 0.8) = 8 of 9 cells


def test_random_bad_parameters():
    with pytest.raises(ValueError, match="num_patches"):
        RandomMaskGenerator(0, 0.5)
    with pytest.raises(ValueError, match="mask_ratio"):
        RandomMaskGenerator(10, 1.0)
    with pytest.raises(ValueError, match="batch_size"):
        RandomMaskGenerator(10, 0.5).generate(0)
    with pytest.raises(ValueError, match="rng"):
        RandomMaskGenerator(10, 0.5, rng="seed")


@pytest.mark.parametrize(
    "size, count, min_patches", [(14, 78, 15), (14, 118, 16), (8, 40, 4), (4, 12, 2), (14, 196, 15), (2, 3, 15)]
)
def test_blockwise_always_exact_count(size, count, min_patches):
    gen = BlockwiseMaskGenerator(size, count, min_num_patches=min_patches, rng=0)
    batch = gen.generate(300)
    assert batch.shape == (300, size * size)
    assert (batch.sum(1) == count).all()


def test_blockwise_is_blocky_and_covers_grid():
    gen = BlockwiseMaskGenerator(14, 78, min_num_patches=15, rng=5)
    batch = gen.generate(2000).reshape(-1, 14, 14)
    # masked patches mostly have masked 4-neighbours (blocks), unlike random masking
    padded = np.pad(batch, ((0, 0), (1, 1), (1, 1)))
    neighbours = padded[:, :-2, 1:-1] | padded[:, 2:, 1:-1] | padded[:, 1:-1, :-2] | padded[:, 1:-1, 2:]
    assert (neighbours & batch).sum() / batch.sum() > 0.95
    freq = batch.mean(0)
    # every position, corners included, gets masked; blocks favour the centre as in BEiT's generator
    assert freq.min() > 0.02
    assert freq[5:9, 5:9].mean() > freq[0].mean()
    assert abs(batch.mean() - 78 / 196) < 1e-9


def test_blockwise_bad_parameters():
    with pytest.raises(ValueError, match="num_masking_patches"):
        BlockwiseMaskGenerator(14, 300)
    with pytest.raises(ValueError, match="max_num_patches"):
        BlockwiseMaskGenerator(14, 78, min_num_patches=20, max_num_patches=10)
    with pytest.raises(ValueError, match="min_aspect"):
        BlockwiseMaskGenerator(14, 78, min_aspect=0)


def test_build_mask_generator():
    gen = build_mask_generator("blockwise", rng=0, input_size=14, num_masking_patches=78)
    assert isinstance(gen, BlockwiseMaskGenerator) and gen().sum() == 78
    assert BlockwiseMaskGenerator(**gen.to_dict())().sum() == 78
    with pytest.raises(ValueError, match="mask_type"):
        build_mask_generator("checkerboard")
    with pytest.raises(ValueError, match="blockwise"):
        build_mask_generator("blockwise", input_size=14, bogus=1)
