"""The progress display: a spinner on a terminal that leaves plain step lines behind, plain lines
everywhere else, and no spinner left running after an error."""

import io
import re

from rich.console import Console

from svclab.ui import UI, stop_spinners


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, color_system=None, width=100, highlight=False,
                   soft_wrap=True), buffer


def _plain_lines(buffer: io.StringIO) -> list[str]:
    """What stays on a terminal after the output in BUFFER: a small emulation of the cursor
    controls a live display writes (carriage return, cursor up, erase line)."""
    rows, r, col = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", buffer.getvalue()):
        if token == "\r":
            col = 0
        elif token == "\n":
            r, col = r + 1, 0
            rows.extend([""] * (r + 1 - len(rows)))
        elif token.startswith("\x1b["):
            if token.endswith("A"):
                r = max(0, r - int(token[2:-1] or 1))
            elif token == "\x1b[2K":
                rows[r] = ""
        else:
            rows[r] = rows[r][:col].ljust(col) + token + rows[r][col + len(token):]
            col += len(token)
    return [row.rstrip() for row in rows if row.strip()]


def test_plain_lines_when_not_a_terminal():
    console, buffer = _console(terminal=False)
    ui = UI(console)
    ui.step("first")
    ui.step("second")
    ui.done("finished")
    assert not ui.spins
    assert buffer.getvalue().splitlines()[:2] == [" • first", " • second"]
    assert buffer.getvalue().splitlines()[2].startswith(" ✓ finished (")
    assert "\x1b" not in buffer.getvalue()


def test_spinner_on_a_terminal_leaves_each_step_behind():
    console, buffer = _console(terminal=True)
    ui = UI(console)
    assert ui.spins
    ui.step("first")
    assert ui._status is not None
    ui.step("second")
    ui.done("finished")
    assert ui._status is None
    lines = _plain_lines(buffer)
    assert lines[:2] == [" • first", " • second"]
    assert lines[2].startswith(" ✓ finished (")
    assert "\x1b[?25h" in buffer.getvalue(), "the cursor is shown again"


def test_quiet_shows_no_steps_and_no_spinner():
    console, buffer = _console(terminal=True)
    ui = UI(console, quiet=True)
    ui.step("hidden")
    ui.done("hidden too")
    assert not ui.spins and ui._status is None
    assert buffer.getvalue() == ""


def test_error_stops_every_spinner():
    console, buffer = _console(terminal=True)
    working = UI(console)
    working.step("creating the cluster")
    # The command line reports errors through a fresh UI: it must still stop the spinner.
    UI(console).error("something broke")
    assert working._status is None
    lines = _plain_lines(buffer)
    assert lines[-2:] == [" • creating the cluster", "error: something broke"]


def test_stop_spinners_is_safe_to_call_twice():
    console, _ = _console(terminal=True)
    ui = UI(console)
    ui.step("a step")
    stop_spinners()
    stop_spinners()
    ui.stop()
    assert ui._status is None


def test_working_is_transient_and_stops_the_step_spinner():
    console, buffer = _console(terminal=True)
    ui = UI(console)
    ui.step("lab nodeport")
    with ui.working("observing every-node"):
        assert ui._status is None
    assert _plain_lines(buffer) == [" • lab nodeport"]


def test_verbose_commands_and_markup_in_messages():
    console, buffer = _console(terminal=False)
    ui = UI(console, verbose=True)
    ui.command("kind create cluster --name [x]")
    ui.step("pool [1/2]")
    ui.warn("careful")
    assert buffer.getvalue().splitlines() == ["   kind create cluster --name [x]", " • pool [1/2]", " ! careful"]
    assert UI(console).echo is None and ui.echo == ui.command
