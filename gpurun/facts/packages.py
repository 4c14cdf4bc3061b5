"""Facts about installed packages (dpkg or rpm)."""

from __future__ import annotations

from gpurun.host import Host


def installed_versions(host: Host, names: list[str], package_format: str) -> dict[str, str]:
    """Return the installed version of each named package that is installed."""
    if package_format == "deb":
        fmt = "${Package}\t${Version}\t${db:Status-Status}\n"
        result = host.run(["dpkg-query", "-W", "-f", fmt, *names], check=False)
        versions = {}
        for line in result.stdout.splitlines():
            name, version, status = (line.split("\t") + ["", ""])[:3]
            if status == "installed":
                versions[name] = version
        return versions
    if package_format == "rpm":
        versions = {}
        for name in names:
            result = host.run(["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}\\n", name],
                              check=False)
            if result.ok:
                # rpm keeps several versions of one name side by side; list them all, so a
                # host with two never reads as at the bundle's version.
                versions[name] = ", ".join(result.stdout.split())
        return versions
    raise NotImplementedError(f"package format {package_format!r} is not supported: use deb or rpm")


def has_rpm_database(host: Host) -> bool:
    """Return whether rpm is installed and has a package database that a query may read.

    Debian's rpm tool creates an empty database under ~/.rpmdb on its first query, so probes
    that must change nothing ask rpm only where its database exists.
    """
    if host.which("rpm") is None:
        return False
    database = host.run(["rpm", "--eval", "%{_dbpath}"], check=False).stdout.strip()
    return database.startswith("/") and host.exists(database)
