"""The default tiers run from a plain clone: none of their tests may need ../shared, this workplace's
folder of bigger real files, or a clone without it would go green by skipping them. conftest.py
stops any run in which a test without the `shared` marker requests the `shared` fixture; these tests
hold that over the whole suite (whatever a run selects) and catch paths to ../shared that go
around the fixture."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.test_cli import REPO

SHARED_PATH = re.compile(r"""["']\.\./shared|/\s*["']shared\b""")  # a string "../shared..." or a join `/ "shared"`


def test_no_test_of_the_default_tiers_requests_shared():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert re.search(r"^\d+/\d+ tests collected \(\d+ deselected\)", result.stdout, re.MULTILINE), result.stdout[-1000:]


def test_only_conftest_names_the_shared_folder():
    here = REPO / "tests"
    named = [
        str(path.relative_to(REPO))
        for path in sorted(here.rglob("*"))
        if path.is_file()
        and path.suffix in (".py", ".yaml")
        and path.name != "conftest.py"
        and path != here / "test_self_contained.py"
        and SHARED_PATH.search(path.read_text())
    ]
    assert named == [], "use the `shared` fixture (and the marker) instead"
