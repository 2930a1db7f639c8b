#!/usr/bin/python3
"""TLS listeners with the real binary on ephemeral loopback ports: a
throwaway CA and certificates made with the openssl command in a temporary
directory; mosquitto_pub/_sub (3.1.1 and 5.0, with and without client
certificates), paho, python's ssl and raw sockets as clients; certificate
identities as user names under an ACL; TLS and TCP clients on one broker;
refusals (plaintext, a stalled handshake, untrusted, expired and missing
client certificates, TLS 1.1) each with its log line and metric; SIGHUP
with a new certificate, a new client CA and a broken key; startup errors. Every broker
must exit 0 without sanitizer reports. Prints TAP.

usage: tls_test.py STARLING_BINARY [--workers N] [--only SUBSTRING]
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402
from mqttraw import *  # noqa: E402,F403

TESTS = []
_ids = iter(range(1, 1 << 30))


def test(fn):
    TESTS.append(fn)
    return fn


def run(*cmd, cwd=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr}"
    return r.stdout


class Pki:
    """A CA, two server certificates (serials 0x1001 and 0x2002, SAN
    127.0.0.1 and localhost), client certificates: alice (valid), mallory
    (signed by another CA), old (expired), and an unrelated key."""

    def __init__(self, d):
        self.d = d
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for ca in ("ca", "other-ca"):
            run("openssl", "req", "-x509", *ec, "-keyout", self.p(ca + ".key"), "-out",
                self.p(ca + ".pem"), "-days", "30", "-subj", f"/CN=Starling test {ca}")
        with open(self.p("server.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
        with open(self.p("client.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
                    "subjectAltName=DNS:alice.devices.example,email:alice@example.com\n")
        self.leaf("server", "/CN=localhost", "ca", "0x1001", "server.ext")
        self.leaf("server2", "/CN=localhost", "ca", "0x2002", "server.ext")
        self.leaf("alice", "/O=Starling/CN=alice", "ca", "0x3003", "client.ext")
        self.leaf("mallory", "/CN=mallory", "other-ca", "0x4004", "client.ext")
        # Expired: `openssl x509 -req` of OpenSSL 3.0 cannot back-date, `openssl ca` can.
        os.makedirs(self.p("newcerts"))
        open(self.p("index.txt"), "w").close()
        with open(self.p("serial"), "w") as f:
            f.write("5005\n")
        with open(self.p("ca.cnf"), "w") as f:
            f.write(f"""[ca]
default_ca = test
[test]
database = {self.p('index.txt')}
new_certs_dir = {self.p('newcerts')}
serial = {self.p('serial')}
default_md = sha256
policy = any
[any]
commonName = supplied
""")
        run("openssl", "req", *ec, "-keyout", self.p("old.key"), "-out", self.p("old.csr"),
            "-subj", "/CN=old")
        run("openssl", "ca", "-batch", "-config", self.p("ca.cnf"), "-cert", self.p("ca.pem"),
            "-keyfile", self.p("ca.key"), "-in", self.p("old.csr"), "-out", self.p("old.pem"),
            "-startdate", "20200101000000Z", "-enddate", "20200201000000Z", "-notext")
        run("openssl", "genpkey", "-algorithm", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-out", self.p("unrelated.key"))

    def p(self, name):
        return os.path.join(self.d, name)

    def leaf(self, name, subject, ca, serial, ext):
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", self.p(name + ".key"), "-out", self.p(name + ".csr"),
            "-subj", subject)
        run("openssl", "x509", "-req", "-in", self.p(name + ".csr"), "-CA", self.p(ca + ".pem"),
            "-CAkey", self.p(ca + ".key"), "-set_serial", serial, "-days", "10", "-extfile",
            self.p(ext), "-out", self.p(name + ".pem"))


class Ctx(tap.BrokerCtx):
    def __init__(self, binary, workers, pki):
        super().__init__(binary, workers, "starling-tls-")
        self.pki = pki

    def copy(self, src, name):
        path = os.path.join(self.dir, name)
        shutil.copyfile(self.pki.p(src), path)
        return path

    def broker(self, *args, cert="server", client_ca=False):
        """A broker with one TLS listener; .tls_port is its port."""
        tls = ["--tls-listen=127.0.0.1:0",
               f"--tls-cert-file={self.copy(cert + '.pem', 'server.pem')}",
               f"--tls-key-file={self.copy(cert + '.key', 'server.key')}"]
        if client_ca:
            tls.append(f"--tls-ca-file={self.pki.p('ca.pem')}")
        b = self.start(tls + list(args))
        m = re.search(rb"listening for MQTT over TLS on \S*:(\d+)", b.text())
        assert m, b.text().decode()
        b.tls_port = int(m.group(1))
        return b



def wait_log(b, needle, timeout=10, count=1):
    deadline = time.monotonic() + timeout
    while b.text().count(needle) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not in the log:\n" + b.text().decode()[-2500:])
        time.sleep(0.05)


def metric(b, name, labels=""):
    """One sample of /metrics (workers publish every 100 ms: retry briefly)."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{b.metrics_port}/metrics",
                                  timeout=5).read().decode()
    key = name + ("{" + labels + "}" if labels else "")
    for line in body.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[1])
    raise AssertionError(f"{key} not exported")


def wait_metric(b, name, labels, want, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        v = metric(b, name, labels)
        if v == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{{{labels}}} = {v}, want {want}")
        time.sleep(0.05)


def tls_context(pki, cert=None, ca="ca.pem"):
    ctx = ssl.create_default_context(cafile=pki.p(ca))
    if cert:
        ctx.load_cert_chain(pki.p(cert + ".pem"), pki.p(cert + ".key"))
    return ctx


def tls_client(b, pki, v=5, cert=None):
    """A raw MQTT client (mqttraw.Client) over python's ssl."""
    raw = socket.create_connection(("127.0.0.1", b.tls_port), timeout=5)
    c = Client.__new__(Client)
    c.v = v
    c.buf = bytearray()
    c.sock = tls_context(pki, cert).wrap_socket(raw, server_hostname="127.0.0.1")
    return c


def mosq(tool, port, pki, *args, cert=None, timeout=10):
    tls = ["--cafile", pki.p("ca.pem")]
    if cert:
        tls += ["--cert", pki.p(cert + ".pem"), "--key", pki.p(cert + ".key")]
    return subprocess.run([tool, "-h", "127.0.0.1", "-p", str(port), *tls, *args],
                          capture_output=True, text=True, timeout=timeout)


def mosq_sub(port, pki, *args, cert=None):
    tls = ["--cafile", pki.p("ca.pem")] if pki else []
    if cert:
        tls += ["--cert", pki.p(cert + ".pem"), "--key", pki.p(cert + ".key")]
    return subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), *tls, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_subscribed(b, count):
    """mosquitto_sub has subscribed once the broker logged its CONNECT and
    a little time passed for the SUBSCRIBE that follows it."""
    wait_log(b, b"connected 127.0.0.1:", count=count)
    time.sleep(0.3)


def serial_of(der):
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                       capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def served_serial(b, pki):
    raw = socket.create_connection(("127.0.0.1", b.tls_port), timeout=5)
    with tls_context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as s:
        return serial_of(s.getpeercert(binary_form=True))


# ---- clients over TLS -----------------------------------------------------------

@test
def t01_mosquitto_clients_over_tls(ctx):
    b = ctx.broker()
    for n, version in enumerate(("mqttv311", "mqttv5")):
        sub = mosq_sub(b.tls_port, ctx.pki, "-V", version, "-t", "tls/t", "-C", "1", "-W", "10")
        wait_subscribed(b, 2 * n + 1)
        r = mosq("mosquitto_pub", b.tls_port, ctx.pki, "-V", version, "-t", "tls/t", "-m",
                 f"over {version}", "-q", "1")
        assert r.returncode == 0, r.stderr
        out, err = sub.communicate(timeout=15)
        assert sub.returncode == 0 and out.strip() == f"over {version}", (out, err)
    assert b"on mqtts 127.0.0.1:" in b.text(), "the listener is named in the log"
    wait_metric(b, "starling_tls_handshakes_total", "", 4)
    # Without our CA the client refuses us: a client alert, counted.
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.tls_port), "--cafile",
                        ctx.pki.p("other-ca.pem"), "-t", "x", "-m", "x"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    wait_log(b, b"the client sent an alert")
    wait_metric(b, "starling_tls_handshake_failures_total", 'reason="client_alert"', 1)


@test
def t02_paho_over_tls(ctx):
    b = ctx.broker()
    script = r"""
import sys, ssl, threading, paho.mqtt.client as mqtt
port, ca = int(sys.argv[1]), sys.argv[2]
got = threading.Event()
def on_connect(c, u, flags, rc, properties=None):
    c.subscribe("paho/tls", qos=1)
def on_subscribe(c, u, mid, granted, properties=None):
    c.publish("paho/tls", b"through paho", qos=1)
def on_message(c, u, m):
    print(m.topic, m.payload.decode())
    got.set()
    c.disconnect()
c = mqtt.Client(client_id="paho-tls", protocol=mqtt.MQTTv5)
c.tls_set(ca_certs=ca)
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect("127.0.0.1", port)
c.loop_forever(timeout=5)
print("ok" if got.is_set() else "none")
"""
    r = subprocess.run(["/usr/bin/python3", "-c", script, str(b.tls_port), ctx.pki.p("ca.pem")],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.split("\n")[:2] == ["paho/tls through paho", "ok"], (r.stdout, r.stderr[-800:])


@test
def t03_tls_and_tcp_clients_talk_both_ways(ctx):
    b = ctx.broker()
    for v in (4, 5):
        secure = tls_client(b, ctx.pki, v)
        assert secure.connect(f"tls{next(_ids)}").rc == 0
        plain = Client(b.port, v)
        assert plain.connect(f"tcp{next(_ids)}").rc == 0
        for c, t in ((secure, "to/tls"), (plain, "to/tcp")):
            c.send(subscribe(v, 1, [(t, 1)]))
            c.expect(SUBACK)
        big = os.urandom(100000)  # several TLS records each way
        plain.send(publish(v, "to/tls", big, qos=1, pid=7))
        plain.expect(PUBACK)
        got = secure.expect(PUBLISH)
        assert got.topic == b"to/tls" and got.payload == big
        secure.send(ack(PUBACK, got.pid))
        secure.send(publish(v, "to/tcp", b"from tls", qos=1, pid=8))
        secure.expect(PUBACK)
        got = plain.expect(PUBLISH)
        assert got.topic == b"to/tcp" and got.payload == b"from tls"
        plain.send(ack(PUBACK, got.pid))
        secure.send(disconnect(v))
        assert secure.closed() == []
        plain.close()
    wait_log(b, b"client_disconnect")


# ---- client certificates ----------------------------------------------------------

@test
def t04_mutual_tls(ctx):
    b = ctx.broker("--tls-require-client-cert=true", client_ca=True)
    sub = mosq_sub(b.tls_port, ctx.pki, "-V", "mqttv5", "-t", "m/t", "-C", "1", "-W", "10",
                   cert="alice")
    wait_subscribed(b, 1)
    r = mosq("mosquitto_pub", b.tls_port, ctx.pki, "-t", "m/t", "-m", "mutual", cert="alice")
    assert r.returncode == 0, r.stderr
    out, err = sub.communicate(timeout=15)
    assert out.strip() == "mutual", (out, err)
    # No certificate at all.
    r = mosq("mosquitto_pub", b.tls_port, ctx.pki, "-t", "m/t", "-m", "x")
    assert r.returncode != 0
    wait_log(b, b"no client certificate (one is required)")
    wait_metric(b, "starling_tls_handshake_failures_total", 'reason="no_client_cert"', 1)


@test
def t05_untrusted_and_expired_client_certificates(ctx):
    b = ctx.broker("--tls-require-client-cert=true", client_ca=True)
    for cert, why, reason in (("mallory", b"unable to get local issuer certificate",
                               "client_cert_untrusted"),
                              ("old", b"certificate has expired", "client_cert_expired")):
        t = time.monotonic()
        r = mosq("mosquitto_pub", b.tls_port, ctx.pki, "-t", "x", "-m", "x", cert=cert)
        assert r.returncode != 0, f"{cert} was accepted"
        assert time.monotonic() - t < 5
        wait_log(b, b"client certificate refused: " + why)
        wait_metric(b, "starling_tls_handshake_failures_total", f'reason="{reason}"', 1)
    # python's ssl sees the alert naming the reason.
    try:
        c = tls_client(b, ctx.pki, cert="old")
        c.send(connect(5, "old"))
        c.recv()
        raise AssertionError("an expired certificate got through")
    except (ssl.SSLError, ConnectionError) as e:
        assert "expired" in str(e) or "closed" in str(e), e
    wait_metric(b, "starling_tls_handshakes_total", "", 0)


@test
def t06_identity_as_username_with_passwords_and_acl(ctx):
    passwords = os.path.join(ctx.dir, "passwords")
    subprocess.run([ctx.binary, "passwd", "-c", "-b", "-I", "1000", passwords, "watcher", "w4tch"],
                   check=True, capture_output=True, timeout=30)
    acl = ctx.file("acl", "# alice, named by her certificate\nuser alice\n"
                          "topic readwrite alice/#\n"
                          "# the watcher, with a password on TCP\nuser watcher\ntopic read #\n")
    b = ctx.broker(f"--password-file={passwords}", f"--acl-file={acl}",
                   "--tls-identity-as-username=cn", client_ca=True)
    watcher = Client(b.port, 5)
    assert watcher.connect("watcher", user="watcher", password="w4tch").rc == 0
    watcher.send(subscribe(5, 1, [("#", 1)]))
    assert watcher.expect(SUBACK).rcs == [1]
    # alice needs no password, and the CONNECT's user name does not count.
    for args in ((), ("-u", "mallory", "-P", "wrong")):
        r = mosq("mosquitto_pub", b.tls_port, ctx.pki, "-V", "mqttv5", "-q", "1", "-t",
                 "alice/lamp", "-m", "on", *args, cert="alice")
        assert r.returncode == 0, r.stderr
        got = watcher.expect(PUBLISH)
        assert got.topic == b"alice/lamp" and got.payload == b"on", got
        watcher.send(ack(PUBACK, got.pid))
    # Outside what the ACL gives alice: refused, never delivered.
    c = tls_client(b, ctx.pki, cert="alice")
    assert c.connect("alice-raw").rc == 0
    c.send(publish(5, "bob/lamp", b"off", qos=1, pid=1))
    assert c.expect(PUBACK).rc == 0x87
    c.send(subscribe(5, 2, [("alice/#", 0), ("bob/#", 0)]))
    assert c.expect(SUBACK).rcs == [0, 0x87]
    c.close()
    watcher.nothing(0.5)
    # Without a certificate there is no identity: refused, not asked for a password.
    c = tls_client(b, ctx.pki)
    assert c.connect("nocert", user="watcher", password="w4tch").rc == 0x86
    c.close()
    wait_log(b, b"no client certificate identity to use as user name")
    # TCP keeps the password rules.
    plain = Client(b.port, 5)
    assert plain.connect("alice-tcp", user="alice").rc == 0x86
    plain.close()
    watcher.close()


@test
def t07_identity_from_the_subject_alt_name(ctx):
    acl = ctx.file("acl", "user alice.devices.example\ntopic readwrite dev/#\n")
    b = ctx.broker(f"--acl-file={acl}", "--tls-identity-as-username=san", client_ca=True)
    c = tls_client(b, ctx.pki, cert="alice")
    assert c.connect("san").rc == 0
    c.send(publish(5, "dev/x", b"1", qos=1, pid=1))
    assert c.expect(PUBACK).rc == 0
    c.send(publish(5, "alice/x", b"1", qos=1, pid=2))
    assert c.expect(PUBACK).rc == 0x87
    c.close()
    # Only certificates authenticate user names here: one claimed on the
    # plain listener, which nothing could check, is refused.
    plain = Client(b.port, 5)
    assert plain.connect("claim", user="alice.devices.example").rc == 0x86
    plain.close()


# ---- bad input ----------------------------------------------------------------

@test
def t08_plaintext_on_the_tls_port(ctx):
    b = ctx.broker()
    c = Client(b.tls_port, 4)
    t = time.monotonic()
    c.send(connect(4, "plain", True, 60))
    try:
        c.closed(timeout=3)
    except ssl.SSLError:
        pass
    except ValueError:  # the alert parsed as a packet; the socket still closes
        pass
    assert time.monotonic() - t < 2, "refused promptly"
    wait_log(b, b"TLS handshake failed with 127.0.0.1:")
    wait_log(b, b"not a TLS client hello")
    wait_metric(b, "starling_tls_handshake_failures_total", 'reason="not_tls"', 1)
    # The worker goes on serving.
    c = tls_client(b, ctx.pki)
    assert c.connect("after").rc == 0
    c.close()


@test
def t09_stalled_handshake_hits_the_connect_timeout(ctx):
    b = ctx.broker("--connect-timeout-ms=500")
    # A real ClientHello, from python's ssl into memory, half of it sent.
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_context(ctx.pki).wrap_bio(inc, out, server_hostname="127.0.0.1")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    assert len(hello) > 100 and hello[0] == 0x16, hello[:8]
    s = socket.create_connection(("127.0.0.1", b.tls_port), timeout=5)
    s.sendall(hello[:len(hello) // 2])
    t = time.monotonic()
    s.settimeout(3)
    assert s.recv(100) == b"", "closed without a byte"
    took = time.monotonic() - t
    assert 0.4 < took < 1.5, f"closed after {took:.2f}s"
    s.close()
    wait_log(b, b"TLS handshake not finished within 500 ms")
    wait_metric(b, "starling_tls_handshake_failures_total", 'reason="timeout"', 1)
    wait_metric(b, "starling_connections_closed_total", 'reason="connect_timeout"', 1)


@test
def t10_tls_1_1_is_refused(ctx):
    b = ctx.broker()
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client side allows it at all
    raw = socket.create_connection(("127.0.0.1", b.tls_port), timeout=5)
    try:
        old.wrap_socket(raw).close()
        raise AssertionError("TLS 1.1 was accepted")
    except ssl.SSLError as e:
        assert "VERSION" in str(e).upper(), e
    raw.close()
    wait_log(b, b"protocol version below TLS 1.2")
    wait_metric(b, "starling_tls_handshake_failures_total", 'reason="protocol_version"', 1)
    # 1.2 is fine.
    new = tls_context(ctx.pki)
    new.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection(("127.0.0.1", b.tls_port), timeout=5)
    with new.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        assert s.version() == "TLSv1.2"


# ---- reload and startup -------------------------------------------------------

@test
def t11_sighup_new_certificate_and_broken_key(ctx):
    b = ctx.broker()
    assert served_serial(b, ctx.pki) == "serial=1001"
    old = tls_client(b, ctx.pki)
    assert old.connect("before-reload").rc == 0
    ctx.copy("server2.pem", "server.pem")
    ctx.copy("server2.key", "server.key")
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, b"TLS certificate, key and CA read again")
    assert served_serial(b, ctx.pki) == "serial=2002", "new connections see the new certificate"
    old.send(pkt(0xC0, b""))
    old.expect(PINGRESP)  # the existing session was not touched
    with open(os.path.join(ctx.dir, "server.key"), "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, b"keeping the running configuration and TLS context")
    assert b"SIGHUP: tls_key_file " in b.text(), b.text().decode()[-800:]
    assert served_serial(b, ctx.pki) == "serial=2002", "the old context stays"
    old.send(pkt(0xC0, b""))
    old.expect(PINGRESP)
    old.send(disconnect(5))
    old.closed()
    # A key that does not match the certificate is refused the same way.
    ctx.copy("unrelated.key", "server.key")
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, b"does not match the certificate", count=1)
    assert served_serial(b, ctx.pki) == "serial=2002"


@test
def t12_startup_errors_name_the_file(ctx):
    pem, key = ctx.pki.p("server.pem"), ctx.pki.p("server.key")
    missing = os.path.join(ctx.dir, "missing.pem")
    encrypted = os.path.join(ctx.dir, "encrypted.key")  # was: "interrupted or cancelled"
    run("openssl", "pkey", "-in", key, "-aes256", "-passout", "pass:s3cret", "-out", encrypted)
    cases = (
        ([f"--tls-cert-file={missing}", f"--tls-key-file={key}"],
         f"cannot start: tls_cert_file {missing}: cannot open: No such file or directory"),
        ([f"--tls-cert-file={pem}", f"--tls-key-file={ctx.pki.p('unrelated.key')}"],
         "does not match the certificate"),
        ([f"--tls-cert-file={pem}", f"--tls-key-file={key}", f"--tls-ca-file={missing}"],
         f"cannot start: tls_ca_file {missing}: cannot open"),
        ([f"--tls-cert-file={key}", f"--tls-key-file={key}"], f"tls_cert_file {key}: "),
        ([f"--tls-cert-file={pem}", f"--tls-key-file={encrypted}"],
         f"tls_key_file {encrypted}: the key is encrypted, and encrypted keys are not "
         f"supported"),
    )
    for args, want in cases:
        r = subprocess.run([ctx.binary, "--listen=127.0.0.1:0", "--metrics=false",
                            "--tls-listen=127.0.0.1:0", *args],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 1, r.stderr
        errors = [ln for ln in r.stderr.splitlines() if " ERROR " in ln]
        assert len(errors) == 1 and want in errors[0], (want, r.stderr)
    r = subprocess.run([ctx.binary, "--listen=127.0.0.1:0", "--metrics=false",
                        "--tls-listen=127.0.0.1:0"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "tls_listen: needs tls_cert_file and tls_key_file" in r.stderr


# ---- runner -----------------------------------------------------------------

@test
def t13_client_certificates_turn_anonymous_off(ctx):
    # auto: with client certificates configured, a client must be known:
    # by a verified certificate (no user name needed) or, failing that, not
    # at all; allow_anonymous=true or a per-kind key says otherwise.
    b = ctx.broker(client_ca=True)
    tcp = Client(b.port, 5)
    tcp.send(connect(5, f"anon-tcp{next(_ids)}", True, 60))
    assert tcp.expect(CONNACK).rc == 0x87, "anonymous on TCP once client certs exist"
    tcp.close()
    c = tls_client(b, ctx.pki, cert="alice")
    c.send(connect(5, f"cert{next(_ids)}", True, 60))
    assert c.expect(CONNACK).rc == 0, "a verified certificate is not anonymous"
    c.close()
    c = tls_client(b, ctx.pki)
    c.send(connect(5, f"nocert{next(_ids)}", True, 60))
    assert c.expect(CONNACK).rc == 0x87, "no certificate, no user name: anonymous"
    c.close()
    b2 = ctx.broker("--tls-allow-anonymous=false", "--allow-anonymous=true", client_ca=True)
    tcp = Client(b2.port, 5)
    tcp.send(connect(5, f"anon-tcp{next(_ids)}", True, 60))
    assert tcp.expect(CONNACK).rc == 0, "allow_anonymous=true on TCP"
    tcp.close()
    c = tls_client(b2, ctx.pki)
    c.send(connect(5, f"nocert{next(_ids)}", True, 60))
    assert c.expect(CONNACK).rc == 0x87, "tls_allow_anonymous=false on the TLS listener"
    c.close()


@test
def t14_sighup_new_client_ca(ctx):
    # The CA that client certificates are checked against is reloaded too:
    # after the swap, new handshakes trust only the new CA; a connection
    # made under the old one stays.
    ca = ctx.copy("ca.pem", "client-ca.pem")
    b = ctx.broker("--tls-require-client-cert=true", f"--tls-ca-file={ca}")
    kept = tls_client(b, ctx.pki, cert="alice")
    assert kept.connect(f"kept{next(_ids)}").rc == 0

    def accepted(cert):
        try:
            c = tls_client(b, ctx.pki, cert=cert)
            c.send(connect(5, f"{cert}{next(_ids)}", True, 60))
            ok = c.expect(CONNACK).rc == 0
            c.close()
            return ok
        except (ssl.SSLError, ConnectionError, AssertionError):
            return False

    assert accepted("alice") and not accepted("mallory"), "before the reload"
    ctx.copy("other-ca.pem", "client-ca.pem")
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, b"TLS certificate, key and CA read again")
    assert accepted("mallory"), "a certificate of the new CA"
    assert not accepted("alice"), "a certificate of the old CA after the reload"
    wait_log(b, b"client certificate refused: unable to get local issuer certificate")
    kept.send(pkt(0xC0, b""))
    kept.expect(PINGRESP)  # the connection made under the old CA is untouched
    kept.send(disconnect(5))
    kept.closed()


def main():
    a = tap.parse_args()
    print("TAP version 13")
    todo = [(t.__name__, t) for t in TESTS if a.only in t.__name__]
    pki_dir = tempfile.mkdtemp(prefix="starling-pki-")
    try:
        try:
            pki = Pki(pki_dir)
        except Exception:  # noqa: BLE001
            print("Bail out! cannot make test certificates")
            traceback.print_exc()
            sys.exit(1)
        result = tap.run(todo, lambda: Ctx(a.binary, a.workers, pki))
    finally:
        shutil.rmtree(pki_dir, ignore_errors=True)
    tap.finish(*result)


if __name__ == "__main__":
    main()
