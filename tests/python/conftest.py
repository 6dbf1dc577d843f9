"""Start one real opsdesk server for the whole session and hand out zenpy clients for it.

Environment:
  OPSDESK_BIN                path to the opsdesk binary (set by scripts/python-tests.sh)
  OPSDESK_BACKEND            "sqlite" (default) or "postgres"
  OPSDESK_TEST_DATABASE_URL  PostgreSQL server URL, required for the postgres backend;
                             a fresh database is created next to the one it names and dropped
                             at the end.

zenpy builds https://{subdomain}.zendesk.com/api/v2/... but honours ZENPY_FORCE_SCHEME and
ZENPY_FORCE_NETLOC on every call, which is how it is pointed at 127.0.0.1:PORT here.

Comments in the tests name the request zenpy really sends for each call (read from zenpy's
source and checked on the wire). Where they say page[size]=N, the brackets travel
percent-encoded (page%5Bsize%5D=N) because requests/urllib3 encode them; zenpy's query
parameters come in no fixed order.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from types import SimpleNamespace

import pytest
import requests
from zenpy import Zenpy

ADMIN_EMAIL = "admin@example.com"
ADMIN_NAME = "Ada Admin"
ADMIN_PASSWORD = "secret-pass-1"
AGENT_EMAIL = "agent@example.com"
AGENT_NAME = "Alan Agent"
AGENT_PASSWORD = "secret-pass-2"
END_USER_EMAIL = "customer@example.com"
END_USER_NAME = "Cora Customer"
END_USER_PASSWORD = "secret-pass-3"

CLI_TIMEOUT = 120  # seconds for one bootstrap command
STARTUP_TIMEOUT = 30.0  # seconds until /healthz must answer 200
STARTUP_STEP = 0.1
SHUTDOWN_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
HTTP_TIMEOUT = 30  # seconds for one raw HTTP request

# Filled in while the session runs; printed by pytest_terminal_summary when something failed.
_SERVER_LOG = {"path": None, "text": None}


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_log(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        return f"(could not read {path}: {e})"


def _tail(text, lines=200):
    return "\n".join(text.splitlines()[-lines:])


def _run_cli(binary, args, what):
    cmd = [binary, *args]
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{what}: `{' '.join(cmd)}` timed out after {CLI_TIMEOUT}s") from e
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what}: `{' '.join(cmd)}` exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc.stdout


def _psql(admin_url, sql):
    proc = subprocess.run(
        ["psql", admin_url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"psql `{sql}` exited {proc.returncode}: {proc.stderr.strip()}")


def _with_database(url, dbname):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))


class _Session(requests.Session):
    """requests.Session with a default timeout, so a hung server fails a test instead of CI."""

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return super().request(method, url, **kwargs)


class Server:
    def __init__(self, base_url, port, token, backend, log_path):
        self.base_url = base_url  # http://127.0.0.1:PORT (no /api/v2)
        self.port = port
        self.token = token  # the admin's API token
        self.backend = backend
        self.log_path = log_path

    def log_tail(self, lines=200):
        return _tail(_read_log(self.log_path), lines)


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("OPSDESK_BIN")
    if not binary:
        pytest.fail("OPSDESK_BIN is not set: run the suite with scripts/python-tests.sh BINARY", pytrace=False)
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"OPSDESK_BIN={binary} is not an executable file", pytrace=False)

    backend = os.environ.get("OPSDESK_BACKEND", "sqlite")
    tmp = tempfile.mkdtemp(prefix="opsdesk-py-")
    log_path = os.path.join(tmp, "server.log")
    _SERVER_LOG["path"] = log_path

    admin_db_url = None
    dbname = None
    proc = None
    log_file = None
    try:
        if backend == "sqlite":
            data_dir = os.path.join(tmp, "data")
            os.mkdir(data_dir)
            db_args = ["--data-dir", data_dir]
        elif backend == "postgres":
            admin_db_url = os.environ.get("OPSDESK_TEST_DATABASE_URL")
            if not admin_db_url:
                pytest.fail("OPSDESK_BACKEND=postgres needs OPSDESK_TEST_DATABASE_URL", pytrace=False)
            dbname = "opsdesk_py_" + uuid.uuid4().hex[:16]
            _psql(admin_db_url, f"CREATE DATABASE {dbname}")
            db_args = ["--database-url", _with_database(admin_db_url, dbname),
                       "--data-dir", os.path.join(tmp, "data")]
        else:
            pytest.fail(f"unknown OPSDESK_BACKEND={backend!r} (sqlite or postgres)", pytrace=False)

        _run_cli(binary, ["migrate", *db_args], "migrate")
        for email, name, role, password in (
            (ADMIN_EMAIL, ADMIN_NAME, "admin", ADMIN_PASSWORD),
            (AGENT_EMAIL, AGENT_NAME, "agent", AGENT_PASSWORD),
            (END_USER_EMAIL, END_USER_NAME, "end-user", END_USER_PASSWORD),
        ):
            _run_cli(
                binary,
                ["user", "create", *db_args, "--email", email, "--name", name,
                 "--role", role, "--password", password],
                f"user create {email}",
            )
        out = _run_cli(binary, ["token", "create", *db_args, "--email", ADMIN_EMAIL], "token create")
        lines = [line for line in out.splitlines() if line.strip()]
        if len(lines) != 1:
            raise RuntimeError(f"token create must print exactly one line (the token), got {out!r}")
        token = lines[0].strip()

        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        log_file = open(log_path, "wb")
        proc = subprocess.Popen(
            [binary, "serve", *db_args, "--listen", f"127.0.0.1:{port}", "--export-hold-back", "2"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "RUST_BACKTRACE": "1"},
        )

        deadline = time.monotonic() + STARTUP_TIMEOUT
        healthy = False
        last_error = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                r = requests.get(f"{base_url}/healthz", timeout=1)
                if r.status_code == 200:
                    healthy = True
                    break
                last_error = f"HTTP {r.status_code}"
            except requests.RequestException as e:
                last_error = repr(e)
            time.sleep(STARTUP_STEP)
        if not healthy:
            exited = proc.poll()
            reason = (f"exited with code {exited}" if exited is not None
                      else f"/healthz not 200 within {STARTUP_TIMEOUT}s (last: {last_error})")
            raise RuntimeError(f"opsdesk serve failed to start: {reason}\n"
                               f"--- server log ---\n{_tail(_read_log(log_path))}")

        os.environ["ZENPY_FORCE_SCHEME"] = "http"
        os.environ["ZENPY_FORCE_NETLOC"] = f"127.0.0.1:{port}"

        yield Server(base_url, port, token, backend, log_path)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=SHUTDOWN_TIMEOUT)
        if log_file is not None:
            log_file.close()
        if os.path.exists(log_path):
            _SERVER_LOG["text"] = _read_log(log_path)
        if proc is not None and proc.returncode not in (None, 0, -signal.SIGTERM):
            _SERVER_LOG["exit"] = proc.returncode
        if dbname is not None:
            try:
                _psql(admin_db_url, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
            except Exception as e:  # cleanup must not hide the real failure
                print(f"warning: could not drop database {dbname}: {e}")
        shutil.rmtree(tmp, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    text = _SERVER_LOG.get("text")
    if exitstatus != 0 and text:
        terminalreporter.write_sep("=", "opsdesk server log (last 200 lines)")
        terminalreporter.write_line(_tail(text))
    if _SERVER_LOG.get("exit") is not None:
        terminalreporter.write_line(f"opsdesk serve exited with code {_SERVER_LOG['exit']} at shutdown")


@pytest.fixture(scope="session")
def base_url(server):
    """http://127.0.0.1:PORT — the server root; the API lives under /api/v2."""
    return server.base_url


@pytest.fixture(scope="session")
def api_url(base_url):
    return f"{base_url}/api/v2"


@pytest.fixture(scope="session")
def admin_token(server):
    return server.token


@pytest.fixture(scope="session")
def admin_client(server):
    """zenpy client authenticated as the admin with the API token (basic `email/token:TOKEN`)."""
    return Zenpy(subdomain="x", email=ADMIN_EMAIL, token=server.token, disable_cache=True)


@pytest.fixture(scope="session")
def agent_client(server):
    """zenpy client authenticated as the agent with email and password."""
    return Zenpy(subdomain="x", email=AGENT_EMAIL, password=AGENT_PASSWORD, disable_cache=True)


@pytest.fixture(scope="session")
def end_user_client(server):
    """zenpy client authenticated as the end-user with email and password."""
    return Zenpy(subdomain="x", email=END_USER_EMAIL, password=END_USER_PASSWORD, disable_cache=True)


@pytest.fixture(scope="session")
def admin_session(server):
    """A plain requests.Session with the admin's token credentials, for raw HTTP checks."""
    s = _Session()
    s.auth = (f"{ADMIN_EMAIL}/token", server.token)
    s.headers["Accept"] = "application/json"
    return s


@pytest.fixture(scope="session")
def anon_session(server):
    s = _Session()
    s.headers["Accept"] = "application/json"
    return s


@pytest.fixture(scope="session")
def accounts():
    """The three accounts the CLI creates before the server starts."""
    return SimpleNamespace(
        admin=SimpleNamespace(email=ADMIN_EMAIL, name=ADMIN_NAME, password=ADMIN_PASSWORD),
        agent=SimpleNamespace(email=AGENT_EMAIL, name=AGENT_NAME, password=AGENT_PASSWORD),
        end_user=SimpleNamespace(email=END_USER_EMAIL, name=END_USER_NAME, password=END_USER_PASSWORD),
    )


@pytest.fixture(scope="session")
def admin_user(admin_client):
    return admin_client.users.me()


@pytest.fixture(scope="session")
def agent_user(agent_client):
    return agent_client.users.me()


@pytest.fixture(scope="session")
def end_user(end_user_client):
    return end_user_client.users.me()


@pytest.fixture
def unique():
    """unique("label") -> "label-<12 hex>", for names and emails that no other test uses."""
    def make(label):
        return f"{label}-{uuid.uuid4().hex[:12]}"
    return make


@pytest.fixture
def unique_email(unique):
    def make(label="user"):
        return f"{unique(label)}@example.com"
    return make


INSTANCE_HTTP_TIMEOUT = 10


class Instance:
    """One opsdesk server process with its own database."""

    def __init__(self, extra_args=()):
        self.binary = os.path.abspath(os.environ["OPSDESK_BIN"])
        self.backend = os.environ.get("OPSDESK_BACKEND", "sqlite")
        self.tmp = tempfile.mkdtemp(prefix="opsdesk-ops-")
        if self.backend == "postgres":
            admin = os.environ["OPSDESK_TEST_DATABASE_URL"]
            self.dbname = "opsdesk_ops_" + uuid.uuid4().hex[:12]
            _psql(admin, f"CREATE DATABASE {self.dbname}")
            self.db_args = ["--database-url", _with_database(admin, self.dbname)]
        else:
            self.dbname = None
            self.db_args = []
        # The data directory holds the SQLite database, and on both backends the mail spool.
        self.data_dir = os.path.join(self.tmp, "data")
        self.db_args += ["--data-dir", self.data_dir]
        self.extra = list(extra_args)
        self.cli("migrate")
        self.cli("user", "create", "--email", "ops@example.com", "--name", "Ops Admin", "--role", "admin")
        self.token = self.cli("token", "create", "--email", "ops@example.com").strip()
        self.auth = ("ops@example.com/token", self.token)
        self.proc = None
        self.log = os.path.join(self.tmp, "server.log")

    def cli(self, *args):
        return _run_cli(self.binary, [*args, *self.db_args], " ".join(args[:2]))

    def start(self):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [self.binary, "serve", *self.db_args, "--listen", f"127.0.0.1:{self.port}", *self.extra],
            stdin=subprocess.DEVNULL, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, _tail(_read_log(self.log))
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError("server did not start:\n" + _tail(_read_log(self.log)))

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode if self.proc else None

    def close(self):
        self.stop()
        if self.dbname:
            _psql(os.environ["OPSDESK_TEST_DATABASE_URL"], f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)")

    def get(self, path, **kw):
        return requests.get(f"{self.url}/api/v2/{path}", auth=self.auth, timeout=INSTANCE_HTTP_TIMEOUT, **kw)


@pytest.fixture
def instance():
    made = []

    def make(*extra):
        i = Instance(extra)
        made.append(i)
        return i

    yield make
    for i in made:
        i.close()
