"""hywu: local text-guided photo editing with generated, instance-specific LoRA updates (HY-WU)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


__version__ = "0.1.0"

__all__ = ["__version__", "load_pipeline"]

if TYPE_CHECKING:
    from hywu_cli.pipeline import HywuPipeline


def load_pipeline(model: str = "hywu-lite", device: str = "auto", dtype: str = "auto") -> HywuPipeline:
    """Load a model by name or folder; see `hywu_cli.pipeline.load_pipeline`. Imports torch on first call."""
    from hywu_cli.pipeline import load_pipeline as _load_pipeline

    return _load_pipeline(model, device=device, dtype=dtype)


def __getattr__(name: str) -> Any:
    if name == "HywuPipeline":
        from hywu_cli.pipeline import HywuPipeline

        return HywuPipeline
    raise AttributeError(f"module 'hywu_cli' has no attribute {name!r}")
