"""The README's variant table is the registry's (vae_core.models.variant_table), so it cannot drift from
VARIANTS: a new or changed entry fails here until `python -m vae_core variants --markdown` is pasted in."""
from pathlib import Path

from vae_core import VARIANTS, variant_table
from vae_core.__main__ import main

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_table() -> str:
    """The README's table that starts with the generated header line, up to its first non-table line."""
    header = variant_table().splitlines()[0]
    lines = README.read_text(encoding="utf-8").splitlines()
    assert header in lines, f"README.md has no variant table starting {header!r}"
    start = lines.index(header)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end]) + "\n"


def test_the_readme_variant_table_is_the_registrys():
    assert readme_table() == variant_table(), (
        "README.md's variant table differs from the registry: replace it with `python -m vae_core variants --markdown`")


def test_the_table_has_one_row_per_variant_and_the_cli_prints_it(capsys):
    rows = variant_table().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == list(VARIANTS)
    assert main(["variants", "--markdown"]) == 0
    assert capsys.readouterr().out == variant_table()
    assert main(["variants"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing] == list(VARIANTS)
    assert "β-VAE" in listing[list(VARIANTS).index("beta-vae")] and "default β 4" in "\n".join(listing)
