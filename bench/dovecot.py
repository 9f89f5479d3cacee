"""A private, throwaway Dovecot IMAP server for tests and benchmarks (Debian ``dovecot-imapd``).

``Dovecot.create()`` writes a configuration into a fresh ``mkdtemp(dir="/tmp")`` directory (mode
755: Dovecot's auth process must traverse it), with one passwd-file user, a self-signed
certificate for 127.0.0.1, a plain/STARTTLS listener and an implicit-TLS listener on free loopback
ports. ``start()`` runs ``dovecot -F -c CONF`` as our child; ``stop()`` ends it by its PID, so a
test can restart the same server (same mail, same ports) mid-run.

Run as root, mail is owned by ``nobody`` and Dovecot's internal users are Debian's ``dovecot`` and
``dovenull``; run as anyone else, everything runs as that user.
"""

from __future__ import annotations

import datetime as dt
import grp
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.tls import self_signed_cert

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = tp-dovecot-{port}
log_path = {root}/log/dovecot.log
info_log_path = {root}/log/dovecot.log
ssl = yes
ssl_cert = <{root}/tls/cert.pem
ssl_key = <{root}/tls/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth2_mechanisms}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
mail_fsync = never
imap_idle_notify_interval = 1 mins
mail_max_userip_connections = 200
{chroot}

namespace inbox {{
  inbox = yes
  separator = /
}}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
{oauth2_passdb}userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={root}/home/%u
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
    ssl = yes
  }}
  process_min_avail = 1
}}
service imap {{
  process_limit = 256
}}
{unprivileged_services}
"""

#: Dovecot's ``oauth2`` passdb: XOAUTH2/OAUTHBEARER tokens checked by POSTing them to an
#: RFC 7662 introspection endpoint (``introspection_mode = post``), the user from ``username``.
OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}
"""
OAUTH2_SETTINGS = """\
introspection_mode = post
introspection_url = {introspection_url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""

UNPRIVILEGED = """\
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  user = {user}
}}
service auth {{
  user = {user}
}}
service auth-worker {{
  user = {user}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """PIDs of every process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class DovecotUnavailable(Exception):
    """Raised when Dovecot is not installed or does not start (the log tail says why)."""


@dataclass
class Dovecot:
    """One private Dovecot instance: where it lives, how to reach it, and its process."""

    root: Path
    port: int
    ssl_port: int
    cert_path: Path
    user: str = "support"
    password: str = "s3cret-Pass"
    process: subprocess.Popen | None = field(default=None, repr=False)

    host = "127.0.0.1"

    # --- life cycle -----------------------------------------------------------------------------

    @classmethod
    def create(cls, *, user: str = "support", password: str = "s3cret-Pass",
               oauth2_introspection_url: str | None = None) -> "Dovecot":
        """Write a configuration in a new directory under /tmp; the server is not started yet.

        ``oauth2_introspection_url``: also accept XOAUTH2 / OAUTHBEARER logins whose tokens that
        endpoint says are active (Dovecot's ``oauth2`` passdb)."""
        if not os.path.exists(DOVECOT):
            raise DovecotUnavailable(f"{DOVECOT} not found (install Debian's dovecot-imapd)")
        root = Path(tempfile.mkdtemp(prefix="tp-dovecot-", dir="/tmp"))
        os.chmod(root, 0o755)
        for sub in ("run", "state", "log", "home"):
            (root / sub).mkdir(mode=0o755)
        (root / "tls").mkdir(mode=0o755)
        cert_path, _key = self_signed_cert(root / "tls")
        (root / "passwd").write_text(f"{user}:{{PLAIN}}{password}\n")
        os.chmod(root / "passwd", 0o644)
        port, ssl_port = _free_port(), _free_port()
        if os.geteuid() == 0:
            mail = pwd.getpwnam("nobody")
            mail_uid, mail_gid = mail.pw_uid, mail.pw_gid
            internal_user, login_user = "dovecot", "dovenull"
            internal_group = grp.getgrgid(pwd.getpwnam("dovecot").pw_gid).gr_name
            chroot, extra = "", ""
        else:
            me = pwd.getpwuid(os.geteuid())
            mail_uid, mail_gid = me.pw_uid, me.pw_gid
            internal_user = login_user = me.pw_name
            internal_group = grp.getgrgid(me.pw_gid).gr_name
            chroot = ""
            extra = UNPRIVILEGED.format(user=me.pw_name)
        home = root / "home" / user
        home.mkdir(mode=0o700)
        os.chown(home, mail_uid, mail_gid)
        (root / "dovecot.conf").write_text(
            CONFIG.format(
                root=root,
                port=port,
                ssl_port=ssl_port,
                internal_user=internal_user,
                internal_group=internal_group,
                login_user=login_user,
                mail_uid=mail_uid,
                mail_gid=mail_gid,
                chroot=chroot,
                unprivileged_services=extra,
                oauth2_mechanisms=" xoauth2 oauthbearer" if oauth2_introspection_url else "",
                oauth2_passdb=OAUTH2_PASSDB.format(root=root) if oauth2_introspection_url else "",
            )
        )
        if oauth2_introspection_url:
            (root / "oauth2.conf.ext").write_text(
                OAUTH2_SETTINGS.format(introspection_url=oauth2_introspection_url)
            )
            os.chmod(root / "oauth2.conf.ext", 0o644)
        return cls(root=root, port=port, ssl_port=ssl_port, cert_path=cert_path, user=user,
                   password=password)

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    def start(self, timeout: float = 15.0) -> None:
        """Run ``dovecot -F -c CONF`` and wait until the IMAP port answers with a greeting."""
        if self.process is not None and self.process.poll() is None:
            return
        log = open(self.root / "log" / "stderr.log", "ab")
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DovecotUnavailable(
                    f"dovecot exited with {self.process.returncode}: {self.log_tail()}"
                )
            if self._greets():
                return
            time.sleep(0.05)
        self.stop()
        raise DovecotUnavailable(f"dovecot did not answer on port {self.port}: {self.log_tail()}")

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                return sock.recv(100).startswith(b"* OK")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop our Dovecot by its PID (SIGTERM, then SIGKILL) and wait for the ports to close."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # Dovecot's master leaves its imap processes to notice its death on their own (~10 s),
        # so like systemd's restart of the unit we end the whole tree, each by its PID.
        children = _descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._listening():
            time.sleep(0.05)

    def _listening(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        texts = []
        for name in ("dovecot.log", "stderr.log"):
            path = self.root / "log" / name
            if path.exists():
                texts.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(texts[-lines:])

    # --- talking to it as a mail client would ------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def client(self):
        """A logged-in IMAPClient (plain connection) for setting up and inspecting mail."""
        from imapclient import IMAPClient

        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        client.login(self.user, self.password)
        return client

    def append(
        self,
        messages,
        *,
        folder: str = "INBOX",
        flags: tuple = (),
        msg_time: dt.datetime | None = None,
    ) -> None:
        """APPEND each raw message to ``folder`` (created if missing), with ``flags``."""
        client = self.client()
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            messages = list(messages)
            for start in range(0, len(messages), 200):  # MULTIAPPEND, 200 at a time
                client.multiappend(
                    folder,
                    [{"msg": raw, "flags": flags, **({"date": msg_time} if msg_time else {})}
                     for raw in messages[start:start + 200]],
                )
        finally:
            client.logout()

    def flags(self, folder: str = "INBOX") -> dict[int, tuple]:
        """UID → flags of every message in ``folder``."""
        client = self.client()
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            return {uid: data[b"FLAGS"] for uid, data in client.fetch(uids, ["FLAGS"]).items()}
        finally:
            client.logout()

    def uids(self, folder: str = "INBOX") -> list[int]:
        client = self.client()
        try:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            return list(client.search("ALL"))
        finally:
            client.logout()
