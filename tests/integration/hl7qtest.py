"""hl7qtest - helpers for hl7q's integration tests: start the real daemon
on loopback in its own temporary directory, talk MLLP to it, and read its
LMDB journal independently of the C code (python3-lmdb)."""

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

BIN = os.environ.get("HL7Q_BIN", os.path.join(os.path.dirname(__file__), "../../bin"))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
# The project's own test messages, always; an outside corpus (the Makefile
# passes ../shared/corpus) is an extra run when that directory exists.
DATA = os.environ.get("HL7Q_DATA") or os.path.join(ROOT, "tests/data")
CORPUS = os.environ.get("HL7Q_CORPUS", os.path.join(ROOT, "../shared/corpus"))
if not os.path.isdir(CORPUS):
    CORPUS = None
SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"

# Field order of a journal record (queue/journal.h, HQ_F_*).
FIELDS = ["listener", "peer", "sending_app", "sending_fac", "receiving_app",
          "receiving_fac", "datetime", "type", "control_id", "processing_id",
          "version", "accept_ack", "app_ack", "charset", "patient_id",
          "patient_auth", "ack_id", "reason", "raw", "sealed", "raw_size", "raw_sha256",
          "dedup_key", "msg_key"]


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def corpus_files(malformed=False):
    """The test messages (or the malformed inputs): the project's, then the
    extra corpus's when there is one, each sorted by path.  Fails when a
    source that is there holds none, so a test never checks nothing."""
    out = []
    for root in (DATA, CORPUS):
        if root is None:
            continue
        top = os.path.join(root, "hl7v2")
        found = []
        for dirpath, dirnames, filenames in os.walk(top):
            is_mal = "/malformed" in dirpath[len(top):] or dirpath.endswith("malformed")
            if is_mal != malformed:
                continue
            found += [os.path.join(dirpath, f) for f in filenames if f.endswith(".hl7")]
        assert found, "no %s messages under %s" % ("malformed" if malformed else "test", top)
        out += sorted(found)
    return out


def decode_record(v):
    """Decodes a journal record (format 1, see queue/journal.c)."""
    assert v[0] == 1, "unknown record format %d" % v[0]
    rid, recv_us = struct.unpack(">QQ", v[1:17])
    state, is_batch = v[17], v[18]
    ack = v[19:21].rstrip(b"\x00").decode()
    err_code = struct.unpack(">H", v[21:23])[0]
    nf = v[31]
    off = 32
    rec = {"id": rid, "received_us": recv_us, "state": state, "is_batch": is_batch,
           "ack": ack, "err_code": err_code}
    for i in range(nf):
        (n,) = struct.unpack(">I", v[off:off + 4])
        off += 4
        if i < len(FIELDS):
            rec[FIELDS[i]] = bytes(v[off:off + n])
        off += n
    return rec


def read_journal(path):
    """Every record of the journal at path, by id."""
    import lmdb
    env = lmdb.open(path, readonly=True, lock=True, max_dbs=16, subdir=True)
    out = {}
    with env.begin() as txn:
        db = env.open_db(b"msgs", txn=txn, create=False)
        for k, v in txn.cursor(db=db):
            rec = decode_record(bytes(v))
            out[rec["id"]] = rec
    env.close()
    return out


class Daemon:
    """hl7qd on loopback in a fresh temporary directory."""

    def __init__(self, listeners=None, extra="", journal_extra="", env=None):
        self.dir = tempfile.mkdtemp(prefix="hl7q-it-")
        self.journal = os.path.join(self.dir, "journal")
        self.conf = os.path.join(self.dir, "hl7q.conf")
        self.log = os.path.join(self.dir, "hl7qd.log")
        self.env = dict(os.environ, **(env or {}))
        self.ports = {}
        listeners = listeners or {"main": ""}
        text = "[journal]\npath = %s\nmax_size = 256M\n%s\n" % (self.journal, journal_extra)
        for name, opts in listeners.items():
            if "listen" in opts:
                text += "[listener %s]\n%s\n" % (name, opts)
                self.ports[name] = int(opts.split("listen", 1)[1].split("\n")[0].rsplit(":", 1)[1])
            else:
                port = free_port()
                self.ports[name] = port
                text += "[listener %s]\nlisten = 127.0.0.1:%d\n%s\n" % (name, port, opts)
        text += extra
        with open(self.conf, "w") as f:
            f.write(text)
        self.proc = None

    @property
    def port(self):
        return next(iter(self.ports.values()))

    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        offset = self.logf.tell()  # a restart appends: look past the old "ready"
        self.proc = subprocess.Popen([os.path.join(BIN, "hl7qd"), "-c", self.conf, "-v"],
                                     stdout=self.logf, stderr=self.logf, env=self.env)
        if wait:
            deadline = time.time() + 10
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("hl7qd exited %d:\n%s" % (self.proc.returncode, self.read_log()))
                if b"<5>ready" in open(self.log, "rb").read()[offset:]:
                    return self
                time.sleep(0.02)
            raise RuntimeError("hl7qd not ready:\n" + self.read_log())
        return self

    def read_log(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.logf.close()

    def stop(self, timeout=15):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.logf.close()
        return rc

    def records(self):
        return read_journal(self.journal)

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Mllp:
    """A blocking MLLP client that reads whole frames."""

    def __init__(self, port, host="127.0.0.1", family=socket.AF_INET, timeout=10):
        self.s = socket.socket(family, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect((host, port))
        self.buf = b""

    def send(self, payload):
        self.s.sendall(SB + payload + EB + CR)

    def send_raw(self, data):
        self.s.sendall(data)

    def recv_frame(self, timeout=10):
        """The next frame's payload, or None on timeout or close."""
        self.s.settimeout(timeout)
        while True:
            start = self.buf.find(SB)
            if start >= 0:
                end = self.buf.find(EB + CR, start)
                if end >= 0:
                    frame = self.buf[start + 1:end]
                    self.buf = self.buf[end + 2:]
                    return frame
            try:
                data = self.s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                return None
            if not data:
                return None
            self.buf += data

    def request(self, payload, timeout=10):
        self.send(payload)
        return self.recv_frame(timeout)

    def closed(self, timeout=3):
        """True when the server closes the connection within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                data = self.s.recv(65536)
                if not data:
                    return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def msa(ack):
    """(MSA-1, MSA-2) of an ACK payload."""
    for seg in ack.split(b"\r"):
        if seg.startswith(b"MSA"):
            fs = seg[3:4]
            parts = seg.split(fs)
            return parts[1].decode(), (parts[2].decode("latin-1") if len(parts) > 2 else "")
    return None, None


def err_code(ack):
    """The 0357 code of an ACK's ERR segment (ERR-3.1, or ERR-1.4.1 before v2.5)."""
    for seg in ack.split(b"\r"):
        if seg.startswith(b"ERR"):
            fs = seg[3:4]
            f = seg.split(fs)
            if len(f) > 3 and f[3]:
                return int(f[3].split(b"^")[0])
            comps = f[1].split(b"^")
            if len(comps) > 3:
                return int(comps[3].split(b"&")[0])
    return None


def message(ctrl, size=0, extra=b""):
    m = (b"MSH|^~\\&|TESTAPP|TESTFAC|HL7Q|LOCAL|20261126120000||ADT^A01^ADT_A01|" +
         ctrl.encode() + b"|P|2.5.1\rEVN|A01|20261126120000\rPID|1||T-" + ctrl.encode() +
         b"^^^TEST^MR||SYNTHETIC^PATIENT||19700101|U\r" + extra)
    if size > len(m):
        m += b"NTE|1||" + b"x" * (size - len(m) - 8) + b"\r"
    return m


def read_deliveries(path):
    """{(id, target): (state, attempts, last_status)} from the journal's deliveries."""
    import lmdb
    env = lmdb.open(path, readonly=True, lock=True, max_dbs=16, subdir=True)
    out = {}
    with env.begin() as txn:
        db = env.open_db(b"deliveries", txn=txn, create=False)
        for k, v in txn.cursor(db=db):
            k, v = bytes(k), bytes(v)
            rid = struct.unpack(">Q", k[:8])[0]
            attempts = struct.unpack(">I", v[2:6])[0]
            status = struct.unpack(">H", v[22:24])[0]
            out[(rid, k[8:].decode())] = (v[1], attempts, status)
    env.close()
    return out


DLV_PENDING, DLV_RETRY, DLV_DELIVERED, DLV_DEAD = 1, 2, 3, 4


class Sink:
    """bin/hl7sink on a free loopback port, storing into its own directory."""

    def __init__(self, *args, port=0):
        self.dir = tempfile.mkdtemp(prefix="hl7q-sink-")
        self.args = list(args)
        self.port = port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([os.path.join(BIN, "hl7sink"), "-p", str(self.port),
                                      "-d", self.dir] + self.args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        self.port = int(line.split("127.0.0.1:")[1].split()[0])
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d/hl7" % self.port

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()

    def requests(self):
        """Stored requests in arrival order: (headers dict, body bytes)."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(".head"):
                continue
            head = open(os.path.join(self.dir, name), "rb").read().decode().splitlines()
            hdrs = {}
            for line in head[1:]:
                k, _, v = line.partition(": ")
                hdrs[k.lower()] = v
            body = open(os.path.join(self.dir, name[:-5] + ".body"), "rb").read()
            out.append((hdrs, body))
        return out

    def statuses(self):
        try:
            return [int(l.split()[1]) for l in open(os.path.join(self.dir, "requests.log"))]
        except FileNotFoundError:
            return []

    def wait_for(self, n, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.requests()) >= n:
                return self.requests()
            time.sleep(0.1)
        return self.requests()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_cert(dirpath, name, san):
    """A self-signed certificate (its own CA) for san, e.g. 'IP:127.0.0.1'."""
    cert = os.path.join(dirpath, name + ".pem")
    key = os.path.join(dirpath, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=hl7q-test", "-addext", "subjectAltName=" + san,
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    os.chmod(key, 0o600)  # hl7qd refuses private keys readable by others
    return cert, key


class Nginx:
    """Debian's nginx on loopback: HTTPS (self-signed) in front of an upstream."""

    def __init__(self, upstream_port):
        self.dir = tempfile.mkdtemp(prefix="hl7q-nginx-")
        self.cert, self.key = make_cert(self.dir, "good", "IP:127.0.0.1")
        self.wrong_cert, self.wrong_key = make_cert(self.dir, "wrong", "DNS:wrong.example")
        self.port, self.wrong_port, self.mtls_port = free_port(), free_port(), free_port()
        # a client certificate, and the same self-signed cert as the CA nginx trusts
        self.client_cert, self.client_key = make_cert(self.dir, "client", "DNS:hl7q-client")
        conf = """
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert}; ssl_certificate_key {key};
        location /hl7 {{ proxy_pass http://127.0.0.1:{up}; proxy_http_version 1.1; }}
        location /ok {{ return 200 "ok"; }}
    }}
    server {{
        listen 127.0.0.1:{mport} ssl;
        ssl_certificate {cert}; ssl_certificate_key {key};
        ssl_client_certificate {ccert}; ssl_verify_client on;
        location /hl7 {{ proxy_pass http://127.0.0.1:{up}; proxy_http_version 1.1; }}
    }}
    server {{
        listen 127.0.0.1:{wport} ssl;
        ssl_certificate {wcert}; ssl_certificate_key {wkey};
        location / {{ return 200 "ok"; }}
    }}
}}
""".format(d=self.dir, port=self.port, wport=self.wrong_port, cert=self.cert, key=self.key,
           wcert=self.wrong_cert, wkey=self.wrong_key, up=upstream_port,
           mport=self.mtls_port, ccert=self.client_cert)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", self.dir, "-c", self.conf, "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("nginx exited: " + self.proc.stderr.read().decode())
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def target(name, url, extra="", retry_max="300ms"):
    """A [target NAME] section with quick retries, for tests."""
    return "[target %s]\nurl = %s\nretry_initial = 100ms\nretry_max = %s\n%s\n" % (name, url, retry_max, extra)


def wait_until(pred, timeout=20, step=0.05):
    """pred()'s first true value within timeout seconds, else its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class DaemonTest(unittest.TestCase):
    """A test case whose daemons and sinks are cleaned up after each test;
    self.cleanups also takes plain callables."""

    def setUp(self):
        self.cleanups = []

    def tearDown(self):
        for c in reversed(self.cleanups):
            c() if callable(c) else c.cleanup()

    def sink(self, *args):
        s = Sink(*args).start()
        self.cleanups.append(s)
        return s

    def daemon(self, *args, **kw):
        d = Daemon(*args, **kw)
        self.cleanups.append(d)
        return d
