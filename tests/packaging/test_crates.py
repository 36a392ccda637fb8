"""The crates as crates.io gets them: `cargo package` (which also builds each one from its packaged
sources) wrote target/package/<name>-<version>.crate; each carries its licences, its README and
the metadata crates.io shows, and depends on the other by version, never by path alone.

scripts/test-packaging.sh runs `cargo package` first and points PACKAGING_DIST at target/package.
"""

from __future__ import annotations

import os
import re
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import version as versions  # noqa: E402

VERSION = versions.workspace_version(ROOT)


def crate_files(name: str) -> dict[str, str]:
    base = os.environ.get("PACKAGING_DIST")
    if not base:
        pytest.fail("PACKAGING_DIST is not set: run scripts/test-packaging.sh rust")
    path = Path(base) / f"{name}-{VERSION}.crate"
    assert path.is_file(), f"{path} is missing"
    prefix = f"{name}-{VERSION}/"
    with tarfile.open(path) as tf:
        return {
            m.name.removeprefix(prefix): tf.extractfile(m).read().decode("utf-8", "replace")  # type: ignore[union-attr]
            for m in tf.getmembers()
            if m.isfile()
        }


@pytest.mark.parametrize("name", ["servicetitan", "servicetitan-sandbox", "servicetitan-cli"])
def test_the_crate_carries_its_metadata_licences_and_readme(name: str) -> None:
    files = crate_files(name)
    for needed in ("Cargo.toml", "README.md", "LICENSE-MIT", "LICENSE-APACHE", "src/lib.rs"):
        assert needed in files, sorted(files)
    assert files["LICENSE-MIT"] == (ROOT / "LICENSE-MIT").read_text()
    manifest = files["Cargo.toml"]
    package = manifest.split("\n[", 2)[1]
    for key in ("description", "license", "repository", "readme", "keywords", "categories", "documentation"):
        assert re.search(rf"^{key} = ", package, re.M), f"{name}: no {key} in\n{package}"
    assert f'\nversion = "{VERSION}"\n' in package
    assert 'license = "MIT OR Apache-2.0"' in package


def test_the_engine_depends_on_the_sandbox_by_version() -> None:
    manifest = crate_files("servicetitan")["Cargo.toml"]
    sandbox = re.search(r"^\[dev-dependencies\.servicetitan-sandbox\]\n((?:[^\[\n].*\n)*)", manifest, re.M)
    assert sandbox, manifest
    assert f'version = "{VERSION}"' in sandbox.group(1)
    for table, body in re.findall(r"^\[((?:dev-|build-)?dependencies\.[^\]]+)\]\n((?:[^\[\n].*\n)*)", manifest, re.M):
        assert "path =" not in body, f"[{table}] is a path dependency"


def test_the_command_depends_on_the_engine_and_the_sandbox_by_version() -> None:
    files = crate_files("servicetitan-cli")
    assert "src/main.rs" in files and "src/schema.json" in files, sorted(files)
    manifest = files["Cargo.toml"]
    assert re.search(r'^\[\[bin\]\]\nname = "servicetitan"', manifest, re.M), manifest
    for dependency in ("servicetitan", "servicetitan-sandbox"):
        block = re.search(rf"^\[dependencies\.{dependency}\]\n((?:[^\[\n].*\n)*)", manifest, re.M)
        assert block, f"no [dependencies.{dependency}] in\n{manifest}"
        assert f'version = "{VERSION}"' in block.group(1)
        assert "path =" not in block.group(1)
