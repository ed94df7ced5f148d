"""Multi-model containers with a model root, as SageMaker's agent hosts them: each artifact
(directory or .tar.gz, in a host folder or in S3) unpacked once into its own model directory,
the container told that directory's path. The container is the in-repo fake
(tests/local/fake_container.py, multi-model-server's behaviour) reading the paths it is
given from disk; tests/local/test_mms_real.py runs the same against the real server."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from smclient.local import EndpointSpec, LocalEndpoint, LocalRuntime, MultiModelSettings
from smclient.local.containers._sources import container_model_name

from .fake_container import FakeContainer


def make_root(tmp_path: Path) -> Path:
    """A folder of three models: a directory, an archive, and one too big to load."""
    root = tmp_path / "models"
    (root / "plain").mkdir(parents=True)
    (root / "plain" / "answer.txt").write_text("plain:")
    (root / "plain" / "code").mkdir()
    (root / "plain" / "code" / "inference.py").write_text("# not run by the fake\n")
    (root / "huge").mkdir()
    (root / "huge" / "OOM").write_text("")
    write_archive(root / "packed.tar.gz", {"answer.txt": b"packed:", "weights.bin": b"\0" * 10})
    return root


def write_archive(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def invoke(client: Any, target: str, body: bytes = b"x", **kw: Any) -> dict[str, Any]:
    response = client.invoke_endpoint(EndpointName="byoc", TargetModel=target, Body=body, **kw)
    response["Body"] = response["Body"].read()
    return response  # type: ignore[no-any-return]


def host_mme(fake: FakeContainer, root: Path | str, **kw: Any) -> LocalEndpoint:
    return LocalEndpoint(
        name="byoc", container_url=fake.url, container_multi_model=True, model_root=root, **kw
    )


def test_loads_directories_and_archives_from_their_own_model_directory(
    tmp_path: Path, client_for: Any
) -> None:
    root = make_root(tmp_path)
    with FakeContainer(check_model_dirs=True) as fake, host_mme(fake, root) as local:
        client = client_for(local.url)
        assert invoke(client, "plain", b"hi")["Body"] == b"plain:hi"
        assert invoke(client, "packed.tar.gz", b"hi")["Body"] == b"packed:hi"
        store = local.workdir / "byoc" / "models"
        for target in ("plain", "packed.tar.gz"):
            name = container_model_name(target)
            # The container was told the path of the model's own, prepared directory.
            assert fake.models[name] == str(store / name / "model")
        assert fake.model_files[container_model_name("packed.tar.gz")] == [
            "answer.txt",
            "weights.bin",
        ]
        assert fake.model_files[container_model_name("plain")] == [
            "answer.txt",
            "code/inference.py",
        ]


def test_an_artifact_is_unpacked_once_across_unload_and_reload(
    tmp_path: Path, client_for: Any
) -> None:
    root = make_root(tmp_path)
    with FakeContainer(check_model_dirs=True) as fake, host_mme(fake, root) as local:
        client = client_for(local.url)
        invoke(client, "packed.tar.gz")
        model_dir = local.workdir / "byoc" / "models" / container_model_name("packed.tar.gz")
        (model_dir / "model" / "marker").write_text("still here")
        assert local.unload_model("packed.tar.gz") == 1
        assert container_model_name("packed.tar.gz") not in fake.models  # DELETE reached it
        assert invoke(client, "packed.tar.gz", b"again")["Body"] == b"packed:again"
        # Reloaded from the same directory, not unpacked again (SageMaker keeps unloaded
        # models on disk).
        assert (model_dir / "model" / "marker").read_text() == "still here"
        loads = [r for r in fake.requests if r.method == "POST" and r.path == "/models"]
        deletes = [r for r in fake.requests if r.method == "DELETE"]
        assert (len(loads), len(deletes)) == (2, 1)
        stats = local.model_stats()["packed.tar.gz"]
        assert (stats.loads, stats.unloads, stats.loaded) == (2, 1, True)


def test_an_out_of_memory_model_answers_507(tmp_path: Path, client_for: Any) -> None:
    root = make_root(tmp_path)
    with FakeContainer(check_model_dirs=True) as fake, host_mme(fake, root) as local:
        with pytest.raises(ClientError) as info:
            invoke(client_for(local.url), "huge")
        assert info.value.response["Error"]["Code"] == "ModelError"
        assert info.value.response["OriginalStatusCode"] == 507
        assert fake.models == {}


def test_a_507_unloads_another_model_and_loads(tmp_path: Path, client_for: Any) -> None:
    root = make_root(tmp_path)
    with (
        FakeContainer(check_model_dirs=True, memory_budget=1) as fake,
        host_mme(fake, root) as local,
    ):
        client = client_for(local.url)
        invoke(client, "plain")
        assert invoke(client, "packed.tar.gz", b"y")["Body"] == b"packed:y"
        assert list(fake.models) == [container_model_name("packed.tar.gz")]
        assert local.model_stats()["plain"].unloads == 1


def test_a_missing_target_model_is_a_400_before_the_container_is_asked(
    tmp_path: Path, client_for: Any
) -> None:
    root = make_root(tmp_path)
    (tmp_path / "outside").mkdir()  # exists, but not under the model root
    with FakeContainer(check_model_dirs=True) as fake, host_mme(fake, root) as local:
        for target in ("nope.tar.gz", "../outside"):
            with pytest.raises(ClientError) as info:
                invoke(client_for(local.url), target)
            assert info.value.response["Error"]["Code"] == "ValidationError"
            assert "Failed to download model data" in info.value.response["Error"]["Message"]
        assert not [r for r in fake.requests if r.path == "/models"]


def test_models_from_s3_in_the_embedded_moto(tmp_path: Path, client_for: Any) -> None:
    archive = tmp_path / "model.tar.gz"
    write_archive(archive, {"answer.txt": b"from-s3:"})
    with (
        FakeContainer(check_model_dirs=True) as fake,
        host_mme(fake, "s3://models-bucket/mme/") as local,
    ):
        s3 = local.aws.client("s3")
        s3.create_bucket(Bucket="models-bucket")
        s3.upload_file(str(archive), "models-bucket", "mme/a/model.tar.gz")
        s3.put_object(Bucket="models-bucket", Key="mme/folder/answer.txt", Body=b"folder:")
        s3.put_object(Bucket="models-bucket", Key="mme/folder/code/x.py", Body=b"")
        client = client_for(local.url)
        assert invoke(client, "a/model.tar.gz", b"1")["Body"] == b"from-s3:1"
        assert invoke(client, "folder", b"2")["Body"] == b"folder:2"
        assert fake.model_files[container_model_name("folder")] == ["answer.txt", "code/x.py"]
        with pytest.raises(ClientError) as info:
            invoke(client, "b/model.tar.gz")
        assert info.value.response["Error"]["Code"] == "ValidationError"


def test_the_python_multi_model_endpoint_reads_s3_too(tmp_path: Path, client_for: Any) -> None:
    archive = tmp_path / "model.tar.gz"
    write_archive(
        archive, {"handler.py": b"def predict(body, ct, accept):\n    return b'py:' + body\n"}
    )
    with LocalEndpoint(name="byoc", model_root="s3://py-models") as local:
        s3 = local.aws.client("s3")
        s3.create_bucket(Bucket="py-models")
        s3.upload_file(str(archive), "py-models", "m.tar.gz")
        assert invoke(client_for(local.url), "m.tar.gz", b"z")["Body"] == b"py:z"


def test_without_a_model_root_the_container_gets_sagemakers_path(client_for: Any) -> None:
    with (
        FakeContainer() as fake,
        LocalEndpoint(name="byoc", container_url=fake.url, container_multi_model=True) as local,
    ):
        invoke(client_for(local.url), "a.tar.gz")
        name = container_model_name("a.tar.gz")
        assert fake.models == {name: f"/opt/ml/models/{name}/model"}


def test_the_runtime_reports_a_memory_budget_for_container_models(
    tmp_path: Path, client_for: Any
) -> None:
    # model_sizes still drive the runtime's own budget for a container (the container's
    # 507s are the other half): the second model evicts the first.
    root = make_root(tmp_path)
    settings = MultiModelSettings(memory_bytes=10, model_sizes={"plain": 8, "packed.tar.gz": 8})
    with (
        FakeContainer(check_model_dirs=True) as fake,
        host_mme(fake, root, multi_model=settings) as local,
    ):
        client = client_for(local.url)
        invoke(client, "plain")
        invoke(client, "packed.tar.gz")
        assert list(fake.models) == [container_model_name("packed.tar.gz")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"container_url": "http://x", "model_root": "m"}, "needs container_multi_model=True"),
        ({"container_image": "img", "container_multi_model": True}, "needs model_root"),
        ({"container_url": "http://x", "container_image": "i"}, "not both"),
        ({"handler": print, "container_multi_model": True}, "needs container_url"),
        ({"container_url": "http://x", "model_dir": "m"}, "needs container_image"),
        ({"container_url": "http://x", "handler": print}, "takes no handler"),
        ({"handler": print, "instance_loading": "sometimes"}, "instance_loading"),
        (
            {"container_url": "http://x", "container_multi_model": True, "model_dir": "m"},
            "not model_dir",
        ),
    ],
)
def test_spec_refuses_sources_that_do_not_fit(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EndpointSpec("byoc", **kwargs)


def test_spec_accepts_a_model_root_for_a_multi_model_container() -> None:
    spec = EndpointSpec(
        "byoc", container_url="http://x", container_multi_model=True, model_root="m"
    )
    assert spec.is_multi_model
    assert spec.has_container


def test_status_route_lists_container_models(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    with FakeContainer(check_model_dirs=True) as fake:
        runtime = LocalRuntime(
            [
                EndpointSpec(
                    "byoc", container_url=fake.url, container_multi_model=True, model_root=root
                )
            ]
        )
        with runtime:
            runtime.endpoint("byoc").model("plain").invoke(b"q")
            status = runtime.status()["endpoints"]["byoc"]
            assert status["multi_model"] is True
            assert status["instances"][0]["models"]["plain"]["loaded"] is True
            assert json.dumps(status)  # JSON-ready
