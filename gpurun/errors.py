"""The exceptions gpurun raises. Every error is a GpurunError."""

from __future__ import annotations

from collections.abc import Sequence


class GpurunError(Exception):
    """Root of every error gpurun raises on purpose."""


class BundleError(GpurunError):
    """A bundle is missing, incomplete, corrupted or does not fit the host."""


class ConfigError(GpurunError):
    """A configuration file (daemon.json, an inventory, a unit) is invalid."""


class PreflightError(GpurunError):
    """A host has a blocking finding, so nothing was changed on it."""


class SandboxError(GpurunError):
    """A sandbox host could not be built, booted or removed."""


class RemoteCommandError(GpurunError):
    """A command on a host exited with an unexpected status."""

    def __init__(
        self,
        host: str,
        argv: Sequence[str],
        exit_code: int | None,
        stdout: str,
        stderr: str,
        hint: str = "",
    ) -> None:
        self.host = host
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        lines = [
            f"command failed on host {self.host}",
            f"  command:   {' '.join(self.argv)}",
            f"  exit code: {self.exit_code}",
        ]
        for label, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            text = text.strip()
            if text:
                indented = text.replace("\n", "\n" + " " * 13)
                lines.append(f"  {label + ':':<10} {indented}")
        if self.hint:
            lines.append(f"  next step: {self.hint}")
        return "\n".join(lines)


class ConnectionFailed(GpurunError):
    """A host could not be reached or refused the login."""


class RunInterrupted(GpurunError):
    """A run the operator interrupted (Ctrl-C).

    Each host's run.json records the step the host stopped in.
    """
