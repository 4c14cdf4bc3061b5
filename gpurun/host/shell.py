"""One long-lived `sh` on a host that runs gpurun's commands one after another.

A run sends a few hundred short commands (facts, checks, small writes). Starting an ssh client
for each cost 20 to 250 ms on a loaded test machine, even over a shared connection. Writing
them to one shell over one ssh channel costs one round trip each.

Each command is written as one shell line that ends by printing a marker, with the exit status,
on stdout and the same marker on stderr. The marker is random per command, so no output can
end a command early. A command that outlives its timeout closes the shell; the next command
starts a new one.
"""

from __future__ import annotations

import os
import secrets
import selectors
import shlex
import subprocess
import time

from gpurun.errors import ConnectionFailed

# How long a new shell may take to finish its first command (login, sudo).
START_TIMEOUT_S = 30
READ_SIZE = 65536


class ShellClosed(ConnectionFailed):
    """The shell ended while a command ran (the host went away, or ssh failed)."""


class ShellTimedOut(ConnectionFailed):
    """A command did not finish within its timeout; the shell was closed."""


class Shell:
    """A `sh` started by argv (ssh, or sudo within ssh), fed commands on its stdin."""

    def __init__(self, argv: list[str], *, setup: str = "", preamble: str | None = None):
        """Start argv; preamble (sudo's password line) is written first and never logged."""
        self.argv = argv
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        if preamble is not None:
            self._write(preamble.encode())
        # The first command absorbs what the login prints before the shell starts reading
        # (a banner from .bashrc), and sets the PATH the commands use.
        self.run(setup or "true", timeout=START_TIMEOUT_S)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, command: str, *, stdin: str | None = None,
            timeout: float = 300) -> tuple[int, str, str]:
        """Run one shell command line; return its exit status, stdout and stderr."""
        marker = f"gpurun-end-{secrets.token_hex(12)}"
        # Without stdin of its own, a command reads /dev/null, not the commands that follow.
        if stdin is None:
            command = f"{{ {command}\n}} < /dev/null"
        else:
            command = f"printf '%s' {shlex.quote(stdin)} | {{ {command}\n}}"
        line = (f"{command}; printf '\\n%s %s\\n' {marker} \"$?\"; "
                f"printf '\\n%s\\n' {marker} >&2\n")
        try:
            self._write(line.encode())
            stdout, stderr = self._read_until(marker, timeout)
        except BaseException:
            # An interrupted command would leave its output in front of the next one's.
            self.close()
            raise
        body, _, status = stdout.rpartition(f"\n{marker} ".encode())
        return (int(status.strip() or b"255"), body.decode(errors="replace"),
                stderr.decode(errors="replace"))

    def close(self) -> None:
        if self.alive:
            try:
                self.process.stdin.close()  # type: ignore[union-attr]
                self.process.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()

    def _write(self, data: bytes) -> None:
        try:
            self.process.stdin.write(data)  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError) as error:
            raise ShellClosed(self._ended_message(self._rest_of_stderr())) from error

    def _read_until(self, marker: str, timeout: float) -> tuple[bytes, bytes]:
        """Read stdout and stderr until each shows the marker; return both without it."""
        ends = {self.process.stdout: f"\n{marker} ".encode(),
                self.process.stderr: f"\n{marker}\n".encode()}
        buffers = {stream: bytearray() for stream in ends}
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            for stream in ends:
                selector.register(stream, selectors.EVENT_READ)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.close()
                    raise ShellTimedOut(f"timed out after {timeout:.0f} s, so the shell was closed")
                for key, _ in selector.select(remaining):
                    stream = key.fileobj
                    chunk = os.read(key.fd, READ_SIZE)
                    if not chunk:
                        raise ShellClosed(self._ended_message(
                            bytes(buffers[self.process.stderr]) + self._rest_of_stderr()))
                    buffers[stream] += chunk
                    if _finished(buffers[stream], ends[stream], stream is self.process.stdout):
                        selector.unregister(stream)
        out = bytes(buffers[self.process.stdout])
        err = bytes(buffers[self.process.stderr])
        return out, err[: err.rfind(ends[self.process.stderr])]

    def _rest_of_stderr(self, wait_s: float = 2) -> bytes:
        """Return the rest of the ended shell's stderr, where ssh writes why it failed."""
        if self.process.stderr is None or self.process.stderr.closed:
            return b""
        rest = bytearray()
        deadline = time.monotonic() + wait_s
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stderr, selectors.EVENT_READ)
            while (remaining := deadline - time.monotonic()) > 0 and selector.select(remaining):
                chunk = os.read(self.process.stderr.fileno(), READ_SIZE)  # type: ignore[union-attr]
                if not chunk:
                    break
                rest += chunk
        return bytes(rest)

    def _ended_message(self, output: bytes = b"") -> str:
        self.close()
        status = self.process.poll()
        text = output.decode(errors="replace").strip().splitlines()
        detail = f": {text[-1]}" if text else ""
        return f"the shell on the host ended (exit status {status}){detail}"


def _finished(buffer: bytearray, end: bytes, with_status: bool) -> bool:
    """Return whether buffer contains the end marker (and, on stdout, the status line after it)."""
    at = buffer.rfind(end)
    if at < 0:
        return False
    return not with_status or buffer.endswith(b"\n")
