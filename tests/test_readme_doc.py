"""The README and the documents it links to stay true to the checkout: every relative link and every file path
they name exists, and the README's test command is the one CI runs (`.ci/run` runs "the test command written in
README.md"; when one of the two changes, the other must follow)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, ROOT / "CONTRIBUTING.md", ROOT / "docs" / "CLASSROOM.md", ROOT / "docs" / "PERFORMANCE.md",
        ROOT / "docs" / "RAY.md"]   # docs/RELIABILITY.md names tests by their path under tests/: its own test checks
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w/.-])((?:\.streamlit|docs|bench|tests|vae_core|jobs|ui|pages|examples|reports|checkpoints"
                  r"|static)/[\w./-]*\.(?:py|md|png|toml|sh|safetensors|js|html|css))")
MADE_BY_THE_READER = {".streamlit/secrets.toml"}   # a teacher writes it (docs/CLASSROOM.md); git ignores it
TEST_COMMAND_MARK = "# the test command"


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_of_the_readme_and_its_documents_resolves():
    broken = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        anchors = {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):   # http(s): and mailto: are not the checkout's
                continue
            path, _, anchor = target.partition("#")
            if path and not (doc.parent / path).exists():
                broken.append(f"{doc.name}: {target}")
            elif not path and anchor not in anchors:
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert broken == []
    assert "docs/screenshot_decoder.png" in README.read_text() and "docs/screenshot_latent_map.png" in README.read_text()


def test_every_file_the_documents_name_exists():
    missing = [f"{doc.relative_to(ROOT)}: {name}" for doc in DOCS for name in sorted(set(PATH.findall(doc.read_text())))
               if name not in MADE_BY_THE_READER and not (ROOT / name).exists()]
    assert missing == []


def test_the_readme_test_command_is_the_one_ci_runs():
    marked = [line.split("#")[0].strip() for line in README.read_text().splitlines() if TEST_COMMAND_MARK in line]
    assert len(marked) == 1, f"README.md needs exactly one line marked {TEST_COMMAND_MARK!r}, found {len(marked)}"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if re.match(r"\s*python3? -m pytest\b", line)]
    assert ci, ".ci/run runs no pytest command"
    assert [re.sub(r"^python3 ", "python ", c) for c in ci] == marked * len(ci), (marked, ci)
