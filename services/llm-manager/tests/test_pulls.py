"""Pull jobs against a real local HTTP server serving the packaged GGUF: progress, sha256, cancel,
resume after a restart, the host allow-list and redirects, and unsafe names."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from llm_fixtures import PACKAGED, Running, start
from modelserver import ModelServer

from therascript.llm.v1 import llm_pb2
from therascript_llm_manager.store import sha256_file

PACKAGED_SHA256 = sha256_file(PACKAGED)
S = llm_pb2


@pytest.fixture(scope="module")
def puller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """An llm-manager that does not load a model (pulls do not need one)."""
    running, stop = start(tmp_path_factory.mktemp("pulls"), wait_loaded=False, load_on_start=False)
    yield running
    running.stop()
    stop()


def _wait(stub, job_id: str, until: set[int], timeout: float = 60) -> S.PullStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = stub.GetPullStatus(S.PullJobRef(job_id=job_id))
        if status.status in until:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {status.status}")


FINISHED = {S.PULL_JOB_STATUS_COMPLETED, S.PULL_JOB_STATUS_FAILED, S.PULL_JOB_STATUS_CANCELED}


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code()


def test_pull_downloads_with_progress_and_lands_in_the_store(puller: Running, model_server: ModelServer) -> None:
    model_server.files["/m/pulled-a.gguf"] = PACKAGED
    model_server.throttle_bytes_per_s = 100 * 1024**2
    reply = puller.stub.PullModel(S.PullModelRequest(model_url=model_server.url("/m/pulled-a.gguf"),
                                                     sha256=PACKAGED_SHA256))
    seen = _wait(puller.stub, reply.job_id, {S.PULL_JOB_STATUS_DOWNLOADING, *FINISHED})
    done = _wait(puller.stub, reply.job_id, FINISHED)
    assert done.status == S.PULL_JOB_STATUS_COMPLETED, done.error
    assert done.progress == 100 and done.completed_bytes == done.total_bytes == PACKAGED.stat().st_size
    assert done.model_name == "pulled-a.gguf" and done.end_time_ms >= done.start_time_ms
    assert seen.status in {S.PULL_JOB_STATUS_DOWNLOADING, S.PULL_JOB_STATUS_COMPLETED}
    models = {m.name: m for m in puller.stub.ListAvailableModels(S.ListAvailableModelsRequest()).models}
    assert models["pulled-a.gguf"].digest == f"sha256:{PACKAGED_SHA256}"
    assert not list((puller.data_dir / "models" / ".partial").glob("*.part"))


def test_pull_with_a_wrong_sha256_is_rejected(puller: Running, model_server: ModelServer) -> None:
    model_server.files["/m/corrupt.gguf"] = PACKAGED
    reply = puller.stub.PullModel(S.PullModelRequest(model_url=model_server.url("/m/corrupt.gguf"), sha256="0" * 64))
    done = _wait(puller.stub, reply.job_id, FINISHED)
    assert done.status == S.PULL_JOB_STATUS_FAILED and "sha256 mismatch" in done.error
    assert not (puller.data_dir / "models" / "corrupt.gguf").exists()
    assert not list((puller.data_dir / "models" / ".partial").glob("*.part"))


def test_pull_of_a_file_that_is_not_gguf_fails(puller: Running, model_server: ModelServer, tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"<html>not a model</html>" * 100)
    model_server.files["/m/junk.gguf"] = junk
    reply = puller.stub.PullModel(S.PullModelRequest(model_url=model_server.url("/m/junk.gguf")))
    done = _wait(puller.stub, reply.job_id, FINISHED)
    assert done.status == S.PULL_JOB_STATUS_FAILED and "not a GGUF" in done.error
    assert not (puller.data_dir / "models" / "junk.gguf").exists()


def test_cancel_stops_the_download_and_removes_the_partial_file(puller: Running, model_server: ModelServer) -> None:
    model_server.files["/m/slow.gguf"] = PACKAGED
    model_server.throttle_bytes_per_s = 4 * 1024**2
    reply = puller.stub.PullModel(S.PullModelRequest(model_url=model_server.url("/m/slow.gguf")))
    deadline = time.monotonic() + 20
    while puller.stub.GetPullStatus(S.PullJobRef(job_id=reply.job_id)).completed_bytes < 1024**2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    partial = puller.data_dir / "models" / ".partial" / f"{reply.job_id}.part"
    assert partial.exists()
    assert "Cancellation request sent" in puller.stub.CancelPull(S.PullJobRef(job_id=reply.job_id)).message
    done = _wait(puller.stub, reply.job_id, FINISHED, timeout=10)
    assert done.status == S.PULL_JOB_STATUS_CANCELED and done.completed_bytes < PACKAGED.stat().st_size
    assert not partial.exists() and not (puller.data_dir / "models" / "slow.gguf").exists()
    assert _code(lambda: puller.stub.CancelPull(S.PullJobRef(job_id=reply.job_id))) == \
        grpc.StatusCode.FAILED_PRECONDITION


def test_unknown_job_is_not_found(puller: Running) -> None:
    assert _code(lambda: puller.stub.GetPullStatus(S.PullJobRef(job_id="0" * 8))) == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: puller.stub.CancelPull(S.PullJobRef(job_id="0" * 8))) == grpc.StatusCode.NOT_FOUND


def test_a_model_already_in_the_store_completes_at_once(puller: Running, model_server: ModelServer) -> None:
    model_server.files[f"/m/{PACKAGED.name}"] = PACKAGED
    reply = puller.stub.PullModel(S.PullModelRequest(model_url=model_server.url(f"/m/{PACKAGED.name}")))
    status = puller.stub.GetPullStatus(S.PullJobRef(job_id=reply.job_id))
    assert status.status == S.PULL_JOB_STATUS_COMPLETED and "already downloaded" in status.message


@pytest.mark.parametrize("url", [
    "http://localhost:1/m/x.gguf",             # host not on the allow-list (only 127.0.0.1 is)
    "http://169.254.169.254/latest/x.gguf",    # cloud metadata address
    "file:///etc/passwd",
    "ftp://127.0.0.1/x.gguf",
    "http://user:pw@127.0.0.1/x.gguf",
    "http://127.0.0.1:1/m/.hidden.gguf",       # not a plain model file name
    "http://127.0.0.1:1/m/model.bin",
    "owner/repo/../x.gguf",
    "not a url",
])
def test_pull_refuses_urls_outside_the_policy(puller: Running, url: str) -> None:
    assert _code(lambda: puller.stub.PullModel(S.PullModelRequest(model_url=url))) == \
        grpc.StatusCode.INVALID_ARGUMENT


def test_a_redirect_to_a_host_off_the_allow_list_fails_the_job(puller: Running, model_server: ModelServer) -> None:
    port = model_server.base_url.rsplit(":", 1)[1]
    model_server.files["/m/target.gguf"] = PACKAGED
    model_server.redirects["/m/bounce.gguf"] = f"http://localhost:{port}/m/target.gguf"
    model_server.redirects["/m/ok.gguf"] = "/m/target.gguf"
    bad = puller.stub.PullModel(S.PullModelRequest(model_url=model_server.url("/m/bounce.gguf")))
    done = _wait(puller.stub, bad.job_id, FINISHED)
    assert done.status == S.PULL_JOB_STATUS_FAILED and "allow-list" in done.error
    good = puller.stub.PullModel(S.PullModelRequest(model_url=model_server.url("/m/ok.gguf")))
    assert _wait(puller.stub, good.job_id, FINISHED).status == S.PULL_JOB_STATUS_COMPLETED
    assert (puller.data_dir / "models" / "ok.gguf").is_file()  # named after the URL asked for


def test_internal_addresses_are_refused_unless_the_operator_allows_them(tmp_path: Path) -> None:
    running, stop = start(tmp_path, wait_loaded=False, load_on_start=False, install_packaged_model=False,
                          pull_allow_private_addresses=False)
    try:
        code = _code(lambda: running.stub.PullModel(S.PullModelRequest(model_url="http://127.0.0.1:1/x.gguf")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        running.stop()
        stop()


def test_an_interrupted_pull_resumes_after_a_restart(tmp_path: Path, model_server: ModelServer) -> None:
    model_server.files["/m/resumed.gguf"] = PACKAGED
    model_server.throttle_bytes_per_s = 8 * 1024**2
    first, stop_first = start(tmp_path, wait_loaded=False, load_on_start=False)
    reply = first.stub.PullModel(S.PullModelRequest(model_url=model_server.url("/m/resumed.gguf"),
                                                    sha256=PACKAGED_SHA256))
    deadline = time.monotonic() + 20
    while first.stub.GetPullStatus(S.PullJobRef(job_id=reply.job_id)).completed_bytes < 4 * 1024**2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.stop()
    stop_first()  # the process "restarts" mid-download

    model_server.throttle_bytes_per_s = None
    second, stop_second = start(tmp_path, wait_loaded=False, load_on_start=False)
    try:
        done = _wait(second.stub, reply.job_id, FINISHED)
        assert done.status == S.PULL_JOB_STATUS_COMPLETED, done.error
        assert model_server.range_requests and model_server.range_requests[-1] != "bytes=0-"
        assert sha256_file(tmp_path / "models" / "resumed.gguf") == PACKAGED_SHA256
    finally:
        second.stop()
        stop_second()
