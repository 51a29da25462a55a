"""ttscale: test-time scaling (budget forcing and PRM-guided search) on plain PyTorch + transformers.

Dependency policy (README "Tested versions"): each core dependency's floor is the oldest release the suite has
passed on (`bash scripts/compat.sh --floor` installs every floor at once); transformers, which changes internals
between minors, also has a ceiling just above the newest release tested (`bash scripts/compat.sh VERSION` tries a
newer one). `bash scripts/setup.sh` installs the exact versions of constraints.txt (`bash scripts/lock.sh` refreshes it).
"""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "torch>=2.13.0",
    "transformers>=5.21.0,<5.25",
    "accelerate>=1.10.0",
    "datasets>=4.4.0",
    "safetensors>=0.8.0",
    "gguf>=0.17.1",          # loading the embedded GGUF models
    "filelock>=3.16.1",
    "tqdm>=4.67.1",
    "math-verify>=0.8.0",    # answer equivalence (REFERENCE §6)
    "matplotlib>=3.9.0",     # scaling-curve figures
    "pyyaml>=6.0.1",         # --config FILE.yaml (transformers needs it too)
    "datasketch>=2.0,<3",    # curation: MinHash LSH near-dedup (tested with 2.0.0)
    "trl>=1.16,<2",          # train: SFTTrainer (tested with 1.16.0)
    "peft>=0.21,<1",         # train: --lora (tested with 0.21.2)
    "fastapi>=0.165,<1",     # serve: the HTTP API (tested with 0.165.0)
    "uvicorn>=0.54,<1",      # serve: the ASGI server (tested with 0.54.0)
]

setup(
    name="ttscale",
    version="0.1.0",
    description="Test-time scaling engine for Hugging Face models: s1 budget forcing, best-of-N, beam search, DVTS",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["engine", "engine.*", "train", "train.*", "curation", "curation.*",
                                    "benchmarks", "benchmarks.*"]),
    package_data={"train": ["accelerate/*.yaml"],  # the shipped accelerate configs (train/launch.py: config_path)
                  "engine.view": ["assets/*.js", "assets/*.css"]},  # the viewer page's script and stylesheet
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "gpu": ["flash-attn>=2.5", "bitsandbytes>=0.43"],
        "dev": ["pytest>=8", "hypothesis>=6", "ruff>=0.17,<0.18",
                "openai>=3.57,<4",       # the real client of the server tests (tested with 3.57.0)
                "playwright>=1.65,<2"],  # drives Debian's Chromium in the viewer tests (tested with 1.65.2)
    },
    entry_points={"console_scripts": ["ttscale=engine.cli.main:main"]},
)
