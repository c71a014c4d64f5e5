"""A small Hub-API-compatible server on 127.0.0.1 for push / pull tests with the real `huggingface_hub` client.

It speaks what `create_repo`, `upload_folder` (preupload + NDJSON commit, regular uploads only), `model_info`,
`list_repo_tree` and `hf_hub_download` (HEAD / GET on `/{repo}/resolve/{revision}/{path}`) use, keeps repos in
memory, and can fail on purpose: `fail_commits = n` answers the next n commits with HTTP 500.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class Repo:
    def __init__(self, repo_id: str, private: bool):
        self.repo_id, self.private = repo_id, private
        self.files: dict[str, bytes] = {}
        self.sha = hashlib.sha1(repo_id.encode()).hexdigest()
        self.commits: list[str] = []


class HubState:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.fail_commits = 0
        self.commit_attempts = 0
        self.validated_cards: list[str] = []
        self.lock = threading.Lock()


_API_REPO = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/(preupload|commit|revision|tree)/([^/]+)(?:/(.*))?)?$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def make_handler(state: HubState, endpoint: list[str]):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        # -- helpers ---------------------------------------------------------------------------------------
        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, payload=None, headers: dict | None = None, body: bytes | None = None):
            data = body if body is not None else (json.dumps(payload).encode() if payload is not None else b"")
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if body is None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, status: int, code: str, message: str):
            self._send(status, {"error": message}, headers={"X-Error-Code": code, "X-Error-Message": message})

        # -- routes ----------------------------------------------------------------------------------------
        def do_POST(self):
            path = urlparse(self.path).path
            body = self._body()
            if path == "/api/validate-yaml":
                return self._validate_yaml(json.loads(body).get("content", ""))
            if path == "/api/repos/create":
                data = json.loads(body)
                repo_id = (
                    f"{data['organization']}/{data['name']}" if data.get("organization") else f"tester/{data['name']}"
                )
                with state.lock:
                    if repo_id in state.repos:
                        return self._send(
                            409, {"error": "You already created this model repo", "url": f"{endpoint[0]}/{repo_id}"}
                        )
                    state.repos[repo_id] = Repo(
                        repo_id, data.get("visibility") == "private" or bool(data.get("private"))
                    )
                return self._send(200, {"url": f"{endpoint[0]}/{repo_id}", "name": repo_id})
            match = _API_REPO.match(path)
            if not match or match.group(1) not in state.repos:
                return self._error(404, "RepoNotFound", f"Repository not found: {path}")
            repo = state.repos[match.group(1)]
            if match.group(2) == "preupload":
                files = json.loads(body)["files"]
                return self._send(
                    200,
                    {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]},
                )
            if match.group(2) == "commit":
                with state.lock:
                    state.commit_attempts += 1
                    if state.fail_commits > 0:
                        state.fail_commits -= 1
                        return self._error(500, "InternalError", "injected failure")
                for line in body.splitlines():
                    item = json.loads(line)
                    value = item["value"]
                    if item["key"] == "file":
                        content = value["content"]
                        repo.files[value["path"]] = (
                            base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                        )
                    elif item["key"] == "deletedFile":
                        repo.files.pop(value["path"], None)
                    elif item["key"] in ("lfsFile", "deletedFolder"):
                        return self._error(400, "BadRequest", f"{item['key']} not supported by the test server")
                digest = hashlib.sha1(repo.sha.encode() + body).hexdigest()
                repo.sha = digest
                repo.commits.append(digest)
                return self._send(
                    200,
                    {
                        "commitUrl": f"{endpoint[0]}/{repo.repo_id}/commit/{digest}",
                        "commitOid": digest,
                        "pullRequestUrl": None,
                    },
                )
            return self._error(404, "NotFound", path)

        def do_GET(self):
            path = unquote(urlparse(self.path).path)
            if path == "/api/whoami-v2":
                return self._send(
                    200, {"name": "tester", "type": "user", "orgs": [], "auth": {"accessToken": {"role": "write"}}}
                )
            match = _API_REPO.match(path)
            if match:
                repo = state.repos.get(match.group(1))
                if repo is None:
                    return self._error(404, "RepoNotFound", "Repository not found")
                if match.group(2) == "tree":
                    prefix = match.group(4) or ""
                    entries = [
                        {"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                        for p, b in sorted(repo.files.items())
                        if p.startswith(prefix)
                    ]
                    return self._send(200, entries)
                return self._send(200, self._info(repo))
            match = _RESOLVE.match(path)
            if match:
                return self._resolve(match)
            return self._error(404, "NotFound", path)

        def do_HEAD(self):
            match = _RESOLVE.match(unquote(urlparse(self.path).path))
            if match:
                return self._resolve(match)
            return self._error(404, "NotFound", self.path)

        def _validate_yaml(self, content: str):
            # the Hub checks a README's metadata before accepting it: front matter must be a YAML mapping
            import yaml

            errors = []
            match = re.match(r"^---\n(.*?)\n---", content, re.DOTALL)
            if match:
                try:
                    meta = yaml.safe_load(match.group(1))
                    if not isinstance(meta, dict):
                        errors.append({"message": "metadata must be a YAML mapping"})
                    elif "model-index" in meta and not isinstance(meta["model-index"], list):
                        errors.append({"message": '"model-index" must be a list'})
                except yaml.YAMLError as err:
                    errors.append({"message": f"invalid YAML: {err}"})
            state.validated_cards.append(content)
            return self._send(400 if errors else 200, {"errors": errors, "warnings": []})

        def _info(self, repo: Repo) -> dict:
            return {
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": repo.sha,
                "private": repo.private,
                "author": repo.repo_id.split("/")[0],
                "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "siblings": [{"rfilename": p, "size": len(b)} for p, b in sorted(repo.files.items())],
            }

        def _resolve(self, match):
            repo = state.repos.get(match.group(1))
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            data = repo.files.get(match.group(3))
            if data is None:
                return self._error(404, "EntryNotFound", f"{match.group(3)} does not exist")
            etag = '"' + hashlib.sha256(data).hexdigest() + '"'
            self._send(200, headers={"X-Repo-Commit": repo.sha, "ETag": etag}, body=data)

    return Handler


class HubServer:
    """``with HubServer() as hub:`` serves on ``hub.endpoint`` (127.0.0.1, a free port) until the block ends."""

    def __init__(self):
        self.state = HubState()
        endpoint: list[str] = [""]
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state, endpoint))
        self.endpoint = endpoint[0] = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


#: Prepended to a subprocess script: makes hf_mim unimportable, so that only remote code can serve a model.
BLOCK_HF_MIM = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "hf_mim" or name.startswith("hf_mim."):
            raise ImportError("hf_mim is blocked in this process")
sys.meta_path.insert(0, Block())
"""


def hub_env(hub: HubServer, tmp_path) -> dict:
    """The environment of a process that talks to ``hub`` through the real huggingface_hub client."""
    env = dict(os.environ)
    env.pop("HF_HUB_OFFLINE", None)
    env.update(
        HF_ENDPOINT=hub.endpoint, HF_TOKEN="hf_test_token", HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1", HF_MIM_PUSH_BACKOFF="0.05", NO_PROXY="127.0.0.1",
    )  # fmt: skip
    return env
