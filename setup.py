"""rep4d: Hugging Face Transformers ports of 4DS, MooG and RVM video representation models.

The repository's top-level folders are mapped onto the importable ``rep4d`` package:
``modeling/`` -> ``rep4d.modeling``, ``configuration/`` -> ``rep4d.configuration`` and so on.
"""

from pathlib import Path

from setuptools import find_packages, setup

MAPPED_FOLDERS = ["configuration", "modeling", "processing", "training", "model_cards", "model_zoo"]
found = find_packages(include=MAPPED_FOLDERS + [f"{folder}.*" for folder in MAPPED_FOLDERS])
rep4d_subpackages = find_packages(include=["rep4d", "rep4d.*"])

setup(
    name="rep4d",
    version="0.1.0",
    description="4DS, MooG and RVM self-supervised video representations for Hugging Face Transformers",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=rep4d_subpackages + [f"rep4d.{package}" for package in found],
    package_dir={"rep4d": "rep4d", **{f"rep4d.{folder}": folder for folder in MAPPED_FOLDERS}},
    # The evaluate metric modules are plain scripts loaded by path (evaluate.load), not importable packages.
    package_data={
        "rep4d": ["py.typed", "manifests/*/*.json", "assets/*.mp4", "assets/*.md"],
        "rep4d.training": ["configs/*", "metric_modules/README.md", "metric_modules/*/*.py"],
        "rep4d.model_cards": ["template.md", "*/README.md"],
        "rep4d.model_zoo": ["*/*.json", "*/*.safetensors", "*/*.md", "*/*.csv", "*/*.py"],
    },
    include_package_data=True,
    install_requires=[
        "torch>=2.14",
        "torchvision",
        "transformers>=5.23,<6",
        "accelerate>=1.10",
        "datasets>=4",
        "evaluate>=0.4.6",
        "safetensors>=0.6",
        "av>=18",
        "huggingface_hub>=1.0",
        "numpy",
        "pillow",
        "tqdm",
        "scipy",  # scipy.io.loadmat: JHMDB joint_positions.mat (rep4d benchmark propagation)
    ],
    extras_require={
        "dev": ["pytest>=8", "pytest-timeout", "ruff", "tensorboard", "scipy", "parameterized", "timm>=1.0"],
        # Backbones whose transformers classes need more than transformers: pe_video's vision tower is a timm model.
        "backbones": ["timm>=1.0"],
        "deepspeed": ["deepspeed"],
    },
    entry_points={"console_scripts": ["rep4d=rep4d.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
