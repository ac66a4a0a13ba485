"""docs/make_screenshots.py: copies the chosen e2e screenshots into docs/, cropped to the first screenful and
scaled to the README width; says what to run when a screenshot is missing."""
import importlib.util
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("make_screenshots", ROOT / "docs" / "make_screenshots.py")
make_screenshots = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_screenshots)


def test_copies_crops_and_scales(tmp_path):
    src, out = tmp_path / "shots", tmp_path / "docs"
    src.mkdir()
    tall = Image.new("RGB", (1400, 3000), (255, 255, 255))
    tall.paste((200, 0, 0), (0, 0, 1400, 100))       # a red band at the top must survive the crop
    tall.paste((0, 0, 200), (0, 2000, 1400, 3000))   # a blue bottom must be cut off
    tall.save(src / "test_a.png")
    Image.new("RGB", (600, 400), (0, 200, 0)).save(src / "test_b.png")  # small: kept as it is
    written = make_screenshots.make(src, out, {"test_a": "a.png", "test_b": "b.png"}, width=700, max_height=450)
    assert [p.name for p in written] == ["a.png", "b.png"]
    with Image.open(out / "a.png") as a:
        assert a.size == (700, 450)
        assert a.getpixel((350, 10)) == (200, 0, 0)
        assert all(a.getpixel((350, y))[0] > 100 for y in range(0, 450, 50))  # no blue (0, 0, 200) row
    with Image.open(out / "b.png") as b:
        assert b.size == (600, 400)


def test_missing_screenshots_name_the_command(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="pytest -q tests/e2e"):
        make_screenshots.make(tmp_path, tmp_path / "docs", {"test_nothing": "x.png"})
    assert make_screenshots.main(["--source", str(tmp_path), "--out", str(tmp_path / "docs")]) == 2
    assert "test_decoder_slider_changes_the_image" in capsys.readouterr().err


def test_the_chosen_screenshots_are_real_e2e_tests():
    source = (ROOT / "tests" / "e2e" / "test_pages.py").read_text()
    for name in make_screenshots.SHOTS:
        assert f"def {name}(" in source
