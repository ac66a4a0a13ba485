"""docs/RELIABILITY.md names a test for every case: each one it names must exist, so the table cannot drift
from the suite (a renamed or deleted test fails here)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RELIABILITY.md"
NODE = re.compile(r"((?:vae_core|app|e2e|jobs)/test_\w+\.py)::(test_\w+)")


def test_every_test_the_reliability_table_names_exists():
    text = DOC.read_text(encoding="utf-8")
    nodes = set(NODE.findall(text))
    assert len(nodes) >= 40
    missing = [f"{path}::{name}" for path, name in sorted(nodes)
               if not re.search(rf"^def {name}\(", (ROOT / "tests" / path).read_text(encoding="utf-8"), re.M)]
    assert missing == []
