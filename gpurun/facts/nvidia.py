"""Facts about the NVIDIA driver on the host: nvidia-smi, the kernel module, the device nodes."""

from __future__ import annotations

from dataclasses import dataclass

from gpurun.host import Host

DEVICE_NODES_SCRIPT = (
    "for f in /dev/nvidiactl /dev/nvidia[0-9]* /dev/nvidia-uvm /dev/nvidia-uvm-tools "
    '/dev/nvidia-modeset; do [ -e "$f" ] && echo "$f"; done; true'
)
MODULE_LOADED, MODULE_NOT_LOADED = "loaded", "not loaded"


@dataclass(frozen=True)
class DriverFacts:
    nvidia_smi: str | None
    driver_loaded: bool  # nvidia-smi ran and listed the GPUs
    kernel_module: str  # MODULE_LOADED or MODULE_NOT_LOADED
    device_nodes: list[str]
    gpus: list[str]
    detail: str  # nvidia-smi's result in a few words
    smi_exit_code: int | None = None
    smi_output: str = ""

    @property
    def summary(self) -> str:
        if self.driver_loaded:
            return f"driver loaded, {len(self.gpus)} GPU(s)"
        return f"no NVIDIA driver on this host ({self.state})"

    @property
    def state(self) -> str:
        """Return the three probes in one line: nvidia-smi, kernel module, device nodes."""
        nodes = ", ".join(self.device_nodes) if self.device_nodes else "no /dev/nvidia* nodes"
        return f"{self.detail}; kernel module nvidia {self.kernel_module}; {nodes}"


def parse_gpu_list(output: str) -> list[str]:
    """Return the GPU lines of `nvidia-smi -L` ("GPU 0: NVIDIA A100 ... (UUID: ...)")."""
    return [line.strip() for line in output.splitlines() if line.startswith("GPU ")]


def module_loaded(host: Host, name: str = "nvidia") -> bool:
    """Return whether a kernel module is loaded, from /proc/modules or else /sys/module."""
    modules = host.read_text("/proc/modules")
    if modules is not None:
        return any(line.split()[:1] == [name] for line in modules.splitlines())
    return host.exists(f"/sys/module/{name}")


def gather(host: Host) -> DriverFacts:
    """Probe nvidia-smi, the kernel module and the device nodes; no GPU is a normal result."""
    module = MODULE_LOADED if module_loaded(host) else MODULE_NOT_LOADED
    nodes = host.run(["sh", "-c", DEVICE_NODES_SCRIPT], check=False).stdout.split()
    smi = host.which("nvidia-smi")
    if smi is None:
        return DriverFacts(None, False, module, nodes, [], "nvidia-smi not found")

    result = host.run([smi, "-L"], check=False, timeout=60)
    output = (result.stdout + result.stderr).strip()
    if not result.ok:
        first_line = output.splitlines()[:1]
        detail = f"nvidia-smi exited {result.exit_code}: {' '.join(first_line) or 'no output'}"
        return DriverFacts(smi, False, module, nodes, [], detail, result.exit_code, output)

    gpus = parse_gpu_list(result.stdout)
    detail = f"nvidia-smi lists {len(gpus)} GPU(s)"
    return DriverFacts(smi, bool(gpus), module, nodes, gpus, detail, 0, output)
