"""The audit reads layers from an S3-compatible store: a real S3 API server (moto in
server mode) started in the test, reached over HTTP through fsspec and s3fs.

Skipped unless ``moto[server]``, ``s3fs`` and ``boto3`` are installed (they are not in
the ``test`` extra: ``pip install 'moto[server]' s3fs``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from abiscan.fleet import audit, load_manifest

from audit_fleet import TARGETS, build_fleet, write_stack

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")
fsspec = pytest.importorskip("fsspec")


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # How a user points fsspec at an S3-compatible store: its configuration, not the manifest.
    options = {"endpoint_url": url, "key": "testing", "secret": "testing",
               "skip_instance_cache": True}
    monkeypatch.setitem(fsspec.config.conf, "s3", options)
    try:
        yield url
    finally:
        server.stop()


def _upload(endpoint: str, root: Path, names: list[str]) -> None:
    s3 = boto3.client("s3", endpoint_url=endpoint)
    if not s3.list_buckets()["Buckets"]:
        s3.create_bucket(Bucket="acme-layers")
    for name in names:
        s3.put_object(Bucket="acme-layers", Key=f"v1/{name}",
                      Body=(root / "layers" / name).read_bytes())


def test_layers_in_s3_give_the_records_of_the_same_layers_on_disk(
    endpoint: str, tmp_path: Path
) -> None:
    local = build_fleet(tmp_path, 6, targets=TARGETS[:2])
    names = [p.name for p in sorted((tmp_path / "layers").iterdir())]
    _upload(endpoint, tmp_path, names)
    text = local.read_text().replace('"layers/', '"s3://acme-layers/v1/')
    (tmp_path / "s3.json").write_text(text)
    cache = tmp_path / "cache"
    on_disk = audit(local, jobs=1, cache_dir=cache)
    in_s3 = audit(tmp_path / "s3.json", jobs=2, cache_dir=cache, output=tmp_path / "s3.jsonl")
    assert in_s3.scanned == 12

    def essence(r: dict[str, object]) -> tuple[object, ...]:
        return r["stack"], r["target"], r["status"], r["first_failure"], r["codes"]

    assert [essence(r) for r in in_s3.records] == [essence(r) for r in on_disk.records]
    assert in_s3.exit_status == on_disk.exit_status == 1
    # Each object was fetched into the cache once, under the SHA-256 of its bytes.
    blobs = {p.name for p in (cache / "audit" / "blobs").iterdir()}
    assert blobs == {hashlib.sha256((tmp_path / "layers" / n).read_bytes()).hexdigest() + ".zip"
                     for n in names}
    # A new object version is scanned again; the other stacks are reused.
    write_stack(tmp_path, 5, variant="v2")
    _upload(endpoint, tmp_path, ["s005-0.zip"])
    again = audit(tmp_path / "s3.json", jobs=1, cache_dir=cache, resume=tmp_path / "s3.jsonl")
    assert (again.scanned, again.reused) == (2, 10)
    assert load_manifest(tmp_path / "s3.json").stacks[5].inputs[0].where == \
        "s3://acme-layers/v1/s005-0.zip"
