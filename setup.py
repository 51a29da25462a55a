"""ttscale: test-time scaling (budget forcing and PRM-guided search) on plain PyTorch + transformers."""

from setuptools import find_packages, setup

setup(
    name="ttscale",
    version="0.1.0",
    description="Test-time scaling engine for Hugging Face models: s1 budget forcing, best-of-N, beam search, DVTS",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["engine", "engine.*", "train", "train.*", "curation", "curation.*",
                                    "benchmarks", "benchmarks.*"]),
    install_requires=[
        "torch>=2.4",
        "transformers>=5.0",
        "accelerate>=1.0",
        "datasets>=3.0",
        "safetensors>=0.4",
        "gguf>=0.10",          # loading the embedded GGUF models
        "filelock",
        "tqdm",
        "math-verify>=0.7",    # answer equivalence (REFERENCE §6)
        "matplotlib>=3.7",     # scaling-curve figures
    ],
    extras_require={
        "gpu": ["flash-attn>=2.5", "bitsandbytes>=0.43"],
        "dev": ["pytest>=8", "hypothesis>=6"],
    },
    entry_points={"console_scripts": ["ttscale=engine.cli:main"]},
)
