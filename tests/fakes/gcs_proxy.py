"""Cloud Storage's request preconditions, in front of gcp-storage-emulator (loopback only).

The emulator gives every write a new generation and bumps an object's metageneration
on a metadata update, but it ignores the precondition parameters: an upload with a
stale `ifGenerationMatch` succeeds there and fails on Cloud Storage (tests/test_storage.py::
test_the_emulator_ignores_preconditions_the_proxy_enforces_them, eight kinds of write).
This proxy enforces them, as the Cloud Storage JSON API documents:

- https://cloud.google.com/storage/docs/request-preconditions ("Precondition
  criteria"): a request with `ifGenerationMatch` / `ifMetagenerationMatch` proceeds
  only if the target object's generation / metageneration equals the value, else 412
  Precondition Failed; `ifGenerationNotMatch` / `ifMetagenerationNotMatch` proceed
  only if it differs, else 304 Not Modified on a read. On a write we answer 412, as
  the JSON API's error reference does for `conditionNotMet` ("At least one of the
  pre-conditions you specified did not hold").
- objects.insert / delete / patch / rewrite / copy parameters
  (https://cloud.google.com/storage/docs/json_api/v1/objects): "ifGenerationMatch ...
  Setting to 0 makes the operation succeed only if there are no live versions of the
  object"; "ifGenerationNotMatch ... If no live object exists, the precondition
  fails"; on rewrite and copy the plain parameters apply to the destination and
  `ifSource...` ones to the source object.
- https://cloud.google.com/storage/docs/metadata#generation-number: an object's
  generation changes on every write and its metageneration starts at 1 for each
  generation and grows with each metadata update (the emulator does both).
- Resumable uploads carry their preconditions on the initiating request; Cloud
  Storage checks them when the session starts and again when the object is
  finalized, so they are checked on every request of the session here.

Requests are checked and forwarded one at a time (a lock), which makes each
check-and-write atomic, as it is on Cloud Storage. `delay` slows every request (slow
storage); `fail_status` answers every request with that status (storage down or
erroring); `failing` names objects whose requests are answered 503; `lose_answer`
names objects whose next write is done but answered 503 (an answer lost on the way
back, which the client retries); `on_request(method, path)` is called as each
request arrives. Only loopback addresses are served and contacted.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import re
import threading
import time
import urllib.parse

_OBJECT = re.compile(
    r"^(?:/download)?/storage/v1/b/([^/]+)/o/(.+?)(/rewriteTo/b/([^/]+)/o/(.+)"
    r"|/copyTo/b/([^/]+)/o/(.+))?$"
)
_UPLOAD = re.compile(r"^/upload/storage/v1/b/([^/]+)/o$")
_CHECKS = (
    ("ifGenerationMatch", "generation", True),
    ("ifGenerationNotMatch", "generation", False),
    ("ifMetagenerationMatch", "metageneration", True),
    ("ifMetagenerationNotMatch", "metageneration", False),
)


def unmet(query: dict[str, str], current: dict | None, prefix: str = "") -> str | None:
    """The first precondition in `query` that `current` (object metadata, None if absent)
    does not meet, or None. `prefix` is "Source" for a rewrite's source object."""
    for name, field, equal in _CHECKS:
        key = f"if{prefix}{name[2:]}"
        if key not in query:
            continue
        wanted = int(query[key])
        if current is None:  # no live object: only generation 0 "matches"
            if not (equal and field == "generation" and wanted == 0):
                return key
            continue
        if (int(current[field]) == wanted) != equal:
            return key
    return None


class PreconditionProxy:
    """A loopback HTTP proxy to the emulator at `upstream` that enforces preconditions."""

    def __init__(self, upstream: str, delay: float = 0.0):
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the proxy forwards to loopback only, not {upstream}")
        self.upstream = (parsed.hostname, parsed.port)
        self.delay, self.fail_status = delay, 0
        self.failing: set[str] = set()
        self.lose_answer: set[str] = set()
        self.on_request = None
        self.refused: list[str] = []  # "METHOD object: parameter" of each 412/304 answered
        self.lock = threading.Lock()
        self.sessions: dict[str, tuple[str, str, dict]] = {}  # upload_id: bucket, name, query
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> PreconditionProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def metadata(self, bucket: str, name: str) -> dict | None:
        """The live object's metadata from the emulator, or None."""
        path = f"/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}"
        status, _, body = self.forward("GET", path, {}, b"")
        return json.loads(body) if status == 200 else None

    def forward(self, method: str, path: str, headers: dict, body: bytes):
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def targets(self, method: str, path: str, query: dict, headers: dict, body: bytes):
        """[(bucket, object name, precondition prefix)] a request's preconditions apply to."""
        match = _UPLOAD.match(path)
        if match:
            if "upload_id" in query:
                session = self.sessions.get(query["upload_id"])
                return [(session[0], session[1], "")] if session else []
            name = query.get("name") or _name_in_body(headers, body)
            return [(match.group(1), name, "")] if name else []
        match = _OBJECT.match(path)
        if not match:
            return []
        bucket, name = match.group(1), urllib.parse.unquote(match.group(2))
        if match.group(4):  # rewrite
            dest = (match.group(4), urllib.parse.unquote(match.group(5)), "")
            return [dest, (bucket, name, "Source")]
        if match.group(6):  # copy
            dest = (match.group(6), urllib.parse.unquote(match.group(7)), "")
            return [dest, (bucket, name, "Source")]
        return [(bucket, name, "")]


def _name_in_body(headers: dict, body: bytes) -> str | None:
    """The object name in a multipart upload's metadata part or a resumable start's JSON."""
    text = body[:65536].decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text).get("name")
        except ValueError:
            return None
    match = re.search(r'\{.*?"name"\s*:\s*"((?:[^"\\]|\\.)*)"', text, re.S)
    return json.loads(f'"{match.group(1)}"') if match else None


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: PreconditionProxy
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, headers, body: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in (
                "transfer-encoding",
                "connection",
                "content-length",
                "date",
                "server",
            ):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, reason: str, message: str) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": status,
                    "message": message,
                    "errors": [{"domain": "global", "reason": reason, "message": message}],
                }
            }
        ).encode()
        self._answer(status, [("Content-Type", "application/json")], body)

    def _handle(self) -> None:
        owner = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if owner.on_request is not None:
            owner.on_request(self.command, self.path)
        if owner.delay:
            time.sleep(owner.delay)
        if owner.fail_status:
            return self._error(owner.fail_status, "backendError", "storage is failing (proxy)")
        split = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(split.query))
        session = owner.sessions.get(query.get("upload_id", ""))
        if session is not None:  # a resumable session keeps its start's preconditions
            query = {**session[2], **query}
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
        names = {t[1] for t in owner.targets(self.command, split.path, query, headers, body)}
        if names & owner.failing:
            return self._error(503, "backendError", "storage is failing (proxy)")
        try:
            with owner.lock:
                refused = self._refusal(split.path, query, headers, body)
                if refused is None:
                    status, answer_headers, answer = owner.forward(
                        self.command, self.path, headers, body
                    )
                    if query.get("uploadType") == "resumable" and "upload_id" not in query:
                        self._remember_session(answer_headers, split.path, query, headers, body)
                    lost = names & owner.lose_answer if self.command != "GET" else set()
                    if lost and status == 200:
                        owner.lose_answer -= lost
                        refused = 503
        except OSError:  # the emulator is stopped: Cloud Storage's answer to an outage
            return self._error(503, "backendError", "storage is unavailable (proxy)")
        if refused == 503:
            return self._error(503, "backendError", "the answer was lost (proxy)")
        if refused == 304:
            return self._answer(304, [], b"")
        if refused is not None:
            message = f"At least one of the pre-conditions you specified did not hold ({refused})"
            return self._error(412, "conditionNotMet", message)
        self._answer(status, answer_headers, answer)

    def _refusal(self, path: str, query: dict, headers: dict, body: bytes):
        """None if every precondition holds; else 304 (a read) or the failed parameter."""
        for bucket, name, prefix in self.owner.targets(self.command, path, query, headers, body):
            failed = unmet(query, self.owner.metadata(bucket, name), prefix)
            if failed is not None:
                self.owner.refused.append(f"{self.command} {name}: {failed}")
                return 304 if self.command == "GET" and "NotMatch" in failed else failed
        return None

    def _remember_session(self, answer_headers, path, query, headers, body) -> None:
        location = dict((k.lower(), v) for k, v in answer_headers).get("location", "")
        upload_id = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query)).get(
            "upload_id"
        )
        targets = self.owner.targets("POST", path, query, headers, body)
        if upload_id and targets:
            self.owner.sessions[upload_id] = (targets[0][0], targets[0][1], query)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

    def handle(self):
        # A client that gave up (a timeout, a killed trainer) is no error of the proxy's.
        with contextlib.suppress(ConnectionError):
            super().handle()

    def log_message(self, *args):
        pass
