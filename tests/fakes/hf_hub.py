"""A fake Hugging Face Hub at the ``HfApi`` boundary: repos, commits, tokens.

Errors are produced the way the real client produces them: an HTTP response like the Hub's
(status plus ``X-Error-Code``) passed through ``hf_raise_for_status``.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VALID_TOKEN = "hf_" + "v" * 34
ENDPOINT = "https://huggingface.co"


@dataclass
class FakeRepo:
    owner: str
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


class FakeHub:
    def __init__(self, writable_owners: tuple[str, ...] = ("my-org",)) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.writable = set(writable_owners)
        self.down = False  #: every call fails as a refused connection does in the real client
        self.stall: threading.Event | None = None  #: set: every call waits for it (a hung server)
        self.calls: list[str] = []

    def api(self, token: str) -> FakeHfApi:
        return FakeHfApi(self, token)


def _raise(status: int, url: str, error_code: str | None = None, message: str = "") -> None:
    from huggingface_hub.utils import hf_raise_for_status

    http = _http_library()
    headers = {"X-Error-Code": error_code} if error_code else {}
    if message:
        headers["X-Error-Message"] = message
    response = http.Response(status, headers=headers, request=http.Request("POST", url))
    hf_raise_for_status(response)
    raise AssertionError("hf_raise_for_status did not raise")


def _http_library() -> Any:
    """The HTTP library the installed huggingface_hub is built on (httpx, or its successor)."""
    from huggingface_hub.errors import HfHubHTTPError

    return __import__(HfHubHTTPError.__mro__[1].__module__.split(".")[0])


def _refused(url: str) -> None:
    """What the client raises when nothing listens at the Hub's address."""
    http = _http_library()
    raise http.ConnectError("[Errno 111] Connection refused", request=http.Request("POST", url))


class FakeHfApi:
    def __init__(self, hub: FakeHub, token: str) -> None:
        self.hub, self.token = hub, token

    def _auth(self, url: str) -> None:
        self.hub.calls.append(url)
        if self.hub.stall is not None:
            self.hub.stall.wait(60)
        if self.hub.down:
            _refused(url)
        if self.token != VALID_TOKEN:
            _raise(401, url, message="Invalid credentials in Authorization header")

    def whoami(self) -> dict[str, Any]:
        self._auth(f"{ENDPOINT}/api/whoami-v2")
        return {"type": "user", "name": "alice"}

    def create_repo(self, repo_id: str, *, repo_type: str | None = None, exist_ok: bool = False,
                    private: bool | None = None) -> str:  # fmt: skip
        url = f"{ENDPOINT}/api/repos/create"
        self._auth(url)
        assert repo_type == "dataset"
        owner = repo_id.split("/")[0]
        if owner not in self.hub.writable:
            _raise(
                403, url, message=f"You don't have the rights to create a dataset under the namespace {owner}"
            )
        if repo_id in self.hub.repos and not exist_ok:
            _raise(409, url, message="You already created this dataset repo")
        self.hub.repos.setdefault(repo_id, FakeRepo(owner))
        return f"{ENDPOINT}/datasets/{repo_id}"

    def create_commit(self, repo_id: str, operations: Any, *, commit_message: str,
                      repo_type: str | None = None, **_: Any) -> Any:  # fmt: skip
        from huggingface_hub import CommitInfo

        url = f"{ENDPOINT}/api/datasets/{repo_id}/commit/main"
        self._auth(url)
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            _raise(404, url, error_code="RepoNotFound")
        assert repo is not None
        digest = hashlib.sha1(commit_message.encode())
        for op in operations:
            data = Path(op.path_or_fileobj).read_bytes()
            repo.files[op.path_in_repo] = data
            digest.update(op.path_in_repo.encode() + data)
        oid = digest.hexdigest()
        repo.commits.append(oid)
        return CommitInfo(commit_url=f"{ENDPOINT}/datasets/{repo_id}/commit/{oid}",
                          commit_message=commit_message, commit_description="", oid=oid)  # fmt: skip
