"""gpurun: runbooks that install Docker and the NVIDIA container runtime on offline GPU hosts."""

from __future__ import annotations

__version__ = "0.1.0"
