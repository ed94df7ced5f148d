"""ModelArtifacts: each artifact prepared once into its own model directory, also under
concurrent loads, and never left half-unpacked."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from smclient.local import HandlerError, ServiceFault
from smclient.local.multimodel import _artifacts
from smclient.local.multimodel._artifacts import ModelArtifacts, model_key

from .test_byoc_models import write_archive


def test_concurrent_loads_unpack_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "root").mkdir()
    write_archive(tmp_path / "root" / "m.tar.gz", {"a.txt": b"a"})
    artifacts = ModelArtifacts(tmp_path / "root", tmp_path / "store")
    calls: list[Path] = []
    entered = threading.Event()
    release = threading.Event()
    real = _artifacts.unpack_archive

    def slow_unpack(archive: Path, dest: Path) -> None:
        calls.append(dest)
        entered.set()
        release.wait(10)  # the second prepare() arrives while this one unpacks
        real(archive, dest)

    monkeypatch.setattr(_artifacts, "unpack_archive", slow_unpack)
    results: list[Path] = []
    first = threading.Thread(target=lambda: results.append(artifacts.prepare("m.tar.gz")))
    first.start()
    assert entered.wait(10)
    second = threading.Thread(target=lambda: results.append(artifacts.prepare("m.tar.gz")))
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert len(calls) == 1
    assert results == [tmp_path / "store" / model_key("m.tar.gz") / "model"] * 2
    assert (results[0] / "a.txt").read_bytes() == b"a"


def test_a_failed_unpack_leaves_nothing_and_is_retried(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "bad.tar.gz").write_bytes(b"not an archive")
    artifacts = ModelArtifacts(tmp_path / "root", tmp_path / "store")
    with pytest.raises(HandlerError) as info:
        artifacts.prepare("bad.tar.gz")
    assert info.value.status_code == 400
    folder = tmp_path / "store" / model_key("bad.tar.gz")
    assert list(folder.iterdir()) == []  # no half model directory, no partial left
    write_archive(tmp_path / "root" / "bad.tar.gz", {"ok": b"1"})
    assert (artifacts.prepare("bad.tar.gz") / "ok").read_bytes() == b"1"


def test_directories_are_copied_for_containers_and_used_in_place_for_python(
    tmp_path: Path,
) -> None:
    (tmp_path / "root" / "d").mkdir(parents=True)
    (tmp_path / "root" / "d" / "f").write_text("x")
    copied = ModelArtifacts(tmp_path / "root", tmp_path / "s1")
    assert copied.source_dir("d") is None
    assert (copied.prepare("d") / "f").read_text() == "x"
    in_place = ModelArtifacts(tmp_path / "root", tmp_path / "s2", copy_directories=False)
    assert in_place.source_dir("d") == (tmp_path / "root" / "d").resolve()


@pytest.mark.parametrize("target", ["missing", "../root", "", "d/../../x"])
def test_targets_outside_or_missing_are_the_services_400(tmp_path: Path, target: str) -> None:
    (tmp_path / "root" / "d").mkdir(parents=True)
    artifacts = ModelArtifacts(tmp_path / "root", tmp_path / "store")
    with pytest.raises(ServiceFault) as info:
        artifacts.size(target)
    assert info.value.status == 400
    assert "Failed to download model data" in info.value.message


def test_an_s3_root_needs_a_connection_and_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="S3 connection"):
        ModelArtifacts("s3://bucket/p", tmp_path)
    s3: Any = object()
    with pytest.raises(ValueError, match="names no bucket"):
        ModelArtifacts("s3:///p", tmp_path, s3=lambda: s3)
