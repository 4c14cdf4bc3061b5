"""The long-lived shell that runs a host's commands: exact output, stdin, timeouts, restarts.

These run a real `sh` on the control node, through a host whose address is `local`. Over ssh the
same shell runs at the other end of one ssh channel, and the sandbox host tests cover that.
"""

from __future__ import annotations

import pytest

from gpurun.errors import ConnectionFailed, RemoteCommandError
from gpurun.host.shell import Shell, ShellClosed


def test_shell_output_exact_streams_apart(local_host):
    result = local_host.run(["sh", "-c", "printf 'no newline'; printf 'warn\\n' >&2; exit 3"],
                      check=False)

    assert (result.exit_code, result.stdout, result.stderr) == (3, "no newline", "warn\n")


def test_shell_stdin_byte_for_byte(local_host):
    text = "line 'one'\n\"two\" $HOME `id` \\n\nüñï\n\n"

    result = local_host.run(["cat"], stdin=text)

    assert result.stdout == text


def test_shell_command_without_stdin_reads_nothing(local_host):
    reading = local_host.run(["cat"])
    after = local_host.run(["echo", "still here"])

    assert reading.stdout == ""
    assert after.stdout == "still here\n"


def test_shell_large_output_arrives_whole(local_host):
    script = ("i=0; while [ $i -lt 20000 ]; do echo \"out $i\"; echo \"err $i\" >&2; "
              "i=$((i+1)); done")

    result = local_host.run(["sh", "-c", script])

    assert result.stdout.splitlines() == [f"out {i}" for i in range(20000)]
    assert result.stderr.splitlines() == [f"err {i}" for i in range(20000)]


def test_shell_marker_lookalike_ignored(local_host):
    result = local_host.run(["sh", "-c", "echo 'gpurun-end-0000 0'; echo after"])

    assert result.stdout == "gpurun-end-0000 0\nafter\n"


def test_shell_shared_by_commands(local_host):
    first = local_host.run(["sh", "-c", "echo $PPID"]).stdout
    second = local_host.run(["sh", "-c", "echo $PPID"]).stdout

    assert first == second


def test_shell_missing_program_exits_127(local_host):
    result = local_host.run(["gpurun-no-such-program"], check=False)

    assert result.exit_code == 127
    assert "gpurun-no-such-program" in result.stderr


def test_shell_timeout_names_command_and_restarts(local_host):
    before = local_host.run(["sh", "-c", "echo $PPID"]).stdout

    with pytest.raises(RemoteCommandError) as caught:
        local_host.run(["sleep", "5"], timeout=0.5)
    after = local_host.run(["sh", "-c", "echo $PPID"]).stdout

    assert "timed out after 0.5 s" in str(caught.value)
    assert "sleep 5" in str(caught.value)
    assert after != before


def test_shell_ending_at_start_reports_stderr():
    with pytest.raises(ShellClosed) as caught:
        Shell(["sh", "-c", "echo 'login refused' >&2; exit 7"])

    assert "exit status 7" in str(caught.value)
    assert "login refused" in str(caught.value)


def test_shell_killed_mid_command_names_host(local_host):
    with pytest.raises(ConnectionFailed) as caught:
        local_host.run(["sh", "-c", "kill -9 $PPID; sleep 1"])
    after = local_host.run(["echo", "new shell"])

    message = str(caught.value)
    assert "lost the connection to host local-host" in message
    assert "kill -9" in message
    assert "next step: check that the host is up" in message
    assert after.stdout == "new shell\n"
