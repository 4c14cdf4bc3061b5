"""Facts about the NVIDIA driver on the host."""

from __future__ import annotations

from dataclasses import dataclass

from gpurun.host import Host


@dataclass(frozen=True)
class DriverFacts:
    nvidia_smi: str | None
    driver_loaded: bool
    device_nodes: bool
    gpus: list[str]
    detail: str

    @property
    def summary(self) -> str:
        if self.driver_loaded:
            return f"driver loaded, {len(self.gpus)} GPU(s)"
        return f"no NVIDIA driver on this host ({self.detail})"


def gather(host: Host) -> DriverFacts:
    """Probe nvidia-smi and the device nodes; a host without GPUs is a normal answer."""
    device_nodes = host.exists("/dev/nvidiactl")
    smi = host.which("nvidia-smi")
    if smi is None:
        return DriverFacts(None, False, device_nodes, [], "nvidia-smi not found")

    result = host.run([smi, "-L"], check=False)
    if not result.ok:
        first_line = (result.stdout + result.stderr).strip().splitlines()[:1]
        detail = f"nvidia-smi exited {result.exit_code}: {' '.join(first_line)}"
        return DriverFacts(smi, False, device_nodes, [], detail)

    gpus = [line for line in result.stdout.splitlines() if line.startswith("GPU ")]
    return DriverFacts(smi, True, device_nodes, gpus, "nvidia-smi answered")
