#!/usr/bin/python3
"""Authentication and authorization with the real binary on ephemeral
loopback ports: password files written by `starling passwd` and by
Debian's mosquitto_passwd, mosquitto_pub/_sub and paho with credentials,
exact CONNACK/SUBACK/PUBACK codes for 3.1.1 and 5.0, password checks that
do not stall a worker, the failure limit, ACLs on publish, subscribe and
every delivery (retained and will messages too), and SIGHUP reloads.
Prints TAP.

usage: security_test.py STARLING_BINARY [--workers N] [--only SUBSTRING]
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402
from mqttraw import *  # noqa: E402,F403

TESTS = []
_ids = iter(range(1, 1 << 30))


def test(fn):
    TESTS.append(fn)
    return fn


class Ctx(tap.BrokerCtx):
    def __init__(self, binary, workers):
        super().__init__(binary, workers, "starling-sec-")

    def passwd(self, *args, check=True):
        r = subprocess.run([self.binary, "passwd", *args], capture_output=True, text=True,
                           timeout=60)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    def broker(self, *args):
        return self.start(args)


def raw_client(b, v, source=None):
    """A connected raw client, from the address source (127.0.0.x) if given."""
    if source is None:
        return Client(b.port, v)
    c = Client.__new__(Client)
    c.v = v
    c.buf = bytearray()
    c.sock = socket.socket()
    c.sock.settimeout(10)
    c.sock.bind((source, 0))
    c.sock.connect(("127.0.0.1", b.port))
    return c


def raw_connect(b, v, cid=None, user=None, password=None, source=None, timeout=10, **kw):
    """(client, CONNACK) of a raw CONNECT."""
    c = raw_client(b, v, source)
    c.send(connect(v, cid or f"sec{next(_ids)}", True, 60, user=user, password=password, **kw))
    return c, c.expect(CONNACK, timeout=timeout)


def users(ctx, iterations=1000):
    path = os.path.join(ctx.dir, "passwords")
    ctx.passwd("-c", "-b", "-I", str(iterations), path, "alice", "secret1")
    ctx.passwd("-b", "-I", str(iterations), path, "bob", "pässwörd ✓")
    return path


def mosq(ctx, tool, b, *args, timeout=10):
    return subprocess.run([tool, "-h", "127.0.0.1", "-p", str(b.port), *args],
                          capture_output=True, text=True, timeout=timeout)


# ---- authentication -----------------------------------------------------------

@test
def s01_mosquitto_clients_with_passwords(ctx):
    b = ctx.broker(f"--password-file={users(ctx)}")
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port), "-u", "bob",
                            "-P", "pässwörd ✓", "-t", "sec/t", "-C", "1", "-W", "10"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 5
    while b"sec/t" not in b.text() and b'as "' not in b.text() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the subscription, after the CONNACK
    r = mosq(ctx, "mosquitto_pub", b, "-u", "alice", "-P", "secret1", "-t", "sec/t", "-m", "hi")
    assert r.returncode == 0, r.stderr
    out, err = sub.communicate(timeout=15)
    assert sub.returncode == 0 and out.strip() == "hi", (sub.returncode, out, err)
    r = mosq(ctx, "mosquitto_pub", b, "-u", "alice", "-P", "wrong", "-t", "sec/t", "-m", "x")
    assert r.returncode != 0 and "bad user name or password" in r.stderr.lower(), r.stderr
    r = mosq(ctx, "mosquitto_pub", b, "-t", "sec/t", "-m", "x")
    assert r.returncode != 0 and "not authori" in r.stderr.lower(), r.stderr
    r = mosq(ctx, "mosquitto_pub", b, "-V", "mqttv5", "-u", "nobody", "-P", "x", "-t", "a", "-m", "x")
    assert r.returncode != 0, r.stderr


@test
def s01_exact_connack_codes(ctx):
    b = ctx.broker(f"--password-file={users(ctx)}")
    cases = [  # (version, user, password, code)
        (4, "alice", "secret1", 0x00), (5, "alice", "secret1", 0x00),
        (4, "alice", "nope", 0x04), (5, "alice", "nope", 0x86),
        (4, "carol", "secret1", 0x04), (5, "carol", "secret1", 0x86),
        (4, None, None, 0x05), (5, None, None, 0x87),
        (5, "alice", None, 0x86),
    ]
    for v, user, pw, code in cases:
        c, a = raw_connect(b, v, user=user, password=pw)
        assert a.rc == code, (v, user, pw, hex(a.rc))
        if code:
            c.closed()
        c.close()
    c, a = raw_connect(b, 5, user="alice", password="secret1", p=[(0x15, "SCRAM-SHA-1")])
    assert a.rc == 0x8C, hex(a.rc)  # enhanced authentication is not offered
    c.close()


@test
def s01_mosquitto_passwd_file_migrates(ctx):
    path = os.path.join(ctx.dir, "mosquitto-passwords")
    for args in (["-c", "-b", path, "dave", "m1gr4te"], ["-b", path, "erin", "second"]):
        r = subprocess.run(["mosquitto_passwd", *args], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    b = ctx.broker(f"--password-file={path}")
    for user, pw, ok in (("dave", "m1gr4te", True), ("erin", "second", True), ("dave", "x", False)):
        r = mosq(ctx, "mosquitto_pub", b, "-u", user, "-P", pw, "-t", "m", "-m", "x")
        assert (r.returncode == 0) == ok, (user, r.stderr)


@test
def s01_paho_with_credentials(ctx):
    b = ctx.broker(f"--password-file={users(ctx)}")
    script = r"""
import sys, paho.mqtt.client as mqtt
port, proto, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
result = []
c = mqtt.Client(client_id="paho-sec", protocol=mqtt.MQTTv5 if proto == "5" else mqtt.MQTTv311)
c.username_pw_set(user, pw)
def on_connect(client, userdata, flags, rc, properties=None):
    result.append(int(rc.value) if hasattr(rc, "value") else int(rc))
    client.disconnect()
c.on_connect = on_connect
c.connect("127.0.0.1", port)
c.loop_forever(timeout=5)
print(result[0] if result else "none")
"""
    for proto, user, pw, want in (("4", "alice", "secret1", "0"), ("4", "alice", "bad", "4"),
                                  ("5", "bob", "pässwörd ✓", "0"), ("5", "bob", "bad", "134")):
        r = subprocess.run(["/usr/bin/python3", "-c", script, str(b.port), proto, user, pw],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout.strip() == want, (proto, user, r.stdout, r.stderr[-500:])


@test
def s01_allow_anonymous_with_passwords(ctx):
    b = ctx.broker(f"--password-file={users(ctx)}", "--allow-anonymous=true")
    c, a = raw_connect(b, 5)
    assert a.rc == 0, hex(a.rc)
    c.close()
    c, a = raw_connect(b, 5, user="alice", password="wrong")
    assert a.rc == 0x86, "a user name still needs its password"
    c.close()


@test
def s01_slow_hash_does_not_stall_the_worker(ctx):
    path = os.path.join(ctx.dir, "slow")
    # About a second of PBKDF2 on this machine: long enough to see a stall.
    ctx.passwd("-c", "-b", "-I", "1500000", path, "slow", "pw")
    b = ctx.broker(f"--password-file={path}", "--allow-anonymous=true")
    busy = Client(b.port, 5)
    assert busy.connect(f"busy{next(_ids)}", True).rc == 0
    verdict = {}

    def slow_connect():
        t = time.monotonic()
        c, a = raw_connect(b, 5, user="slow", password="pw")
        verdict["rc"], verdict["s"] = a.rc, time.monotonic() - t
        c.close()

    th = threading.Thread(target=slow_connect)
    th.start()
    time.sleep(0.05)
    worst = 0
    pings = 0
    while th.is_alive() and pings < 200:
        t = time.monotonic()
        busy.send(pkt(0xC0, b""))
        busy.expect(PINGRESP)
        worst = max(worst, time.monotonic() - t)
        pings += 1
    th.join(30)
    assert verdict.get("rc") == 0, verdict
    assert verdict["s"] > 0.3, f"the hash took {verdict['s']:.2f}s: too fast to show anything"
    assert pings >= 5, pings
    # Workers=1: the same worker answered every PING while the hash ran.
    assert worst < 0.25, f"a PING waited {worst * 1000:.0f} ms during the password check"
    busy.close()


@test
def s01_passed_credentials_skip_the_hash_until_a_reload(ctx):
    path = os.path.join(ctx.dir, "slow")
    ctx.passwd("-c", "-b", "-I", "1500000", path, "slow", "pw")
    b = ctx.broker(f"--password-file={path}")

    def timed(pw):
        t = time.monotonic()
        c, a = raw_connect(b, 5, user="slow", password=pw)
        c.close()
        return a.rc, time.monotonic() - t

    rc, first = timed("pw")
    assert rc == 0 and first > 0.3, (rc, first)
    rc, again = timed("pw")
    assert rc == 0 and again < first / 3, f"remembered: {again:.3f}s vs {first:.3f}s"
    rc, wrong = timed("nope")
    assert rc == 0x86 and wrong > 0.3, ("a wrong password is always checked", rc, wrong)
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, b"password file and ACL read again")
    rc, after = timed("pw")
    assert rc == 0 and after > 0.3, f"a reload forgets: {after:.3f}s"
    r = subprocess.run([ctx.binary, f"--password-file={path}", "--auth-cache-size=0",
                        "--check-config", "/dev/null"], capture_output=True, text=True)
    assert "auth_cache_size = 0" in r.stdout, r.stderr


@test
def s01_failed_authentications_are_limited_per_address(ctx):
    b = ctx.broker(f"--password-file={users(ctx)}", "--auth-failures-per-minute=3")
    for i in range(3):  # distinct guesses: a repeated one is not counted again
        c, a = raw_connect(b, 5, user="alice", password=f"guess{i}", source="127.0.0.1")
        assert a.rc == 0x86, hex(a.rc)
        c.close()
    c, a = raw_connect(b, 5, user="alice", password="secret1", source="127.0.0.1")
    assert a.rc == 0x9F, f"over the limit: {a.rc:#x}"
    c.close()
    c, a = raw_connect(b, 4, user="alice", password="secret1", source="127.0.0.1")
    assert a.rc == 0x03, f"3.1.1 over the limit: {a.rc:#x}"  # server unavailable
    c.close()
    c, a = raw_connect(b, 5, user="alice", password="secret1", source="127.0.0.2")
    assert a.rc == 0, "another address is not limited"
    c.close()


@test
def s01_remembered_credentials_pass_a_limited_address(ctx):
    # A NAT: one address, a good client and a guesser behind it.
    b = ctx.broker(f"--password-file={users(ctx)}", "--auth-failures-per-minute=3")
    nat = "127.0.0.7"
    c, a = raw_connect(b, 5, user="alice", password="secret1", source=nat)
    assert a.rc == 0
    c.close()
    for i in range(3):
        c, a = raw_connect(b, 5, user="alice", password=f"guess{i}", source=nat)
        assert a.rc == 0x86, hex(a.rc)
        c.close()
    c, a = raw_connect(b, 5, user="alice", password="secret1", source=nat)
    assert a.rc == 0, f"a credential that passed is not refused by the limiter: {a.rc:#x}"
    c.close()
    c, a = raw_connect(b, 5, user="bob", password="pässwörd ✓", source=nat)
    assert a.rc == 0x9F, f"one that was never checked is, over the limit: {a.rc:#x}"
    c.close()
    # Guesses over the limit count toward a ceiling (twice the limit), past
    # which the remembered credential is refused too: the cache is no oracle.
    for i in range(3, 5):
        c, a = raw_connect(b, 5, user="alice", password=f"guess{i}", source=nat)
        assert a.rc == 0x9F, hex(a.rc)
        c.close()
    c, a = raw_connect(b, 5, user="alice", password="secret1", source=nat)
    assert a.rc == 0x9F, f"past the ceiling: {a.rc:#x}"
    c.close()


@test
def s01_a_retried_wrong_password_does_not_lock_out_its_address(ctx):
    # A misconfigured device behind a NAT, retrying the same wrong password.
    b = ctx.broker(f"--password-file={users(ctx)}", "--auth-failures-per-minute=3")
    nat = "127.0.0.8"
    t = time.monotonic()
    for _ in range(10):
        c, a = raw_connect(b, 4, user="alice", password="old password", source=nat)
        assert a.rc == 0x04, hex(a.rc)
        c.close()
    c, a = raw_connect(b, 5, user="bob", password="pässwörd ✓", source=nat)
    assert a.rc == 0, f"its neighbour is not locked out: {a.rc:#x}"
    c.close()
    tap.comment(f"10 retries of one wrong password: {time.monotonic() - t:.3f}s")


@test
def s01_a_queued_check_outlives_the_connect_timeout(ctx):
    path = os.path.join(ctx.dir, "slow")
    ctx.passwd("-c", "-b", "-I", "1500000", path, "slow", "pw")  # about a second
    b = ctx.broker(f"--password-file={path}", "--connect-timeout-ms=200")
    t = time.monotonic()
    c, a = raw_connect(b, 5, user="slow", password="pw")
    took = time.monotonic() - t
    assert a.rc == 0 and took > 0.3, (hex(a.rc), took)
    c.close()


def brute_force(b, sources, user, tag="", password=True):
    """One wrong-password CONNECT from each address, all sent at once, for
    user (a name, or None: another name per address); the clients, their
    answers still to read. password=False: a user name without a password
    (refused without a hash, but a failure all the same)."""
    clients = []
    for i, src in enumerate(sources):
        c = raw_client(b, 5, src)
        c.send(connect(5, f"bf{next(_ids)}", True, 60, user=user or f"user{i}",
                       password=f"guess{tag}{i}" if password else None))
        clients.append(c)
    return clients


def unanswered(clients):
    """How many of the clients have nothing to read yet."""
    import select
    ready = set()
    for i in range(0, len(clients), 100):
        part = [c.sock for c in clients[i:i + 100] if not c.buf]
        ready |= set(select.select(part, [], [], 0)[0])
    return sum(1 for c in clients if not c.buf and c.sock not in ready)


def answers(clients):
    got = {}
    for c in clients:
        rc = c.expect(CONNACK, timeout=30).rc
        got[rc] = got.get(rc, 0) + 1
        c.close()
    return got


def legit_login(b, attackers):
    """bob logs in from an address of his own while the attackers wait;
    (seconds to his CONNACK, attackers unanswered when he sent his CONNECT,
    and when his CONNACK came)."""
    time.sleep(0.2)
    before = unanswered(attackers)
    t = time.monotonic()
    bob, a = raw_connect(b, 5, user="bob", password="pässwörd ✓", source="127.0.2.1",
                         timeout=10)
    took = time.monotonic() - t
    waiting = unanswered(attackers)
    assert a.rc == 0, hex(a.rc)
    bob.send(pkt(0xC0, b""))
    bob.expect(PINGRESP)
    bob.close()
    return took, before, waiting


@test
def s01_a_brute_force_from_many_addresses_does_not_lock_out_others(ctx):
    # 200 addresses guessing alice's password, each under the per-address
    # limit; bob, from an address of his own, logs in 0.2 s later. First
    # come first served, bob's check waited behind all 200 (about 5 s of
    # hashing here) and the connect timeout closed him; now alice's guesses
    # share one lane of the check queue and bob is checked next.
    path = users(ctx, iterations=50000)  # ~50 ms a check
    b = ctx.broker(f"--password-file={path}", "--connect-timeout-ms=3000")
    t0 = time.monotonic()
    attackers = brute_force(b, [f"127.0.1.{i}" for i in range(1, 201)], "alice")
    took, before, waiting = legit_login(b, attackers)
    got = answers(attackers)
    assert waiting > 0, (f"bob was answered after the attack, not during it: CONNACK after "
                         f"{took:.3f}s, {before} guesses waiting when he sent CONNECT, {got}")
    assert set(got) <= {0x86, 0x89} and got.get(0x86, 0) >= 32, got
    tap.comment(f"bob: CONNACK 0 after {took * 1000:.0f} ms, {waiting} guesses still "
                f"waiting; the 200 guesses: {got.get(0x86, 0)} checked (0x86), "
                f"{got.get(0x89, 0)} server busy (0x89), all answered after "
                f"{time.monotonic() - t0:.1f}s")


@test
def s01_a_guessers_second_round_waits_behind_new_clients(ctx):
    # 150 addresses each guess another user name (a spray: one lane per
    # name, nothing to tell them from new clients); once each has failed,
    # its next guess waits behind every client that has not failed.
    path = users(ctx, iterations=20000)  # 150 of them in well under 20 s, ASan too
    b = ctx.broker(f"--password-file={path}", "--connect-timeout-ms=5000")
    sources = [f"127.0.1.{i}" for i in range(1, 151)]
    first = answers(brute_force(b, sources, None, "a", password=False))
    assert first == {0x86: 150}, first
    t0 = time.monotonic()
    attackers = brute_force(b, sources, None, "b")
    took, before, waiting = legit_login(b, attackers)
    got = answers(attackers)
    assert got == {0x86: 150}, got
    # Checked after bob was queued: at most the two in progress and what
    # the other thread finishes during bob's own check. Lanes alone put
    # bob behind about half of those still waiting.
    overtook = before - waiting
    assert overtook <= 8, f"{overtook} second-round guesses were checked before bob"
    tap.comment(f"bob: CONNACK 0 after {took * 1000:.0f} ms; {before} second guesses were "
                f"waiting when he connected, {overtook} of them answered before him; all "
                f"answered after {time.monotonic() - t0:.1f}s")


@test
def s01_sighup_reloads_passwords(ctx):
    path = users(ctx)
    b = ctx.broker(f"--password-file={path}")
    alice, a = raw_connect(b, 5, user="alice", password="secret1")
    assert a.rc == 0
    c, a = raw_connect(b, 5, user="carol", password="c4rol")
    assert a.rc == 0x86
    c.close()
    ctx.passwd("-b", "-I", "1000", path, "carol", "c4rol")
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, b"password file and ACL read again")
    c, a = raw_connect(b, 5, user="carol", password="c4rol")
    assert a.rc == 0, hex(a.rc)
    c.close()
    with open(path, "a") as f:
        f.write("broken line without a colon\n")
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, b"keeping the running configuration")
    c, a = raw_connect(b, 5, user="carol", password="c4rol")
    assert a.rc == 0, "the old passwords stay after a bad reload"
    c.close()
    alice.send(pkt(0xC0, b""))
    alice.expect(PINGRESP)  # nobody was disconnected
    alice.close()


def wait_log(b, needle, timeout=10, count=1):
    deadline = time.monotonic() + timeout
    while b.text().count(needle) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not in the log:\n" + b.text().decode()[-1500:])
        time.sleep(0.05)


@test
def s01_passwd_subcommand(ctx):
    path = os.path.join(ctx.dir, "pw")
    ctx.passwd("-c", "-b", "-I", "1000", path, "u1", "p1")
    ctx.passwd("-b", "-I", "1000", path, "u2", "p2")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    lines = open(path).read().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["u1", "u2"], lines
    assert lines[0].startswith("u1:$7$1000$"), lines[0]
    ctx.passwd("-D", path, "u1")
    assert [ln.split(":")[0] for ln in open(path).read().splitlines()] == ["u2"]
    r = ctx.passwd("-b", path, "bad:name", "x", check=False)
    assert r.returncode == 1 and r.stderr.startswith("starling passwd: "), r.stderr
    # Without -b the password comes from standard input when it is not a tty.
    r = subprocess.run([ctx.binary, "passwd", "-I", "1000", path, "u3"], input="p3\n",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    b = ctx.broker(f"--password-file={path}")
    c, a = raw_connect(b, 4, user="u3", password="p3")
    assert a.rc == 0, hex(a.rc)
    c.close()


@test
def s01_passwd_names_a_missing_directory_and_refuses_few_iterations(ctx):
    path = os.path.join(ctx.dir, "no-such-dir", "passwords")
    r = ctx.passwd("-c", "-b", path, "u1", "p1", check=False)
    assert r.returncode == 1, r
    assert r.stderr == f"starling passwd: {path}: the directory " \
        f"{os.path.dirname(path)} does not exist\n", r.stderr  # not "pw.Xy12ab: ..."
    path = os.path.join(ctx.dir, "pw")
    for n in ("1", "101", "999"):
        r = ctx.passwd("-c", "-b", "-I", n, path, "u1", "p1", check=False)
        assert r.returncode == 1 and "too few iterations, at least 1000" in r.stderr, r.stderr
        assert not os.path.exists(path)
    r = ctx.passwd("-c", "-b", "-I", "1000", path, "u1", "p1")
    assert "warning: -I 1000 is weak" in r.stderr, r.stderr
    r = ctx.passwd("-b", "-I", "10000", path, "u2", "p2")
    assert r.stderr == "", r.stderr


# ---- limits against abuse -------------------------------------------------------

@test
def s03_anonymous_per_listener_kind(ctx):
    from ws_test import WsClient, frame
    b = ctx.broker(f"--password-file={users(ctx)}", "--allow-anonymous=true",
                   "--ws-listen=127.0.0.1:0", "--ws-allow-anonymous=false")
    import re
    ws_port = int(re.search(rb"over WebSocket on \S*:(\d+)", b.text()).group(1))
    c, a = raw_connect(b, 5)
    assert a.rc == 0, "anonymous on the TCP listener (allow_anonymous=true)"
    c.close()
    for user, pw, want in ((None, None, 0x87), ("alice", "secret1", 0x00)):
        w = WsClient(ws_port)
        assert w.accepted, w.head
        w.send(frame(2, connect(5, f"wsanon{next(_ids)}", True, 60, user=user, password=pw)))
        got = w.mqtt()
        assert got.type == CONNACK and got.rc == want, (user, got)
        w.sock.close()


@test
def s03_listener_max_connections(ctx):
    b = ctx.broker("--listener-max-connections=2")
    held = [raw_connect(b, 5)[0] for _ in range(2)]
    extra = Client(b.port, 5)
    extra.send(connect(5, "third", True, 60))
    extra.closed()  # closed at accept, no CONNACK
    held[0].send(disconnect(5))
    held[0].closed()
    time.sleep(0.1)
    c, a = raw_connect(b, 5)
    assert a.rc == 0, "a slot freed by a close is usable again"
    for x in (c, held[1], extra):
        x.close()
    assert b"holds its maximum of 2" in b.text()


@test
def s03_connect_rate_per_address(ctx):
    b = ctx.broker("--connect-rate-per-address=5")
    time.sleep(1.0 - time.time() % 1.0 + 0.05)  # at the start of a second
    ok = refused = 0
    for _ in range(12):
        c = Client(b.port, 5)
        c.send(connect(5, f"rate{next(_ids)}", True, 60))
        try:
            c.expect(CONNACK, timeout=2)
            ok += 1
        except (ConnectionError, OSError, TimeoutError):
            refused += 1
        c.close()
    assert ok <= 10 and refused >= 2, (ok, refused)  # 5 a second, at most two seconds
    c, a = raw_connect(b, 5, source="127.0.0.2")
    assert a.rc == 0, "another address has its own budget"
    c.close()
    assert b"connect_rate_per_address 5/s" in b.text()


# ---- authorization (ACLs) -------------------------------------------------------

ACL = """# test ACL: comments are whole lines
topic read public/#
user alice
topic readwrite home/alice/#
topic deny home/alice/secret/#
topic read public/#
topic deny public/secret/#
user bob
topic write public/#
topic write home/alice/inbox
pattern readwrite devices/%c/#
"""


def acl_broker(ctx):
    return ctx.broker(f"--password-file={users(ctx)}", "--allow-anonymous=true",
                      f"--acl-file={ctx.file('acl', ACL)}")


def login(b, v, user, pw, cid=None, **kw):
    c, a = raw_connect(b, v, cid=cid, user=user, password=pw, **kw)
    assert a.rc == 0, (user, hex(a.rc))
    return c


@test
def s02_acl_subscribe_and_publish_codes(ctx):
    b = acl_broker(ctx)
    for v, denied in ((5, 0x87), (4, 0x80)):
        alice = login(b, v, "alice", "secret1")
        alice.send(subscribe(v, 1, [("home/alice/#", 1), ("other/#", 1), ("public/+", 0),
                                    ("$share/g/home/alice/x", 0), ("#", 0)]))
        assert alice.expect(SUBACK).rcs == [1, denied, 0, 0, denied], alice
        alice.close()
    bob = login(b, 5, "bob", "pässwörd ✓")
    bob.send(publish(5, "public/news", b"n", qos=1, pid=1))
    assert bob.expect(PUBACK).rc == 0
    bob.send(publish(5, "home/alice/lights", b"on", qos=1, pid=2))
    assert bob.expect(PUBACK).rc == 0x87
    bob.send(publish(5, "home/alice/lights", b"on", qos=2, pid=3))
    assert bob.expect(PUBREC).rc == 0x87
    bob.close()
    bob4 = login(b, 4, "bob", "pässwörd ✓")
    bob4.send(publish(4, "home/alice/lights", b"on", qos=1, pid=4))
    assert bob4.expect(PUBACK).pid == 4  # 3.1.1 has no code: acknowledged, dropped
    bob4.close()


@test
def s02_acl_decides_every_delivery(ctx):
    b = acl_broker(ctx)
    bob = login(b, 5, "bob", "pässwörd ✓")
    # Retained first: one allowed, one denied for alice.
    for t in ("public/ok/r", "public/secret/r"):
        bob.send(publish(5, t, t.encode(), qos=1, pid=next(_ids) % 60000 + 1, retain=True))
        assert bob.expect(PUBACK).rc == 0
    alice = login(b, 5, "alice", "secret1")
    alice.send(subscribe(5, 1, [("public/#", 1), ("home/alice/#", 1)]))
    assert alice.expect(SUBACK).rcs == [1, 1]
    got = alice.expect(PUBLISH)
    assert got.topic == b"public/ok/r" and got.retain, got
    alice.nothing(0.5)  # not public/secret/r
    for t, seen in (("public/secret/x", False), ("public/ok/x", True), ("home/alice/inbox", True)):
        bob.send(publish(5, t, b"m", qos=1, pid=next(_ids) % 60000 + 1))
        assert bob.expect(PUBACK).rc == 0
        if seen:
            assert alice.expect(PUBLISH).topic == t.encode()
        else:
            alice.nothing(0.5)
    # A will on a topic its owner may not publish to refuses the CONNECT.
    c, a = raw_connect(b, 5, user="bob", password="pässwörd ✓",
                       will={"topic": "home/alice/x", "payload": b"w"})
    assert a.rc == 0x87, hex(a.rc)
    c.close()
    # A will bob may publish, on a topic alice may not read: not delivered.
    w, a = raw_connect(b, 5, user="bob", password="pässwörd ✓",
                       will={"topic": "public/secret/will", "payload": b"w"})
    assert a.rc == 0
    w.close()  # abnormal close: the will goes out
    alice.nothing(0.7)
    w, a = raw_connect(b, 5, user="bob", password="pässwörd ✓",
                       will={"topic": "public/ok/will", "payload": b"w"})
    w.close()
    assert alice.expect(PUBLISH).topic == b"public/ok/will"
    alice.close()
    bob.close()


@test
def s02_acl_patterns_and_anonymous(ctx):
    b = acl_broker(ctx)
    dev = login(b, 5, "alice", "secret1", cid="dev1")
    dev.send(publish(5, "devices/dev1/t", b"x", qos=1, pid=1))
    assert dev.expect(PUBACK).rc == 0
    dev.send(publish(5, "devices/dev2/t", b"x", qos=1, pid=2))
    assert dev.expect(PUBACK).rc == 0x87
    dev.close()
    anon, a = raw_connect(b, 5)
    assert a.rc == 0
    anon.send(subscribe(5, 1, [("public/#", 0), ("home/#", 0)]))
    assert anon.expect(SUBACK).rcs == [0, 0x87]
    anon.send(publish(5, "public/x", b"x", qos=1, pid=3))
    assert anon.expect(PUBACK).rc == 0x87  # read only
    anon.close()


@test
def s02_acl_reload_rechecks_subscriptions(ctx):
    b = acl_broker(ctx)
    alice = login(b, 5, "alice", "secret1")
    alice.send(subscribe(5, 1, [("public/#", 1), ("home/alice/#", 1)]))
    assert alice.expect(SUBACK).rcs == [1, 1]
    bob = login(b, 5, "bob", "pässwörd ✓")
    with open(os.path.join(ctx.dir, "acl"), "w") as f:
        f.write(ACL.replace("user alice\n", "user alice\n").replace(
            "topic deny public/secret/#\ntopic read public/#\n", "").replace(
            "topic read public/#\ntopic deny public/secret/#\n", ""))
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, b"the new ACL removed", count=1)
    bob.send(publish(5, "public/ok/after", b"m", qos=1, pid=1))
    assert bob.expect(PUBACK).rc == 0
    alice.nothing(0.7)  # public/# is gone for alice
    bob.send(publish(5, "home/alice/inbox", b"m", qos=1, pid=2))
    assert bob.expect(PUBACK).rc == 0
    assert alice.expect(PUBLISH).topic == b"home/alice/inbox"
    # A broken ACL keeps the one in force.
    with open(os.path.join(ctx.dir, "acl"), "w") as f:
        f.write("topic sideways x\n")
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, b"keeping the running configuration")
    bob.send(publish(5, "home/alice/inbox", b"m2", qos=1, pid=3))
    assert bob.expect(PUBACK).rc == 0
    assert alice.expect(PUBLISH).payload == b"m2"
    alice.close()
    bob.close()


@test
def s02_startup_refuses_bad_files(ctx):
    for flag, text, want in (("--acl-file", "topic read a/#/b\n", ":1: "),
                             ("--password-file", "alice\n", ":1: ")):
        path = ctx.file("bad", text)
        r = subprocess.run([ctx.binary, "--listen=127.0.0.1:0", "--metrics=false",
                            f"{flag}={path}"], capture_output=True, text=True, timeout=10)
        assert r.returncode != 0, r.stderr
        errors = [ln for ln in r.stderr.splitlines() if " ERROR " in ln]
        assert len(errors) == 1 and path + want in errors[0], r.stderr


@test
def s02_acl_denials_are_logged(ctx):
    b = acl_broker(ctx)
    # 3.1.1 has no code for a refused publish: the log is all there is.
    bob = login(b, 4, "bob", "pässwörd ✓", cid="bob-4")
    bob.send(publish(4, "home/alice/lights", b"on"))
    wait_log(b, b'denied PUBLISH from 127.0.0.1:')
    assert b'(client "bob-4", user "bob") to "home/alice/lights": not authorized' in b.text()
    alice = login(b, 5, "alice", "secret1", cid="alice-5")
    alice.send(subscribe(5, 1, [("other/#", 0)]))
    assert alice.expect(SUBACK).rcs == [0x87]
    wait_log(b, b'(client "alice-5", user "alice") to "other/#": not authorized')
    assert b"denied SUBSCRIBE from 127.0.0.1:" in b.text()
    anon, a = raw_connect(b, 5, cid="anon-5")
    anon.send(publish(5, "public/x", b"x", qos=1, pid=1))
    assert anon.expect(PUBACK).rc == 0x87
    wait_log(b, b'(client "anon-5", anonymous) to "public/x": not authorized')
    c, a = raw_connect(b, 5, cid="bob-will", user="bob", password="pässwörd ✓",
                       will={"topic": "home/alice/x", "payload": b"w"})
    assert a.rc == 0x87
    wait_log(b, b'(client "bob-will", user "bob"): will topic "home/alice/x" not authorized')
    # A flood is rate limited, and the summary says which line it cut.
    time.sleep(1.0 - time.monotonic() % 1.0)
    for i in range(120):
        bob.send(publish(4, f"home/alice/flood{i}", b"x"))
    bob.send(pkt(0xC0, b""))
    bob.expect(PINGRESP)
    time.sleep(1.1)
    bob.send(publish(4, "home/alice/after", b"x"))
    wait_log(b, b'to "home/alice/after"')
    assert b'similar lines suppressed: "denied PUBLISH from %s (client' in b.text(), \
        b.text()[-3000:].decode(errors="replace")
    for x in (bob, alice, anon, c):
        x.close()


@test
def s02_user_rules_need_authenticated_user_names(ctx):
    # Without a password file nothing checks a claimed user name: an ACL
    # with rules for user names would give them to anyone.
    base = [ctx.binary, "--listen=127.0.0.1:0", "--metrics=false"]
    for text, line in (("topic read public/#\nuser alice\ntopic readwrite home/#\n", 2),
                       ("topic read public/#\n\npattern read users/%u/#\n", 3)):
        path = ctx.file("acl", text)
        r = subprocess.run(base + [f"--acl-file={path}"], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode != 0, r.stderr
        errors = [ln for ln in r.stderr.splitlines() if " ERROR " in ln]
        assert len(errors) == 1 and f"{path}:{line}: " in errors[0] and \
            "nothing authenticates" in errors[0], r.stderr
    # Rules for client ids and anonymous clients need no passwords.
    path = ctx.file("acl", "topic read public/#\nclient c1\ntopic write x\n")
    b = ctx.broker(f"--acl-file={path}")
    c, a = raw_connect(b, 5, cid="c1", user="anyone")
    assert a.rc == 0
    c.send(publish(5, "x", b"1", qos=1, pid=1))
    assert c.expect(PUBACK).rc == 0
    c.close()
    # A reload that would add user rules is refused like a broken file.
    ctx.file("acl", "user alice\ntopic readwrite #\n")
    b.proc.send_signal(signal.SIGHUP)
    wait_log(b, b"keeping the running configuration")
    assert b"nothing authenticates" in b.text()


# ---- runner -----------------------------------------------------------------

def main():
    a = tap.parse_args()
    print("TAP version 13")
    todo = [(t.__name__, t) for t in TESTS if a.only in t.__name__]
    tap.finish(*tap.run(todo, lambda: Ctx(a.binary, a.workers)))


if __name__ == "__main__":
    main()
