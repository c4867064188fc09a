"""A Kubernetes API server on 127.0.0.1 for the real kubectl: discovery, list, get, delete, logs.

It answers the requests `kubectl get/delete/logs/api-resources` make, as kube-apiserver
does, for the objects a test puts in, and records each request (method, path, query,
Accept, body). tests/fakes/discovery.py says what it serves and how kubectl 1.32 reads
discovery; `aggregated=False` serves the legacy form. The optional CRDs (JobSet, Katib,
Trainer v2, training-operator v1) are served only when `crds` names them.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import urllib.parse

from tests.fakes.discovery import (
    AGGREGATED,
    ALL_CRDS,
    BUILTIN,
    OPTIONAL,
    TABLE,
    Resource,
    aggregated,
    group_list,
    resource_list,
    selects,
    status,
    table,
)

CREATED = "2026-11-29T10:00:00Z"


class FakeCluster:
    """The server, its objects and the requests it saw; a context manager."""

    def __init__(self, crds=ALL_CRDS, aggregated: bool = True, namespace: str = "rl", stale=()):
        unknown = set(crds) - ALL_CRDS
        assert not unknown, f"no such optional CRD: {unknown}"
        self.resources = [*BUILTIN, *(r for r in OPTIONAL if r.name in crds)]
        self.aggregated = aggregated
        self.stale = tuple(stale)  # group versions whose aggregated API server is down
        self.objects: dict[tuple[Resource, str, str], dict] = {}  # (resource, namespace, name)
        self.logs: dict[tuple[str, str], str] = {}  # (namespace, pod): its log
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        # kubectl asks for the namespace when an object is not found, to say which is missing.
        self.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeCluster:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def kubeconfig(self, path: str, namespace: str = "default") -> str:
        """Writes a kubeconfig (JSON is YAML) for this server, with no credentials; returns path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "nobody", "user": {}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "nobody", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        with open(path, "w") as f:
            json.dump(config, f)
        return path

    def resource(self, api_version: str, kind: str) -> Resource:
        group_version = api_version if "/" in api_version else f"/{api_version}"
        group, version = group_version.split("/")
        for r in self.resources:
            if (r.group, r.version, r.kind) == (group, version, kind):
                return r
        raise KeyError(f"the fake cluster does not serve {kind} in {api_version}")

    def add(self, obj: dict, namespace: str = "rl") -> None:
        """Puts an object (apiVersion, kind, metadata.name) into the cluster."""
        r = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj.setdefault("metadata", {})
        meta.setdefault("creationTimestamp", CREATED)
        meta.setdefault("uid", f"uid-{len(self.objects)}")
        if r.namespaced:
            meta["namespace"] = namespace
        with self._lock:
            self.objects[(r, meta.get("namespace", ""), meta["name"])] = obj

    def names(self, plural: str) -> list[str]:
        with self._lock:
            return sorted(name for (r, _, name) in self.objects if r.plural == plural)


def _handler(cluster: FakeCluster) -> type[http.server.BaseHTTPRequestHandler]:
    """A handler class bound to cluster (http.server makes one handler per request)."""
    return type("Handler", (_Handler,), {"cluster": cluster})


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers for `cluster`, which _handler sets on a subclass."""

    protocol_version = "HTTP/1.1"
    cluster: FakeCluster

    def log_message(self, *args) -> None:
        pass  # the record is cluster.requests

    def _send(self, code: int, body: dict | str, content_type: str = "application/json") -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> tuple[str, dict[str, str]]:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        with self.cluster._lock:
            self.cluster.requests.append({
                "method": self.command, "path": url.path, "query": query,
                "accept": self.headers.get("Accept", ""),
                "body": json.loads(body) if body else None,
            })  # fmt: skip
        return url.path, query

    def do_GET(self) -> None:
        path, query = self._record()
        accept = self.headers.get("Accept", "")
        if not self._discovery(path, accept):
            self._objects(path, query, accept)

    def do_DELETE(self) -> None:
        path, _ = self._record()
        r, namespace, name, _ = self._parse(path)
        with self.cluster._lock:
            obj = self.cluster.objects.pop((r, namespace, name), None) if r and name else None
        if obj is None:
            self._not_found(r, name or path)
        else:
            self._send(200, obj)

    def _discovery(self, path: str, accept: str) -> bool:
        """Answers /version and the discovery paths; False if path is none of them."""
        cluster = self.cluster
        wants_aggregated = cluster.aggregated and "as=APIGroupDiscoveryList" in accept
        if path == "/version":
            self._send(200, {"major": "1", "minor": "34", "gitVersion": "v1.34.1"})
        elif path in ("/api", "/apis") and wants_aggregated:
            self._send(
                200, aggregated(cluster.resources, path == "/api", cluster.stale), AGGREGATED
            )
        elif path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": []})  # fmt: skip
        elif path == "/apis":
            self._send(200, group_list(cluster.resources, cluster.stale))
        elif path.removeprefix("/apis/") in cluster.stale:
            message = "the server is currently unable to handle the request"
            self._send(503, status(503, "ServiceUnavailable", message))
        elif found := resource_list(
            cluster.resources, path.removeprefix("/api/").removeprefix("/apis/")
        ):
            self._send(200, found)
        else:
            return False
        return True

    def _parse(self, path: str) -> tuple[Resource | None, str, str, str]:
        """(resource, namespace, name, subresource) of a resource path."""
        match = re.fullmatch(
            r"/(?:api|apis/[^/]+)/([^/]+)(?:/namespaces/([^/]+))?/([^/]+)(?:/([^/]+))?(?:/([^/]+))?",
            path,
        )
        if not match:
            return None, "", "", ""
        version, namespace, plural, name, sub = match.groups()
        group = path.split("/")[2] if path.startswith("/apis/") else ""
        for r in self.cluster.resources:
            if (r.group, r.version, r.plural) == (group, version, plural):
                return r, namespace or "", name or "", sub or ""
        return None, "", "", ""

    def _not_found(self, r: Resource | None, name: str) -> None:
        what = f"{r.plural}.{r.group}" if r and r.group else (r.plural if r else "")
        message = (
            f'{what} "{name}" not found'
            if r
            else "the server could not find the requested resource"
        )
        details = {"name": name, "group": r.group, "kind": r.plural} if r else {}
        self._send(404, status(404, "NotFound", message, details))

    def _objects(self, path: str, query: dict[str, str], accept: str) -> None:
        r, namespace, name, sub = self._parse(path)
        if r is None:
            self._not_found(None, path)
        elif not name:
            self._list(r, namespace, query, accept)
        else:
            self._get(r, namespace, name, sub, query, accept)

    def _list(self, r: Resource, namespace: str, query: dict[str, str], accept: str) -> None:
        with self.cluster._lock:
            items = [o for (res, ns, _), o in sorted(self.cluster.objects.items(), key=lambda kv: kv[0][2])
                     if res == r and ns == namespace
                     and selects(query.get("labelSelector", ""), o["metadata"].get("labels", {}))]  # fmt: skip
        if "as=Table" in accept:
            self._send(200, table(items), TABLE)
        else:
            self._send(200, {"kind": f"{r.kind}List", "apiVersion": r.group_version,
                             "metadata": {"resourceVersion": "1"}, "items": items})  # fmt: skip

    def _get(
        self, r: Resource, namespace: str, name: str, sub: str, query: dict[str, str], accept: str
    ) -> None:
        with self.cluster._lock:
            obj = self.cluster.objects.get((r, namespace, name))
            log = self.cluster.logs.get((namespace, name), "")
        if obj is None:
            self._not_found(r, name)
        elif sub == "log":
            self._log(log, query)
        elif "as=Table" in accept:
            self._send(200, table([obj]), TABLE)
        else:
            self._send(200, obj)

    def _log(self, log: str, query: dict[str, str]) -> None:
        lines = log.splitlines(keepends=True)
        tail = int(query.get("tailLines", len(lines)))
        self._send(200, "".join(lines[len(lines) - tail :] if tail else []), "text/plain")
