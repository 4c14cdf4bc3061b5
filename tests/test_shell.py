"""The long-lived shell that runs a host's commands: exact output, stdin, timeouts, restarts.

These run a real `sh` on the control node (a host whose address is `local`); over ssh the same
shell runs at the other end of one ssh channel, which the sandbox host tests cover.
"""

from __future__ import annotations

import pytest

from gpurun.errors import ConnectionFailed, RemoteCommandError
from gpurun.host.shell import Shell, ShellClosed


def test_output_is_exact_and_streams_stay_apart(local_host):
    result = local_host.run(["sh", "-c", "printf 'no newline'; printf 'warn\\n' >&2; exit 3"],
                      check=False)

    assert (result.exit_code, result.stdout, result.stderr) == (3, "no newline", "warn\n")


def test_stdin_reaches_the_command_byte_for_byte(local_host):
    text = "line 'one'\n\"two\" $HOME `id` \\n\nüñï\n\n"

    result = local_host.run(["cat"], stdin=text)

    assert result.stdout == text


def test_a_command_without_stdin_reads_nothing_and_the_next_command_runs(local_host):
    reading = local_host.run(["cat"])
    after = local_host.run(["echo", "still here"])

    assert reading.stdout == ""
    assert after.stdout == "still here\n"


def test_large_output_on_both_streams_arrives_whole(local_host):
    script = ("i=0; while [ $i -lt 20000 ]; do echo \"out $i\"; echo \"err $i\" >&2; "
              "i=$((i+1)); done")

    result = local_host.run(["sh", "-c", script])

    assert result.stdout.splitlines() == [f"out {i}" for i in range(20000)]
    assert result.stderr.splitlines() == [f"err {i}" for i in range(20000)]


def test_output_that_looks_like_an_end_marker_does_not_end_the_command(local_host):
    result = local_host.run(["sh", "-c", "echo 'gpurun-end-0000 0'; echo after"])

    assert result.stdout == "gpurun-end-0000 0\nafter\n"


def test_commands_share_one_shell(local_host):
    first = local_host.run(["sh", "-c", "echo $PPID"]).stdout
    second = local_host.run(["sh", "-c", "echo $PPID"]).stdout

    assert first == second


def test_a_missing_program_exits_127_with_its_name(local_host):
    result = local_host.run(["gpurun-no-such-program"], check=False)

    assert result.exit_code == 127
    assert "gpurun-no-such-program" in result.stderr


def test_a_timeout_names_the_command_and_the_next_command_gets_a_new_shell(local_host):
    before = local_host.run(["sh", "-c", "echo $PPID"]).stdout

    with pytest.raises(RemoteCommandError) as caught:
        local_host.run(["sleep", "5"], timeout=0.5)
    after = local_host.run(["sh", "-c", "echo $PPID"]).stdout

    assert "timed out after 0.5 s" in str(caught.value)
    assert "sleep 5" in str(caught.value)
    assert after != before


def test_a_shell_that_ends_at_once_says_so_with_its_last_words():
    with pytest.raises(ShellClosed) as caught:
        Shell(["sh", "-c", "echo 'login refused' >&2; exit 7"])

    assert "exit status 7" in str(caught.value)
    assert "login refused" in str(caught.value)


def test_a_shell_killed_mid_command_names_host_and_command(local_host):
    with pytest.raises(ConnectionFailed) as caught:
        local_host.run(["sh", "-c", "kill -9 $PPID; sleep 1"])
    after = local_host.run(["echo", "new shell"])

    message = str(caught.value)
    assert "lost the connection to host local-host" in message
    assert "kill -9" in message
    assert "next step: check that the host is up" in message
    assert after.stdout == "new shell\n"
