"""The local Elasticsearch: install it from Maven Central, and run one instance (standard library only).

    python3 scripts/elasticsearch_local.py install
    python3 scripts/elasticsearch_local.py run --data-dir var/elasticsearch --http-port 9201 [--transport-port 9301]

No Debian or PyPI package ships an Elasticsearch server and there is no Docker engine here, so the local
default is Maven Central's runnable distribution `org.elasticsearch.distribution.integ-test-zip:elasticsearch`
(pinned: VERSION), fetched with `mvn dependency:copy` into the git-ignored `var/cache/elasticsearch/` and
unzipped there; a second `install` reuses both. compose/k8s use the official image instead.

That distribution is stripped: no `analysis-common` (no `english` analyzer or stemmer), no `reindex`
(`_reindex`, `_delete_by_query` → 405), and `GET /` answers 405 (probe health with `_cluster/health`). English
stemming comes from the `hunspell` token filter with Debian's `hunspell-en-us` dictionary, which `run` copies
into each instance's config folder (`hunspell/en_US/`).

It needs Java ≥ 21 and bundles none: `find_java_home()` takes $ES_JAVA_HOME, else the newest JDK ≥ 21 in
/usr/lib/jvm. It refuses to run as root: as root, `run` creates the system user `ES_USER` and runs it with
`runuser`, the instance's folders owned by that user. `run` replaces itself with the server process (exec),
so the caller's process id is the server's and SIGTERM stops it (in ~2 s).

Each instance has its own folder: `<data-dir>/config` (a copy of the distribution's config + the settings +
the dictionary), `data/`, `logs/`, `tmp/`. The heap is fixed at ES_HEAP (default 512m). When root and the server's
user cannot reach `<data-dir>` (e.g. under pytest's private /tmp/pytest-of-root), the instance lives in
/tmp/therascript-es-<hash of data-dir> instead (the same folder on a restart; not removed afterwards); likewise a
distribution in a clone the user cannot reach (`mktemp -d` makes mode-700 folders) runs from a copy in
/tmp/therascript-es-home-<hash>.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = "9.5.4"
ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{VERSION}:zip"
CACHE_DIR = ROOT / "var" / "cache" / "elasticsearch"
HOME = CACHE_DIR / f"elasticsearch-{VERSION}"
HUNSPELL_DIR = Path("/usr/share/hunspell")
JVM_DIR = Path("/usr/lib/jvm")
MIN_JAVA = 21
ES_USER = "elasticsearch"
DEFAULT_HEAP = "512m"


class EsError(RuntimeError):
    """Elasticsearch cannot be installed or started; the message says what to do."""


def install(cache_dir: Path = CACHE_DIR) -> Path:
    """Fetches and unzips the distribution unless present; returns its home folder.
    EsError when mvn is missing or the download fails."""
    home = cache_dir / f"elasticsearch-{VERSION}"
    if (home / "bin" / "elasticsearch").exists():
        return home
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / f"elasticsearch-{VERSION}.zip"
    if not archive.exists():
        if shutil.which("mvn") is None:
            raise EsError("mvn (Debian package maven) is needed to fetch Elasticsearch from Maven Central")
        result = subprocess.run(
            ["mvn", "-q", "-B", "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy",
             f"-Dartifact={ARTIFACT}", f"-DoutputDirectory={cache_dir}"],
            capture_output=True, text=True,
        )
        if result.returncode != 0 or not archive.exists():
            raise EsError(f"mvn could not fetch {ARTIFACT}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    partial = cache_dir / f".unzip-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            target = zipped.extract(member, partial)
            mode = member.external_attr >> 16
            if mode:
                os.chmod(target, mode & 0o7777)
    (partial / home.name).rename(home)  # atomic: a half-unzipped home is never seen
    shutil.rmtree(partial, ignore_errors=True)
    return home


def _java_version(java_home: Path) -> int | None:
    release = java_home / "release"
    try:
        text = release.read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else None


def find_java_home() -> Path:
    """$ES_JAVA_HOME if set, else the newest JDK ≥ MIN_JAVA under /usr/lib/jvm; EsError naming what was found."""
    if os.environ.get("ES_JAVA_HOME"):
        return Path(os.environ["ES_JAVA_HOME"])
    found = {}
    for candidate in sorted(JVM_DIR.glob("*")) if JVM_DIR.is_dir() else []:
        version = _java_version(candidate)
        if version is not None and (candidate / "bin" / "java").exists() and not candidate.is_symlink():
            found[candidate] = version
    usable = [home for home, version in found.items() if version >= MIN_JAVA]
    if not usable:
        seen = ", ".join(f"{h.name} ({v})" for h, v in found.items()) or "none"
        raise EsError(f"Elasticsearch {VERSION} needs Java ≥ {MIN_JAVA}; JDKs in {JVM_DIR}: {seen}. "
                      f"Install one (e.g. a Temurin 21+ JDK) or set ES_JAVA_HOME.")
    return max(usable, key=lambda home: found[home])


def ensure_user() -> pwd.struct_passwd:
    """The system user the server runs as when we are root (created if missing)."""
    try:
        return pwd.getpwnam(ES_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ES_USER],
                       check=True, capture_output=True)
        return pwd.getpwnam(ES_USER)


def settings(instance: Path, http_port: int, transport_port: str) -> dict[str, str]:
    """elasticsearch.yml for one local single-node instance."""
    return {
        "cluster.name": "therascript-local",
        "node.name": "local",
        "discovery.type": "single-node",
        "network.host": "127.0.0.1",
        "http.port": str(http_port),
        "transport.port": transport_port,
        "xpack.security.enabled": "false",
        "xpack.ml.enabled": "false",
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "path.data": str(instance / "data"),
        "path.logs": str(instance / "logs"),
        "action.destructive_requires_name": "false",
    }


def _reachable_by_others(path: Path) -> bool:
    """True when every existing folder on the way to `path` is searchable by other users (the server's user)."""
    parent = path if path.exists() else path.parent
    while not parent.exists():
        parent = parent.parent
    return all(p.stat().st_mode & 0o001 for p in [parent, *parent.parents])


def _stand_in(path: Path, kind: str) -> Path:
    """A fixed folder in /tmp named after `path` (the same one on a restart; not removed afterwards)."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"therascript-es-{kind}{digest}"


def reachable_instance(instance: Path) -> Path:
    """`instance`, or when root and the server's user could not reach it (a parent not searchable by others,
    e.g. pytest's private /tmp/pytest-of-root), a fixed folder in /tmp named after it (same one on a restart)."""
    if os.geteuid() != 0 or _reachable_by_others(instance):
        return instance
    return _stand_in(instance, "")


def reachable_home(home: Path) -> Path:
    """The distribution at `home`, or when root and the server's user could not reach it (a clone in a private
    folder such as `mktemp -d`'s, mode 700), a copy of it in /tmp made once (the same rule as the instance)."""
    if os.geteuid() != 0 or _reachable_by_others(home):
        return home
    copy = _stand_in(home, "home-")
    if not (copy / "bin" / "elasticsearch").exists():
        partial = copy.with_name(f"{copy.name}.{os.getpid()}.partial")
        shutil.copytree(home, partial, symlinks=True)
        try:
            partial.rename(copy)  # atomic: a concurrent start that copied too keeps its own or finds this one
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    return copy


def prepare(instance: Path, http_port: int, transport_port: str, home: Path) -> None:
    """Creates the instance folder: its own config (distribution config + settings + hunspell dictionary)."""
    config = instance / "config"
    instance.mkdir(parents=True, exist_ok=True)
    if not config.exists():
        shutil.copytree(home / "config", config)
    yml = "".join(f"{key}: {value}\n" for key, value in settings(instance, http_port, transport_port).items())
    (config / "elasticsearch.yml").write_text(yml)
    dictionary = config / "hunspell" / "en_US"
    dictionary.mkdir(parents=True, exist_ok=True)
    for suffix in ("aff", "dic"):
        source = HUNSPELL_DIR / f"en_US.{suffix}"
        if not source.exists():
            raise EsError(f"{source} is missing: install the Debian package hunspell-en-us (scripts/bootstrap does)")
        shutil.copyfile(source, dictionary / f"en_US.{suffix}")
    for folder in ("data", "logs", "tmp"):
        (instance / folder).mkdir(exist_ok=True)


def command(instance: Path, http_port: int, transport_port: str = "9300-9399",
            heap: str = DEFAULT_HEAP) -> tuple[list[str], dict[str, str]]:
    """Installs if needed, prepares `instance`, and returns (argv, env) that run the server in the foreground
    (through `runuser -u ES_USER` when root). EsError when Java or the dictionary is missing."""
    home = reachable_home(install())
    java_home = find_java_home()
    instance = reachable_instance(instance.resolve())
    prepare(instance, http_port, transport_port, home)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ES_JAVA_HOME": str(java_home),
        "ES_PATH_CONF": str(instance / "config"),
        "ES_TMPDIR": str(instance / "tmp"),
        "ES_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
        "LANG": "C.UTF-8",
    }
    argv = [str(home / "bin" / "elasticsearch")]
    if os.geteuid() == 0:
        user = ensure_user()
        for path in [instance, *instance.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        env["HOME"] = str(instance)
        argv = ["runuser", "-u", ES_USER, "--", "env", *(f"{k}={v}" for k, v in env.items()), *argv]
    return argv, env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install or run the local Elasticsearch.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="fetch and unzip the distribution into var/cache/elasticsearch")
    run = commands.add_parser("run", help="run one instance in the foreground (exec)")
    run.add_argument("--data-dir", type=Path, required=True)
    run.add_argument("--http-port", type=int, required=True)
    run.add_argument("--transport-port", default="9300-9399", help="a port or a range (default 9300-9399)")
    run.add_argument("--heap", default=os.environ.get("ES_HEAP", DEFAULT_HEAP))
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            home = install()
            java = find_java_home()
            print(f"[elasticsearch] {home.relative_to(ROOT)} (Java: {java})")
            return 0
        program, env = command(args.data_dir, args.http_port, args.transport_port, args.heap)
    except EsError as error:
        print(f"elasticsearch: {error}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    os.execvpe(program[0], program, {**os.environ, **env})


if __name__ == "__main__":
    sys.exit(main())
