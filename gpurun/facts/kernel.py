"""Facts about the running kernel: its version and whether the modules Docker needs are there.

A module can be loaded, built into the kernel, or loadable on demand. Which of these a host
can tell depends on what it exposes, so every source is read when present: /proc/modules,
/sys/module, modules.builtin and modules.dep under /lib/modules/RELEASE, and the kernel's
build configuration (/proc/config.gz or /boot/config-RELEASE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpurun.host import Host

LOADED, BUILT_IN, LOADABLE, MISSING, UNKNOWN = "loaded", "built-in", "loadable", "missing", "unknown"

# The kernel configuration option that builds each module (Linux 4.x to 6.x).
MODULE_CONFIG = {
    "overlay": "OVERLAY_FS",
    "br_netfilter": "BRIDGE_NETFILTER",
    "nf_nat": "NF_NAT",
    "iptable_nat": "IP_NF_NAT",
    "nft_chain_nat": "NFT_NAT",
    "iptable_raw": "IP_NF_RAW",
    "nf_tables": "NF_TABLES",
    "nvidia": "",  # out of tree: never in the kernel's own configuration
}
MODULES = tuple(MODULE_CONFIG)


@dataclass(frozen=True)
class KernelSources:
    """The raw text of each source (None where the host does not have it)."""

    release: str
    proc_modules: str | None
    sys_modules: str | None  # names of /sys/module entries, one a line
    modules_builtin: str | None
    modules_dep: str | None
    config: str | None


@dataclass(frozen=True)
class KernelFacts:
    release: str
    version: tuple[int, ...]
    modules: dict[str, str]  # module name -> LOADED, BUILT_IN, LOADABLE, MISSING or UNKNOWN
    sources: list[str]  # which sources the host had, for the record


def parse_release(release: str) -> tuple[int, ...]:
    """Return the leading numbers of a kernel release: '5.15.0-91-generic' -> (5, 15, 0)."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not match:
        return ()
    return tuple(int(part) for part in match.groups() if part is not None)


def _module_names(paths_text: str) -> set[str]:
    """Return module names from lines holding paths such as kernel/fs/overlayfs/overlay.ko.xz."""
    names = set()
    for line in paths_text.splitlines():
        path = line.split(":", 1)[0].strip()
        base = path.rsplit("/", 1)[-1]
        match = re.match(r"(.+?)\.ko(\.[a-z]+)?$", base)
        if match:
            names.add(match.group(1).replace("-", "_"))
    return names


def _config_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        name, equals, value = line.partition("=")
        if equals and name.startswith("CONFIG_"):
            values[name[len("CONFIG_"):]] = value.strip()
    return values


def module_states(sources: KernelSources) -> dict[str, str]:
    """Return each known module's state from whichever sources the host has."""
    loaded = set()
    if sources.proc_modules is not None:
        loaded |= {line.split()[0] for line in sources.proc_modules.splitlines() if line.split()}
    if sources.sys_modules is not None:
        loaded |= set(sources.sys_modules.split())
    built_in = _module_names(sources.modules_builtin or "")
    loadable = _module_names(sources.modules_dep or "")
    config = _config_values(sources.config or "")
    # Without a module list or the build configuration, an absent module may still load.
    conclusive = sources.modules_dep is not None or sources.config is not None

    states = {}
    for module, option in MODULE_CONFIG.items():
        if module in loaded:
            states[module] = LOADED
        elif module in built_in or (option and config.get(option) == "y"):
            states[module] = BUILT_IN
        elif module in loadable or (option and config.get(option) == "m"):
            states[module] = LOADABLE
        else:
            states[module] = MISSING if conclusive else UNKNOWN
    return states


def read_sources(host: Host) -> KernelSources:
    """Read every source of module facts the host has; none of them needs root."""
    release = host.run(["uname", "-r"]).stdout.strip()
    modules_dir = f"/lib/modules/{release}"
    names = "|".join(MODULES)
    sys_script = 'for m in "$@"; do [ -d "/sys/module/$m" ] && echo "$m"; done; true'
    sys_modules = host.run(["sh", "-c", sys_script, "sh", *MODULES], check=False)
    pattern = "^CONFIG_(" + "|".join(option for option in MODULE_CONFIG.values() if option) + ")="
    # Exit 3 means the host has no configuration. grep's 1 (no line matched) is a valid result.
    config_script = (
        'if [ -r /proc/config.gz ]; then zcat /proc/config.gz | grep -E "$2"; '
        'elif [ -r "/boot/config-$1" ]; then grep -E "$2" "/boot/config-$1"; else exit 3; fi; '
        '[ "$?" -le 1 ]'
    )
    config = host.run(["sh", "-c", config_script, "sh", release, pattern], check=False)
    module_script = 'f="$1"; [ -r "$f" ] || exit 3; grep -E "$2" "$f"; [ "$?" -le 1 ]'
    ko_pattern = f"/({names})\\.ko"
    builtin = host.run(["sh", "-c", module_script, "sh", f"{modules_dir}/modules.builtin",
                        ko_pattern], check=False)
    dep = host.run(["sh", "-c", module_script, "sh", f"{modules_dir}/modules.dep", ko_pattern],
                   check=False)
    return KernelSources(
        release=release,
        proc_modules=host.read_text("/proc/modules"),
        sys_modules=sys_modules.stdout if sys_modules.ok else None,
        modules_builtin=builtin.stdout if builtin.ok else None,
        modules_dep=dep.stdout if dep.ok else None,
        config=config.stdout if config.ok else None,
    )


def gather(host: Host) -> KernelFacts:
    sources = read_sources(host)
    present = [name for name, text in (
        ("/proc/modules", sources.proc_modules), ("/sys/module", sources.sys_modules),
        ("modules.builtin", sources.modules_builtin), ("modules.dep", sources.modules_dep),
        ("kernel config", sources.config)) if text is not None]
    return KernelFacts(sources.release, parse_release(sources.release), module_states(sources),
                       present)
