"""choirci: gate a Nix + Rust monorepo's promotion on real evidence, through pytest."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
