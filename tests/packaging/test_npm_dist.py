"""The npm release artifacts as a user gets them: the main package (JavaScript only, its addon in
one optional dependency per platform) and this platform's package, installed from their tarballs
into an empty project with no Rust toolchain on PATH and no network, running the README's Node
quick start as CommonJS and as an ES module.

scripts/test-packaging.sh builds the release addon once and packs both packages into
$PACKAGING_DIST: servicetitan-<version>.tgz and servicetitan-<platform>-<version>.tgz.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import version as versions  # noqa: E402

VERSION = versions.workspace_version(ROOT)
PLATFORMS = sorted(p.parent.name for p in (ROOT / "node" / "npm").glob("*/package.json"))
# The platform whose package is tested: this machine's; the release workflow sets it on each runner.
HOST = os.environ.get("PACKAGING_PLATFORM", "linux-x64-gnu")
NPM = shutil.which("npm") or "npm"
NODE = shutil.which("node") or "node"
# The engine, the sandbox and the `servicetitan` command, stripped: 15.1 MB at 0.1.0. The bound
# catches an unstripped or doubled build.
MAX_ADDON_BYTES = 20 * 1024 * 1024


def tarball(name: str) -> Path:
    base = os.environ.get("PACKAGING_DIST")
    if not base:
        pytest.fail("PACKAGING_DIST is not set: run scripts/test-packaging.sh node")
    path = Path(base).resolve() / f"{name}-{VERSION}.tgz"
    assert path.is_file(), f"{path} is missing"
    return path


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]


def without_rust() -> dict[str, str]:
    """The environment less every PATH folder that holds cargo or rustc."""
    path = [
        d
        for d in os.environ["PATH"].split(os.pathsep)
        if d and not any(shutil.which(t, path=d) for t in ("cargo", "rustc"))
    ]
    env = {**os.environ, "PATH": os.pathsep.join(path)}
    assert shutil.which("cargo", path=env["PATH"]) is None and shutil.which("rustc", path=env["PATH"]) is None
    return env


def npm_install(project: Path, *tarballs: Path) -> subprocess.CompletedProcess[str]:
    """`npm install` of the tarballs into an empty project, offline, with an empty npm cache: nothing
    can be downloaded or built, so what runs is what the tarballs carry."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "package.json").write_text(json.dumps({"name": "user-project", "private": True}))
    return subprocess.run(
        [NPM, "install", "--offline", "--no-audit", "--no-fund", "--cache", str(project.parent / "npm-cache")]
        + [str(t) for t in tarballs],
        cwd=project,
        env=without_rust(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def first_js_block(markdown: Path) -> str:
    match = re.search(r"```js\n(.*?)```", markdown.read_text(), re.S)
    assert match, f"no ```js block in {markdown}"
    return match.group(1)


def as_esm(code: str) -> str:
    """The CommonJS quick start as an ES module: `const { A, B } = require('servicetitan')` becomes
    `import { A, B } from 'servicetitan'`."""
    esm, n = re.subn(r"const (\{[^}]*\}) = require\('servicetitan'\)", r"import \1 from 'servicetitan'", code)
    assert n == 1, code
    return esm


def run_node(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NODE, *args], cwd=project, env=without_rust(), capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's project with the main package and this platform's package installed."""
    project = tmp_path_factory.mktemp("npm") / "app"
    result = npm_install(project, tarball("servicetitan"), tarball(f"servicetitan-{HOST}"))
    assert result.returncode == 0, result.stdout + result.stderr
    return project


def test_the_main_package_is_javascript_with_one_optional_dependency_per_platform() -> None:
    files = members(tarball("servicetitan"))
    names = sorted(n.removeprefix("package/") for n in files)
    assert not [n for n in names if n.endswith(".node")], names
    for needed in ("package.json", "README.md", "LICENSE-MIT", "LICENSE-APACHE", "index.js", "index.mjs"):
        assert needed in names, names
    assert "platform.js" in names and "native.js" in names, names
    manifest: dict[str, Any] = json.loads(files["package/package.json"])
    assert manifest["version"] == VERSION
    assert manifest["optionalDependencies"] == {f"servicetitan-{p}": VERSION for p in PLATFORMS}
    assert len(PLATFORMS) == 7


def test_the_platform_package_holds_its_addon() -> None:
    files = members(tarball(f"servicetitan-{HOST}"))
    manifest: dict[str, Any] = json.loads(files["package/package.json"])
    assert manifest["name"] == f"servicetitan-{HOST}" and manifest["version"] == VERSION
    assert manifest["os"] == [HOST.split("-")[0]] and manifest["cpu"] == [HOST.split("-")[1]]
    assert sorted(files) == [
        "package/LICENSE-APACHE",
        "package/LICENSE-MIT",
        "package/README.md",
        "package/package.json",
        f"package/servicetitan.{HOST}.node",
    ]
    assert len(files[f"package/servicetitan.{HOST}.node"]) <= MAX_ADDON_BYTES


@pytest.mark.skipif(not HOST.startswith("linux-") or not HOST.endswith("-gnu"), reason="glibc builds only")
def test_the_linux_addon_is_stripped_and_needs_only_glibc_2_17() -> None:
    files = members(tarball(f"servicetitan-{HOST}"))
    assert json.loads(files["package/package.json"])["libc"] == ["glibc"]
    addon = files[f"package/servicetitan.{HOST}.node"]
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(addon))
    sections = {s.name for s in elf.iter_sections()}
    assert not {s for s in sections if s.startswith(".debug_")} and ".symtab" not in sections, sorted(sections)
    # The newest glibc symbol version it needs: 2.17 runs on CentOS 7, Amazon Linux 2, Ubuntu 18.04+.
    needed = set(re.findall(rb"GLIBC_(2\.\d+)", addon))
    newest = max(needed, key=lambda v: tuple(int(x) for x in v.split(b".")))
    assert tuple(int(x) for x in newest.split(b".")) <= (2, 17), sorted(needed)


def test_the_readme_quick_start_runs_as_commonjs(project: Path) -> None:
    result = run_node(project, "--input-type=commonjs", "-e", first_js_block(ROOT / "README.md"))
    assert result.returncode == 0, result.stderr[-4000:]
    assert "first page: 50 customers" in result.stdout, result.stdout
    assert re.search(r"not found \(404, traceId 00-", result.stdout), result.stdout


def test_the_readme_quick_start_runs_as_an_es_module(project: Path) -> None:
    (project / "quickstart.mjs").write_text(as_esm(first_js_block(ROOT / "README.md")))
    result = run_node(project, "quickstart.mjs")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "first page: 50 customers" in result.stdout, result.stdout


def test_the_npm_readme_example_runs(project: Path) -> None:
    result = run_node(project, "--input-type=commonjs", "-e", first_js_block(ROOT / "node" / "README.md"))
    assert result.returncode == 0, result.stderr[-4000:]
    assert re.search(r"^50 customers$", result.stdout, re.M), result.stdout


def test_the_addon_comes_from_the_platform_package(project: Path) -> None:
    resolved = run_node(project, "-p", f"require.resolve('servicetitan-{HOST}')")
    assert resolved.returncode == 0, resolved.stderr
    assert f"node_modules/servicetitan-{HOST}/servicetitan.{HOST}.node" in resolved.stdout
    assert not list((project / "node_modules" / "servicetitan").glob("*.node"))


def test_without_the_platform_package_the_error_names_it(tmp_path: Path) -> None:
    # What `npm install --omit=optional` leaves: the main package alone.
    project = tmp_path / "app"
    result = npm_install(project, tarball("servicetitan"))
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_node(project, "-e", "require('servicetitan')")
    assert result.returncode != 0
    assert f"servicetitan: the prebuilt addon for {HOST} did not load" in result.stderr, result.stderr
    assert f"servicetitan-{HOST}@{VERSION}" in result.stderr, result.stderr


def npx(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A bin of the installed package, as a user runs it, without Rust on the PATH."""
    return subprocess.run(
        [shutil.which("npx") or "npx", "--offline", *args],
        cwd=project,
        env=without_rust(),
        capture_output=True,
        text=True,
    )


def test_npx_servicetitan_help(project: Path) -> None:
    result = npx(project, "servicetitan", "--help")
    assert result.returncode == 0, result.stderr
    assert "Examples:" in result.stdout and "servicetitan call" in result.stdout, result.stdout
    # The Singer name runners such as Meltano start: `servicetitan tap`.
    result = npx(project, "tap-servicetitan", "--about")
    assert result.returncode == 0, result.stderr
    assert "discover" in json.loads(result.stdout)["capabilities"]
