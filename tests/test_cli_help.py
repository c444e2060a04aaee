"""`kerasr --help` and each command's help read as whole sentences, wrapped only by the terminal."""

import itertools

import pytest
import typer
from typer.testing import CliRunner

from kerasr.cli import app

runner = CliRunner()
WIDTH = 200
COMMANDS = sorted(typer.main.get_command(app).commands)


def render(*args: str) -> list[str]:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def early_breaks(lines: list[str]) -> list[str]:
    """Lines of a paragraph broken although the next word would have fitted on them.

    Rich fills each line of a paragraph up to the width of its column (the terminal, or the
    last cell of a panel row, closed by `│`), so such a break is a line break of the
    source text, which typer shows as it is.
    """
    found = []
    for line, following in itertools.pairwise(lines):
        if line.startswith("│") and following.startswith("│"):
            line, following = line[1:], following[1:]
            right = line.rindex("│")
            column = len(following) - len(following.lstrip())
            # A continuation: indented past the rows' first cell, one cell of text (a new
            # row has several, far apart), starting where a cell of this line starts.
            one_cell = "   " not in following[column:right].strip()
            if column <= 2 or not one_cell or line[column - 1] != " " or line[column] == " ":
                continue
        elif "│" in line + following or not line.strip() or not following.strip():
            continue
        else:
            right = WIDTH
        word = following.split()[0]
        if word.startswith(("[", "│")):
            continue  # typer puts "[default: ...]" and "[required]" on a line of their own
        # The word, a space before it and a column of padding fit before the border.
        if len(line[:right].rstrip()) + 1 + len(word) < right - 1:
            found.append(f"{line[:right].strip()!r} / {word!r}")
    return found


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_paragraphs_are_wrapped_by_the_terminal_only(command):
    lines = render(command) if command else render()
    assert early_breaks(lines) == []


def test_the_check_sees_a_hard_line_break():
    lines = [
        "│ upscale       Upscale images with a model, or one" + " " * 60 + "│",
        "│               video." + " " * 90 + "│",
        " A paragraph of prose that stops" + " " * 80,
        " early.",
    ]
    assert early_breaks(lines) == [
        "'upscale       Upscale images with a model, or one' / 'video.'",
        "'A paragraph of prose that stops' / 'early.'",
    ]


def test_brackets_in_help_are_shown():
    assert any("pip install 'kerasr[quality]'" in line for line in render("evaluate-gan"))


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["upscale"], "error: Missing argument 'inputs'. (see kerasr upscale --help)"),
        (
            ["upscale", "a.png", "--bogus"],
            "error: No such option: --bogus (see kerasr upscale --help)",
        ),
        (["generate", "-n", "0", "-o", "x"], "error: Invalid value for '-n' / '--count': "),
        (["nope"], "error: No such command 'nope'. (see kerasr --help)"),
    ],
)
def test_a_wrong_option_is_one_error_line_and_exit_2(args, line, monkeypatch, capfd):
    from kerasr.cli import main

    # The native-log filter moves stderr behind a pipe, out of pytest's capture.
    monkeypatch.setattr("kerasr.runtime.filter_native_logs", lambda: None)
    monkeypatch.setattr("sys.argv", ["kerasr", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    out, err = capfd.readouterr()
    assert stop.value.code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(line), err


def test_the_entry_point_keeps_exit_codes_and_the_help(monkeypatch, capfd):
    from kerasr.cli import main

    monkeypatch.setattr("kerasr.runtime.filter_native_logs", lambda: None)
    for args, code in ([["--help"], 0], [[], 2], [["generate", "-m", "nope", "-o", "x"], 2]):
        monkeypatch.setattr("sys.argv", ["kerasr", *args])
        with pytest.raises(SystemExit) as stop:
            main()
        assert stop.value.code == code, args
    out, err = capfd.readouterr()
    assert "Usage: kerasr" in out + err and "unknown generator 'nope'" in err
