"""Host: run a command, read a file, upload a file, change a file atomically with a backup.

Everything gpurun does to a machine goes through this class, so every command is journalled
and every file it changes is backed up under the run's folder on the host first.
"""

from __future__ import annotations

import logging
import secrets
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from plumbum import ProcessTimedOut
from plumbum.commands.processes import CommandNotFound
from plumbum.machines.base import BaseMachine

from gpurun.errors import ConnectionFailed, RemoteCommandError
from gpurun.host import hash_cache
from gpurun.host.changes import FileChange, change_journal_line, unified_diff
from gpurun.host.connection import HostSpec, connect, login_failed
from gpurun.host.shell import Shell, ShellClosed, ShellTimedOut
from gpurun.host.sudo import (
    PASSWORD_REQUIRED,
    SUDO_PROBE,
    SUDO_WITH_PASSWORD,
    SUDO_WITHOUT_PASSWORD,
    read_sudo_password,
)

log = logging.getLogger("gpurun.host")

RUNS_DIR = PurePosixPath("/var/lib/gpurun/runs")
EXIT_NOT_FOUND = 127
# How much of a command an error message quotes; the notebook records it whole.
COMMAND_SHOWN = 80

# Reads lines up to the one equal to $1, then becomes the shell that reads the rest. `read`
# takes a pipe one byte at a time, so the new shell starts exactly after that line.
SKIP_TO_LINE = 'while IFS= read -r line; do [ "$line" = "$1" ] && exec sh; done; exit 1'

# The root shell of each host and run, kept for the later steps of the run in the same kernel.
_open_shells: dict[tuple[HostSpec, str], Shell] = {}


@dataclass
class CommandResult:
    """One command run on a host, as it goes into the record."""

    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    sudo: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class Host:
    """A connected host, bound to one run so its backups and journal land in one place."""

    spec: HostSpec
    # plumbum's connection, for uploads and the login's own commands; opened on first use.
    machine: BaseMachine | None
    run_id: str
    commands: list[CommandResult] = field(default_factory=list)
    changes: list[FileChange] = field(default_factory=list)
    # Set once sudo was probed; the password stays in memory only, and out of repr().
    _sudo_prefix: list[str] | None = field(default=None, init=False, repr=False)
    _sudo_password: str | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def run_dir(self) -> PurePosixPath:
        return RUNS_DIR / self.run_id

    # -- commands -------------------------------------------------------------------------

    def run(
        self,
        argv: list[str],
        *,
        check: bool = True,
        stdin: str | None = None,
        timeout: float = 300,
        hint: str = "",
    ) -> CommandResult:
        """Run argv on the host as root (through sudo where the login is not root), journalled."""
        log.debug("%s: %s", self.name, shlex.join(argv))
        started = time.monotonic()
        shell = self._root_shell()
        try:
            exit_code, stdout, stderr = shell.run(shlex.join(argv), stdin=stdin, timeout=timeout)
        except ShellTimedOut as error:
            raise RemoteCommandError(
                self.name, argv, None, "", f"timed out after {timeout} s",
                "check that the host is responsive, then run the step again",
            ) from error
        except ShellClosed as error:
            command = shlex.join(argv)
            if len(command) > COMMAND_SHOWN:
                command = command[:COMMAND_SHOWN] + "..."
            raise ConnectionFailed(
                f"lost the connection to host {self.name} while running `{command}`: {error}\n"
                f"  next step: check that the host is up (`{self.spec.login_hint()}`), then run "
                f"the step again (from the command line: gpurun run with --resume {self.run_id})"
            ) from error
        return self._journal(argv, exit_code, stdout, stderr, started,
                             sudo=self.spec.needs_sudo, check=check, hint=hint)

    def run_as_login(self, argv: list[str], *, check: bool = True) -> CommandResult:
        """Run argv as the ssh login itself, without sudo, journalled."""
        return self._run_journalled(argv, [], check=check, stdin=None, timeout=300, hint="")

    def _run_journalled(
        self, argv: list[str], prefix: list[str], *, check: bool, stdin: str | None,
        timeout: float, hint: str,
    ) -> CommandResult:
        """Run one command over its own ssh session: for the login itself, and sudo's probe."""
        full_argv = [*prefix, *argv]
        log.debug("%s: %s", self.name, shlex.join(full_argv))
        started = time.monotonic()
        exit_code, stdout, stderr = self._execute(full_argv, stdin, timeout)
        return self._journal(argv, exit_code, stdout, stderr, started, sudo=bool(prefix),
                             check=check, hint=hint)

    def _journal(
        self, argv: list[str], exit_code: int, stdout: str, stderr: str, started: float, *,
        sudo: bool, check: bool, hint: str,
    ) -> CommandResult:
        result = CommandResult(
            argv=list(argv),
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            seconds=round(time.monotonic() - started, 3),
            sudo=sudo,
        )
        self.commands.append(result)
        if check and not result.ok:
            raise RemoteCommandError(self.name, argv, exit_code, stdout, stderr, hint)
        return result

    def close(self) -> None:
        """End this run's shell on the host; a later command starts a new one."""
        shell = _open_shells.pop((self.spec, self.run_id), None)
        if shell is not None:
            shell.close()

    def _machine(self) -> BaseMachine:
        if self.machine is None:
            self.machine = connect(self.spec)
        return self.machine

    def _root_shell(self) -> Shell:
        """Return the run's root shell on this host, starting it on first use."""
        key = (self.spec, self.run_id)
        shell = _open_shells.get(key)
        if shell is None or not shell.alive:
            shell = self._start_root_shell()
            _open_shells[key] = shell
        return shell

    def _start_root_shell(self) -> Shell:
        prefix = self._privilege_prefix()
        argv = [*prefix, "sh"]
        preamble = None
        if prefix == SUDO_WITH_PASSWORD:
            # sudo reads the password line only where its policy requires one. Where it does
            # not (NOPASSWD for sh alone), the root shell would run that line as a command, so
            # the shell first skips every line up to a random one that follows the password.
            sync = f"gpurun-sudo-{secrets.token_hex(12)}"
            argv = [*prefix, "sh", "-c", SKIP_TO_LINE, "sh", sync]
            preamble = f"{self._sudo_password}\n{sync}\n"
        if not self.spec.is_local:
            argv = self.spec.ssh_argv(argv)
        setup = "true"
        if self.spec.path_prefix:
            # The folder gpurun installs into goes in front, for sudo's secure_path as well.
            setup = f'PATH={shlex.quote(self.spec.path_prefix)}:"$PATH"; export PATH'
        try:
            return Shell(argv, setup=setup, preamble=preamble)
        except ShellClosed as error:
            if self.spec.is_local:
                raise
            raise login_failed(self.spec, str(error)) from error

    def _privilege_prefix(self) -> list[str]:
        """Return the sudo prefix for root commands, probing sudo on the first call."""
        if not self.spec.needs_sudo:
            return []
        if self._sudo_prefix is None:
            self._sudo_prefix = self._start_sudo()
        return self._sudo_prefix

    def _start_sudo(self) -> list[str]:
        """Find out whether sudo needs a password here; if so, get one and check it once."""
        probe = self._run_journalled(SUDO_PROBE, [], check=False, stdin=None, timeout=60, hint="")
        if probe.ok:
            return SUDO_WITHOUT_PASSWORD
        if PASSWORD_REQUIRED not in probe.stderr:
            raise ConnectionFailed(
                f"sudo failed on host {self.name} for {self.spec.user}: "
                f"{(probe.stderr or probe.stdout).strip() or f'exit code {probe.exit_code}'}\n"
                f"  next step: install sudo and give {self.spec.user} sudo rights, or log in "
                f"as root"
            )

        password = read_sudo_password(self.spec)
        check = self._run_journalled(["true"], SUDO_WITH_PASSWORD, check=False,
                                     stdin=f"{password}\n", timeout=60, hint="")
        if not check.ok:
            raise ConnectionFailed(
                f"sudo on host {self.name} rejected {self.spec.user}: "
                f"{check.stderr.strip() or f'exit code {check.exit_code}'}\n"
                f"  next step: check the password and that {self.spec.user} may run commands "
                f"as root (`sudo -l` on the host)"
            )
        self._sudo_password = password
        return SUDO_WITH_PASSWORD

    def require_root(self) -> None:
        """Check that commands run as root on the host; raise ConnectionFailed if they do not."""
        uid = self.run(["id", "-u"], check=False).stdout.strip()
        if uid == "0":
            return
        raise ConnectionFailed(
            f"commands on host {self.name} run as {self.spec.user} (uid {uid or 'unknown'}), "
            f"not as root\n  next step: set become: true so that gpurun runs them through "
            f"sudo, or log in as root"
        )

    def _execute(self, argv: list[str], stdin: str | None, timeout: float) -> tuple[int, str, str]:
        try:
            command = self._machine()[argv[0]][tuple(argv[1:])]
        except CommandNotFound:
            return EXIT_NOT_FOUND, "", f"{argv[0]}: command not found"
        if stdin is not None:
            command = command << stdin
        try:
            exit_code, stdout, stderr = command.run(retcode=None, timeout=timeout)
        except ProcessTimedOut as error:
            raise RemoteCommandError(
                self.name, argv, None, "", f"timed out after {timeout} s",
                "check that the host is responsive, then run the step again",
            ) from error
        return int(exit_code), str(stdout), str(stderr)

    def succeeds(self, argv: list[str]) -> bool:
        """Return whether argv exits 0 on the host (a read-only probe)."""
        return self.run(argv, check=False).ok

    def which(self, program: str) -> str | None:
        """Return the path of program on the host's PATH (plus the sbin folders), or None."""
        script = 'PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; command -v "$1"'
        result = self.run(["sh", "-c", script, "sh", program], check=False)
        path = result.stdout.strip()
        return path if result.ok and path.startswith("/") else None

    # -- reading ----------------------------------------------------------------------------

    def exists(self, path: str | PurePosixPath) -> bool:
        return self.succeeds(["test", "-e", str(path)])

    def read_text(self, path: str | PurePosixPath) -> str | None:
        """Return the file's text, or None when it does not exist."""
        result = self.run(["cat", "--", str(path)], check=False)
        if result.ok:
            return result.stdout
        if not self.exists(path):
            return None
        raise RemoteCommandError(self.name, ["cat", str(path)], result.exit_code,
                                 result.stdout, result.stderr)

    def sha256(self, path: str | PurePosixPath) -> str | None:
        """Return the file's SHA-256, or None when it does not exist.

        A file whose size, inode, mtime and ctime are unchanged since gpurun last hashed it is
        not hashed again: gpurun.host.hash_cache explains why that is safe.
        """
        login = f"{self.spec.user}@{self.spec.address}:{self.spec.port}"
        stat = self.run(["stat", "-L", "-c", hash_cache.STAT_FORMAT, "--", str(path)],
                        check=False)
        if not stat.ok:
            return None
        signature = stat.stdout.strip()
        known = hash_cache.lookup(login, str(path), signature)
        if known:
            return known
        result = self.run(["sha256sum", "--", str(path)], check=False)
        if not result.ok:
            return None
        digest = result.stdout.split()[0]
        hash_cache.remember(login, str(path), signature, digest)
        return digest

    # -- changing ---------------------------------------------------------------------------

    def upload(self, local_path: Path, remote_path: str | PurePosixPath) -> None:
        """Copy a local file to the host, going through a temporary name so it appears whole.

        A login that is not root copies into a private folder of its own first, and sudo
        installs the file from there as root-owned.
        """
        remote = PurePosixPath(remote_path)
        temporary = remote.with_name(f".{remote.name}.gpurun-part")
        self.run(["mkdir", "-p", str(remote.parent)])
        if self.spec.needs_sudo:
            staging = self.run_as_login(["mktemp", "-d", "/tmp/gpurun-upload.XXXXXXXX"])
            folder = staging.stdout.strip()
            try:
                self._machine().upload(str(local_path), f"{folder}/{remote.name}")
                self.run(["install", "-m", "0644", "-o", "root", "-g", "root", "--",
                          f"{folder}/{remote.name}", str(temporary)])
            finally:
                self.run_as_login(["rm", "-rf", "--", folder], check=False)
        else:
            self._machine().upload(str(local_path), str(temporary))
        self.run(["mv", "-f", str(temporary), str(remote)])
        self.commands.append(CommandResult(["upload", str(local_path), str(remote)], 0, "", "", 0))

    def backup(self, path: str | PurePosixPath) -> str | None:
        """Copy path into this run's backup folder on the host; return the copy's path."""
        if not self.exists(path):
            return None
        copy = self.run_dir / "backup" / str(path).lstrip("/")
        if not self.exists(copy):
            self.run(["mkdir", "-p", str(copy.parent)])
            self.run(["cp", "-a", "--", str(path), str(copy)])
        return str(copy)

    def write_text(
        self, path: str | PurePosixPath, content: str, *, mode: str = "0644"
    ) -> FileChange | None:
        """Write content to path atomically after a backup; return None if it was already so."""
        target = PurePosixPath(path)
        before = self.read_text(target)
        if before == content and self._mode(target) == mode:
            return None

        backup = self.backup(target)
        temporary = target.with_name(f".{target.name}.gpurun-new")
        self.run(["mkdir", "-p", str(target.parent)])
        self.run(["sh", "-c", 'umask 077 && cat > "$1"', "sh", str(temporary)], stdin=content)
        self.run(["chmod", mode, str(temporary)])
        self.run(["chown", "0:0", str(temporary)])
        self.run(["mv", "-f", str(temporary), str(target)])

        change = FileChange(
            path=str(target),
            action="created" if before is None else "modified",
            sha256_before=self.sha256(backup) if backup else None,
            sha256_after=self.sha256(target),
            backup=backup,
            diff=unified_diff(str(target), before, content),
        )
        self.record_change(change)
        return change

    def remove(self, path: str | PurePosixPath) -> FileChange | None:
        """Remove path after a backup; return None if it did not exist."""
        backup = self.backup(path)
        if backup is None:
            return None
        before = self.read_text(path)
        self.run(["rm", "-f", "--", str(path)])
        change = FileChange(
            path=str(path), action="removed", sha256_before=self.sha256(backup),
            sha256_after=None, backup=backup, diff=unified_diff(str(path), before, None),
        )
        self.record_change(change)
        return change

    def record_change(self, change: FileChange) -> None:
        """Keep a change for the notebook and append it to the run's journal on the host."""
        self.changes.append(change)
        journal = str(self.run_dir / "changes.jsonl")
        self.run(["mkdir", "-p", str(self.run_dir)])
        self.run(["sh", "-c", 'cat >> "$1"', "sh", journal], stdin=change_journal_line(change))

    def _mode(self, path: PurePosixPath) -> str | None:
        result = self.run(["stat", "-c", "%a", "--", str(path)], check=False)
        return result.stdout.strip().rjust(4, "0") if result.ok else None
