"""``python -m scaling sandbox`` argument checking (without starting a server)."""

from __future__ import annotations

import socket

import pytest

from scaling.cli import main


@pytest.mark.parametrize(("argv", "needle"), [
    (["--latency", "slow"], "--latency"),
    (["--spotify-limit", "180"], "--spotify-limit"),
    (["--error-rate", "1.5"], "--error-rate"),
    (["--host", "0.0.0.0"], "--allow-remote"),
    (["--port", "70000"], "--port"),
    (["--port", "abc"], "--port"),
])
def test_bad_arguments_print_one_line_and_exit_2(argv: list[str], needle: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Each bad argument gives exit code 2 and a single error line naming it."""
    try:
        code = main(["sandbox", *argv])
    except SystemExit as exc:  # argparse-level errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("error:") and needle in err


def test_a_busy_port_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A port already in use is reported in one line, not a traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["sandbox", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(port) in err
