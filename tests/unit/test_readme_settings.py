"""The README documents every setting with its real default."""

from __future__ import annotations

from pathlib import Path

from scrubber.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented_with_its_default() -> None:
    defaults = Settings.model_construct()
    for name in Settings.model_fields:
        row = next(
            (
                line
                for line in README.splitlines()
                if line.startswith(f"| `SCRUBBER_{name.upper()}`")
            ),
            None,
        )
        assert row is not None, f"SCRUBBER_{name.upper()} is not in the README"
        value = getattr(defaults, name)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if value is None:
            assert "unset" in row, row
        else:
            assert f"`{value}`" in row, (name, value, row)
