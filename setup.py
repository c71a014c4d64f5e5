"""Installs hf_mim from src/ (``pip install .``, or ``pip install -e .[dev]`` to develop).

The model-card templates in the top-level ``model_cards/`` ship inside the package as ``hf_mim.model_cards``, so a
wheel needs nothing from the checkout at run time. ``hf-mim`` is the console command.

torch is listed as a plain range on purpose: install scripts put the wanted torch build in place first
(a CPU wheel on CPU machines, the machine's own CUDA build on GPU machines), and pip then keeps it.
"""

from pathlib import Path

from setuptools import find_packages, setup

#: The documentation site (mkdocs.yml, docs/): MkDocs 1.x with Material and mkdocstrings; MkDocs 2 drops the plugin
#: and hook API the site uses, hence the upper bound.
DOCS = [
    "mkdocs>=1.6,<2",
    "mkdocs-material>=9.6,<10",
    "mkdocstrings>=1.0",
    "mkdocstrings-python>=2.0",
    "mkdocs-autorefs>=1.4",
]

setup(
    name="hf_mim",
    version="0.1.0",
    description="Masked image modeling pretraining (MaskFeat, SimMIM, HPM) as transformers models",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    package_dir={"": "src", "hf_mim.model_cards": "model_cards"},
    packages=find_packages("src") + ["hf_mim.model_cards"],
    package_data={"hf_mim": ["metrics/*/*.py", "py.typed"], "hf_mim.model_cards": ["*.md"]},
    entry_points={"console_scripts": ["hf-mim = hf_mim.cli:main"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "transformers>=5.0",
        "datasets>=5.2",  # 5.0.x: IterableDataset.shuffle() reported one shard for < 20 files (datasets#8669)
        "accelerate>=1.0",
        "safetensors>=0.4",
        "huggingface_hub>=1.0",
        "evaluate>=0.4",
        "numpy>=1.24",
        "pillow>=10.0",
        "tqdm>=4.66",
        "filelock>=3.12",
        "scikit-image>=0.22",  # the photos of the embedded demo data
        "kornia>=0.7",  # the fine-tuning recipes' batched augmentation (pure torch; timm needs torchvision)
    ],
    extras_require={
        "analysis": ["matplotlib>=3.7", "scipy>=1.10"],
        "docs": DOCS,
        # the tests build the docs (tests/docs), so the test tools include the docs toolchain
        "dev": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "ruff>=0.6",
            "scipy>=1.10",
            "tensorboard>=2.14",
            "matplotlib>=3.7",
            *DOCS,
        ],
    },
)
