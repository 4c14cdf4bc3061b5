"""verify: docker info, the runtime binaries, and containers run through the nvidia runtime."""

from __future__ import annotations

from pathlib import Path

from gpurun.bundle.manifest import BundleFile, Manifest
from gpurun.facts import nvidia as nvidia_facts
from gpurun.host import Host
from gpurun.operations.bundle_files import ensure_uploaded
from gpurun.plan import Action, Check, check, skipped, unchanged
from gpurun.step import Step
from gpurun.steps import nvidia_toolkit
from gpurun.steps import runtime as runtime_step

VERIFY_MESSAGE = "gpurun-verify-ok"


def gather(step: Step, manifest: Manifest) -> nvidia_facts.DriverFacts:
    """Read the driver state and whether the test image is already loaded."""
    driver = nvidia_facts.gather(step.host)
    image = manifest.test_image()
    step.show_facts({
        "NVIDIA driver": driver.summary,
        "test image": image.image if image else "none in bundle",
        "test image loaded": bool(image and _image_loaded(step.host, image)),
    })
    return driver


def plan(step: Step, manifest: Manifest, bundle_dir: str) -> list[Action]:
    """Load the bundle's test image unless dockerd already has it (no registry is reachable)."""
    host = step.host
    image = manifest.test_image()
    if image is None:
        return [unchanged("test image", "the bundle has none")]
    if _image_loaded(host, image):
        return [unchanged(f"image {image.image}", "already loaded")]

    def load() -> None:
        remote = ensure_uploaded(host, Path(bundle_dir), image.path, image.sha256)
        host.run(["docker", "load", "-i", str(remote)], timeout=300)

    return [Action(f"image {image.image}", "docker load from the bundle", "not loaded", load)]


def verify(step: Step, manifest: Manifest, driver: nvidia_facts.DriverFacts,
           *, set_default: bool = True) -> list[Check]:
    """Check the runtime configuration, the runtime binaries and real container runs."""
    host = step.host
    checks = runtime_step.verify(step, set_default=set_default)
    checks += [c for c in nvidia_toolkit.verify(step, manifest) if c.name.endswith(" runs")]
    image = manifest.test_image()
    if image is None or not image.image:
        checks.append(skipped("container runs", "the bundle has no test image"))
        return checks
    if step.plan_only:
        # A container run writes under /var/lib/docker, and a plan changes nothing.
        checks.append(skipped("container runs", "a plan-only run starts no container"))
        return checks

    result = host.run(["docker", "run", "--rm", image.image, "echo", VERIFY_MESSAGE],
                      check=False, timeout=120)
    checks.append(check("container runs with the default runtime",
                        result.ok and VERIFY_MESSAGE in result.stdout,
                        (result.stdout + result.stderr).strip()[-300:]))
    checks.append(_gpu_check(host, image, driver))
    return checks


def _gpu_check(host: Host, image: BundleFile, driver: nvidia_facts.DriverFacts) -> Check:
    """Run a container that requests every GPU, where the host has a driver to give them."""
    if not driver.driver_loaded:
        return skipped("container sees the GPUs", f"no NVIDIA driver on this host: {driver.detail}")
    result = host.run(["docker", "run", "--rm", "--gpus", "all", str(image.image),
                       "ls", "/dev/nvidiactl"], check=False, timeout=120)
    return check("container sees the GPUs", result.ok,
                 (result.stdout + result.stderr).strip()[-300:])


def _image_loaded(host: Host, image: BundleFile) -> bool:
    return bool(image.image) and host.succeeds(["docker", "image", "inspect", str(image.image)])
