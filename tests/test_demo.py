"""The README's main command: the demo runs against the embedded local endpoint."""

from __future__ import annotations

import io
import threading

from smclient._cli import main
from smclient._demo import run


def test_the_demo_shows_every_section() -> None:
    before = {t.name for t in threading.enumerate()}
    out = io.StringIO()
    assert run(out, load_seconds=0.3, window=0.1) == 0
    text = out.getvalue()
    assert "got ModelNotReadyException" in text  # the cold start was ridden out
    assert "after 1 attempt" in text  # then warm
    assert "'model': 'sentiment-v2'" in text  # the second shipped model answers too
    assert "ModelError: original status 422" in text
    assert "InvalidInputError: target_model" in text
    assert "['streams', 'never', 'hang', 'on', 'a', 'partial', 'line']" in text
    assert "{'turn': 2, 'history': ['hello', 'how are you?']}" in text
    assert "{'score': 28}" in text  # async result decoded as JSON
    assert "['final: 9600 bytes of audio']" in text  # the bidirectional stream, blocking
    assert "asyncio: final: 9600 bytes of audio" in text  # and with asyncio
    leftover = {t.name for t in threading.enumerate()} - before
    assert not leftover, leftover


def test_cli_version(capsys: object) -> None:
    import smclient

    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == smclient.__version__  # type: ignore[attr-defined]
