"""The demo bundle builder, for machines without internet but with Debian's apt sources.

It makes a bundle of the same format as the real download path: a Docker static tarball from
Debian's packages, stand-in NVIDIA Container Toolkit packages that contain no NVIDIA code, and a
busybox test image.
"""

from __future__ import annotations

from gpurun.demo.builder import DEMO_BUILDER, build_demo_bundle
from gpurun.demo.standin_deb import build_standin_debs
from gpurun.demo.standin_rpm import build_standin_rpms

__all__ = ["DEMO_BUILDER", "build_demo_bundle", "build_standin_debs", "build_standin_rpms"]
