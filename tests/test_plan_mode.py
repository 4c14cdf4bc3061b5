"""`gpurun run --plan` on a bare host: it lists every change the real run then makes, and
changes no file on the host."""

from __future__ import annotations

import pytest
from chain import gpurun_run, run_records, write_inventory

from gpurun.runner import read_summary
from gpurun.steps import STEP_NAMES

pytestmark = pytest.mark.sandbox

# Every regular file on the host's root file system with its SHA-256, except the folders that
# change on their own (kernel and runtime file systems, temporary files, logs such as the
# login records that the ssh login itself writes, caches).
CHECKSUM_SCRIPT = r"""
find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
    -o -path /var/tmp -o -path /var/log -o -path /var/cache \) -prune -o -type f -print0 \
  | sort -z | xargs -0 sha256sum
"""


@pytest.fixture(scope="module")
def planned(sandbox_hosts, demo_bundle, tmp_path_factory):
    """A bare host, its checksums before and after a plan run, then a real run."""
    host = sandbox_hosts.start("plan")
    folder = tmp_path_factory.mktemp("plan")
    inventory = write_inventory(folder / "inventory.yaml", host, bundle_dir=str(demo_bundle))
    outputs = folder / "outputs"

    before = sandbox_hosts.run(host, ["sh", "-c", CHECKSUM_SCRIPT], timeout=300)
    plan = gpurun_run(inventory, outputs, "--plan")
    after = sandbox_hosts.run(host, ["sh", "-c", CHECKSUM_SCRIPT], timeout=300)
    real = gpurun_run(inventory, outputs)
    plan_record, real_record = sorted(run_records(outputs, host.name),
                                      key=lambda record: record["started"])
    return {"host": host, "outputs": outputs, "plan": plan, "real": real, "before": before,
            "after": after, "plan_record": plan_record, "real_record": real_record}


def test_plan_run_succeeds(planned):
    assert planned["plan"].returncode == 0, planned["plan"].stdout + planned["plan"].stderr
    record = planned["plan_record"]
    assert record["plan_only"] is True
    assert record["run_id"].endswith("-plan")
    assert [step["name"] for step in record["steps"]] == STEP_NAMES
    assert all(step["status"] == "completed" for step in record["steps"])


def test_plan_changes_no_file(planned):
    before, after = planned["before"], planned["after"]
    assert before.returncode == 0, before.stderr
    assert len(before.stdout.splitlines()) > 1000
    assert before.stdout == after.stdout


def test_plan_uploads_nothing(planned):
    assert all(step["uploaded_bytes"] == 0 for step in planned["plan_record"]["steps"])


def test_plan_notebooks_marked(planned):
    record = planned["plan_record"]
    folder = planned["outputs"] / planned["host"].name / record["run_id"]
    for step in record["steps"]:
        summary = read_summary(folder / step["notebook"])
        assert summary["plan_only"] is True, step["name"]
        assert summary["changed"] is False, step["name"]


def targets(record: dict, step: dict, status: str) -> set[str]:
    """Return the targets of a step's outcomes with this status, the run id written as RUN."""
    return {o["target"].replace(record["run_id"], "RUN") for o in step["outcomes"]
            if o["status"] == status}


def test_plan_lists_every_real_change(planned):
    assert planned["real"].returncode == 0, planned["real"].stdout + planned["real"].stderr
    plan_record, real_record = planned["plan_record"], planned["real_record"]
    plan_steps = {step["name"]: step for step in plan_record["steps"]}
    for step in real_record["steps"]:
        changed = targets(real_record, step, "changed")
        listed = targets(plan_record, plan_steps[step["name"]], "planned")
        assert changed <= listed, (step["name"], sorted(changed - listed))
        assert plan_steps[step["name"]]["planned_changes"] == len(listed)


def test_plan_counts_match_real_run(planned):
    plan_steps = {step["name"]: step for step in planned["plan_record"]["steps"]}
    for step in planned["real_record"]["steps"]:
        changed = sum(o["status"] == "changed" for o in step["outcomes"])
        assert plan_steps[step["name"]]["planned_changes"] == changed, step["name"]
