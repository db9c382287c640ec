"""What `expensebot lambda-test` needs of the machine: a Docker daemon, and SAM's base image for python3.13.

- A daemon that answers is used as it is. Without one, root on Debian gets one: docker.io from Debian's
  packages and its own `dockerd`, started with `--iptables=false` (so it adds no firewall or NAT rule) and
  the default bridge, on which SAM publishes each container's emulator port. It is stopped by its PID at the
  end, and the bridge interface it created is removed. The packages stay installed.
- SAM runs a zip function on `public.ecr.aws/lambda/python:3.13-x86_64`. Where that registry resolves, SAM
  pulls the real image. Where it does not (this project's machines and CI reach only package registries),
  a stand-in is built once from Debian packages and kept: a trixie rootfs (debootstrap) with python3.13 as
  /var/lang/bin/python3.13, the Runtime Interface Client (awslambdaric) and boto3 under /var/runtime as in
  the real runtime, and infra/lambda-image's bootstrap and entry point, imported with the real image's
  environment. SAM adds the Runtime Interface Emulator itself (it ships in the aws-sam-cli wheel), which is
  why `sam local invoke --skip-pull-image` is needed with it."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from expensebot_tools.project.template import PROJECT_ROOT

BASE_IMAGE = "public.ecr.aws/lambda/python:3.13-x86_64"
REGISTRY_HOST = BASE_IMAGE.split("/", 1)[0]
IMAGE_DIR = PROJECT_ROOT / "infra" / "lambda-image"
# The label that marks the stand-in, with a digest of what it was built from: a changed recipe rebuilds it.
STANDIN_LABEL = "org.expensebot.lambda-standin"
DEBIAN_SUITE = "trixie"  # python3.13 is trixie's python3
DEBIAN_MIRROR = os.environ.get("LAMBDA_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
RUNTIME_PACKAGES = ("awslambdaric", "boto3")  # what the real python3.13 runtime has under /var/runtime
# The real image's environment (its Dockerfile), except LANG: a minbase rootfs has no en_US locale.
IMAGE_ENV = {
    "LANG": "C.UTF-8",
    "TZ": ":/etc/localtime",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
}
DAEMON_START_SECONDS = 60
Log = Callable[[str], None]


class Skipped(Exception):
    """This machine cannot run the test at all (one line says why); not a failure."""


class SetupError(Exception):
    """Setting the machine up failed."""


def run(command: list[str], *, timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, capture_output=True, timeout=timeout, **kwargs)


def docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], check=True, capture_output=True,
                       timeout=20)
    except (subprocess.SubprocessError, OSError):
        return False
    return True


def can_set_up() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def registry_resolves(host: str = REGISTRY_HOST) -> bool:
    """Whether the base image's registry has an address here. Only a name lookup: nothing is sent to it."""
    try:
        socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return True


@dataclass
class Machine:
    """What this run changed on the machine, so that it can be undone (packages stay, and are reported)."""

    log: Log
    installed: list[str] = field(default_factory=list)
    dockerd: subprocess.Popen[bytes] | None = None
    created_bridge: bool = False
    _apt_updated: bool = False

    def install(self, packages: dict[str, str]) -> None:
        """Installs the Debian packages whose command (the value) is missing."""
        missing = [package for package, command in packages.items() if shutil.which(command) is None]
        if not missing:
            return
        if not can_set_up():
            raise SetupError(f"{', '.join(missing)} missing, and installing needs root with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        self.log(f"installing {' '.join(missing)} (apt-get)")
        if not self._apt_updated:
            run(["apt-get", "update", "-q"], env=env)
            self._apt_updated = True
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)
        self.installed.extend(missing)

    def ensure_docker(self) -> str:
        """A Docker daemon that answers; returns whose it is."""
        if docker_answers():
            return "the Docker daemon already running"
        if not can_set_up():
            raise Skipped("no Docker daemon answers here, and setting one up needs root on Debian (apt-get)")
        self.install({"docker.io": "dockerd"})
        self.created_bridge = not Path("/sys/class/net/docker0").exists()
        log_path = Path(tempfile.gettempdir()) / "expensebot-lambda-test-dockerd.log"
        self.log(f"starting dockerd --iptables=false (log: {log_path})")
        with log_path.open("wb") as log_file:
            self.dockerd = subprocess.Popen(
                ["dockerd", "--iptables=false", "--storage-driver=overlay2"],
                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + DAEMON_START_SECONDS
        while not docker_answers():
            if self.dockerd.poll() is not None or time.monotonic() > deadline:
                raise SetupError(f"dockerd did not come up; see {log_path}")
            time.sleep(0.5)
        return f"dockerd started by this run (PID {self.dockerd.pid})"

    def restore(self) -> None:
        """Stops the daemon this run started (by its PID) and removes the bridge it created."""
        if self.dockerd is not None and self.dockerd.poll() is None:
            self.log(f"stopping dockerd (PID {self.dockerd.pid})")
            self.dockerd.send_signal(signal.SIGTERM)
            try:
                self.dockerd.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.dockerd.kill()
                self.dockerd.wait()
        self.dockerd = None
        if self.created_bridge and Path("/sys/class/net/docker0").exists():
            subprocess.run(["ip", "link", "delete", "docker0"], check=False, capture_output=True)
        self.created_bridge = False


@dataclass(frozen=True)
class Bridge:
    """The default bridge of the daemon: the containers reach this machine at `gateway`."""

    gateway: str
    subnet: str


def default_bridge() -> Bridge:
    """The default bridge's subnet and this machine's address on it (older daemons leave the gateway out of
    `network inspect`: it is then the bridge interface's own address)."""
    network = json.loads(run(["docker", "network", "inspect", "bridge", "--format", "{{json .}}"]).stdout)
    interface = (network.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
    for config in (network.get("IPAM") or {}).get("Config") or []:
        subnet = config.get("Subnet", "")
        if not subnet or ":" in subnet:
            continue
        # Docker gives the bridge the subnet's first address unless told otherwise.
        gateway = (config.get("Gateway") or interface_address(interface, subnet)
                   or str(next(ipaddress.ip_network(subnet).hosts())))
        return Bridge(gateway=gateway, subnet=subnet)
    raise SetupError("the Docker bridge network has no IPv4 subnet")


def interface_address(interface: str, subnet: str) -> str | None:
    if shutil.which("ip") is None:
        return None
    addresses = json.loads(run(["ip", "-json", "-4", "address", "show", "dev", interface]).stdout or "[]")
    network = ipaddress.ip_network(subnet)
    for entry in addresses:
        for info in entry.get("addr_info", []):
            if ipaddress.ip_address(info["local"]) in network:
                return str(info["local"])
    return None


def recipe_digest() -> str:
    """What the stand-in is built from: a change to any of it rebuilds the image."""
    digest = hashlib.sha256()
    for path in sorted(IMAGE_DIR.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(json.dumps([DEBIAN_SUITE, RUNTIME_PACKAGES, IMAGE_ENV]).encode())
    return digest.hexdigest()[:16]


def image_labels(image: str) -> dict[str, str] | None:
    """The image's labels, or None when it is not here."""
    result = subprocess.run(["docker", "image", "inspect", image, "--format", "{{json .Config.Labels}}"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout) or {}


@dataclass(frozen=True)
class BaseImage:
    pull: bool  # whether SAM may pull (the real image); otherwise --skip-pull-image
    how: str


def ensure_base_image(machine: Machine) -> BaseImage:
    labels = image_labels(BASE_IMAGE)
    if labels is not None and STANDIN_LABEL not in labels:
        return BaseImage(pull=False, how=f"the real {BASE_IMAGE}, already here")
    # Where the name resolves but a proxy or firewall keeps the registry out, the stand-in can be asked for.
    if os.environ.get("LAMBDA_TEST_BASE_IMAGE") != "standin" and registry_resolves():
        return BaseImage(pull=True, how=f"the real {BASE_IMAGE}, pulled by SAM")
    if labels is not None and labels.get(STANDIN_LABEL) == recipe_digest():
        return BaseImage(pull=False, how=f"local stand-in for {BASE_IMAGE} (built earlier, reused)")
    started = time.monotonic()
    build_standin(machine)
    return BaseImage(pull=False, how=f"local stand-in for {BASE_IMAGE} (built now in {time.monotonic() - started:.0f}"
                                     f" s; {REGISTRY_HOST} does not resolve here)")


def build_standin(machine: Machine) -> None:
    if os.geteuid() != 0:
        raise Skipped(f"{REGISTRY_HOST} is not reachable, and building a stand-in base image needs root")
    machine.install({"debootstrap": "debootstrap"})
    rootfs = Path(tempfile.mkdtemp(prefix="expensebot-lambda-rootfs-", dir="/var/tmp"))
    try:
        machine.log(f"building the stand-in base image: debootstrap {DEBIAN_SUITE} (about a minute)")
        run(["debootstrap", "--variant=minbase", "--include=python3.13,python3,ca-certificates", DEBIAN_SUITE,
             str(rootfs), DEBIAN_MIRROR], timeout=900)
        machine.log(f"adding {', '.join(RUNTIME_PACKAGES)} under /var/runtime")
        # Wheels for the image's interpreter, whatever runs this: manylinux wheels need glibc 2.17+, trixie has 2.41.
        run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(rootfs / "var/runtime"),
             "--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--python-version", "3.13",
             "--implementation", "cp", "--abi", "cp313", *RUNTIME_PACKAGES])
        (rootfs / "var/lang/bin").mkdir(parents=True)
        (rootfs / "var/lang/bin/python3.13").symlink_to("/usr/bin/python3.13")
        for directory in ("var/task", "opt"):
            (rootfs / directory).mkdir(parents=True, exist_ok=True)
        shutil.copy2(IMAGE_DIR / "bootstrap", rootfs / "var/runtime/bootstrap")
        shutil.copy2(IMAGE_DIR / "lambda-entrypoint.sh", rootfs / "lambda-entrypoint.sh")
        # What an image never needs: downloaded packages, package lists, documentation.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(rootfs / leftover, ignore_errors=True)
        changes = [f"ENV {name}={value}" for name, value in IMAGE_ENV.items()] + [
            "WORKDIR /var/task",
            'ENTRYPOINT ["/lambda-entrypoint.sh"]',
            f"LABEL {STANDIN_LABEL}={recipe_digest()}",
        ]
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        try:
            run(["docker", "import", *[arg for change in changes for arg in ("--change", change)], "-", BASE_IMAGE],
                stdin=tar.stdout)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    # SAM builds its own image per layer set on top of the base and reuses it: one made from an older
    # stand-in would hide the new one.
    stale = run(["docker", "images", "--quiet", "samcli/lambda-python"]).stdout.split()
    if stale:
        subprocess.run(["docker", "rmi", "--force", *sorted(set(stale))], check=False, capture_output=True)
