"""The docker strategy: sqld in a labelled container (needs the ``docker`` package and a daemon)."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any

from .endpoint import SqldConfig, SqldEndpoint, SqldHandle
from .net import SqldUnavailable, localhost_subdomains_resolve, make_label, server_version, wait_healthy

CONTAINER_LABEL = "pytest-traceparity"


def _docker_client() -> Any:
    try:
        import docker
    except ImportError:
        raise SqldUnavailable(
            "--sqld=docker needs the `docker` Python package: pip install 'pytest-traceparity[docker]'"
        ) from None
    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:
        where = os.environ.get("DOCKER_HOST", "the default socket (/var/run/docker.sock)")
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SqldUnavailable(
            f"--sqld=docker: no Docker daemon answers at {where} ({reason[:160]}); "
            "start Docker, or use --sqld=binary/url/stand-in"
        ) from None
    return client


def docker_available() -> bool:
    try:
        _docker_client().close()
    except SqldUnavailable:
        return False
    return True


def start_docker(config: SqldConfig) -> SqldHandle:
    client = _docker_client()  # like binary: the container runs without auth, no token sent
    host_routing = config.namespaces and localhost_subdomains_resolve()
    command = ["/bin/sqld"]
    ports: dict[str, Any] = {"8080/tcp": ("127.0.0.1", None)}
    if host_routing:
        command += ["--enable-namespaces", "--admin-listen-addr", "0.0.0.0:9090"]
        ports["9090/tcp"] = ("127.0.0.1", None)
    session = uuid.uuid4().hex[:12]
    try:
        container = client.containers.run(
            config.image,
            command=command,
            detach=True,
            environment={"SQLD_NODE": "standalone"},
            ports=ports,
            labels={CONTAINER_LABEL: session, f"{CONTAINER_LABEL}.pid": str(os.getpid())},
            name=f"traceparity-sqld-{session}",
        )
    except Exception as exc:
        raise SqldUnavailable(
            f"--sqld=docker: could not start {config.image}: {str(exc).splitlines()[0][:200]}"
        ) from None

    def stop() -> None:
        with contextlib.suppress(Exception):
            container.remove(force=True)
        with contextlib.suppress(Exception):
            client.close()

    try:
        container.reload()
        bindings = container.attrs["NetworkSettings"]["Ports"]
        port = int(bindings["8080/tcp"][0]["HostPort"])
        url = f"http://127.0.0.1:{port}"
        admin = f"http://127.0.0.1:{int(bindings['9090/tcp'][0]['HostPort'])}" if host_routing else None

        def alive() -> str | None:
            container.reload()
            if container.status in ("exited", "dead"):
                logs = container.logs(tail=15).decode("utf-8", "replace")
                return f"the {config.image} container exited during startup:\n{logs}"
            return None

        wait_healthy(url, config.startup_timeout, alive=alive)
    except BaseException:
        stop()
        raise
    endpoint = SqldEndpoint(
        url=url,
        label=make_label(server_version(url), "docker"),
        strategy="docker",
        supports_namespaces=host_routing,
        namespace_routing="host" if host_routing else "none",
        admin_url=admin,
        owned=True,
    )
    return SqldHandle(endpoint, stop)
