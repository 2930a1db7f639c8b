// Interop tests: Starling against MQTT.js (npm, version pinned in
// package.json next to this file; deploy/setup.sh --test installs it).
//
// Starts the broker on an ephemeral loopback port, runs MQTT.js over TCP with
// protocolVersion 4 (3.1.1) and 5, prints TAP. Every wait has a timeout, each
// test a watchdog, and the broker and every client are stopped even on failure.
//
// Usage: node interop_mqttjs.mjs PATH/TO/starling [--workers N]
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';

import { Broker, TestFailure, check, comment, parseArgs, sleep, waitFor as waitUntil, within } from './harness.mjs';

const require = createRequire(import.meta.url);
let mqtt;
try {
  mqtt = require('mqtt');
} catch (e) {
  console.log('TAP version 13\n1..1\nnot ok 1 - MQTT.js is installed\n# ' +
    'run deploy/setup.sh --test (npm install in tests/integration): ' + e.message);
  process.exit(1);
}

const { binary: STARLING, workers: WORKERS } = parseArgs();
const TEST_TIMEOUT_MS = 40000;
const WAIT_MS = 10000;
const RUN = randomBytes(4).toString('hex');
const topic = (name) => `interopjs/${RUN}/${name}`;
const cid = (name) => `interopjs-${RUN}-${name}`;

// ------------------------------------------------------------------ broker
const broker = new Broker(STARLING, WORKERS, ['--listen=127.0.0.1:0'],
  { tcp: /listening for MQTT on 127\.0\.0\.1:(\d+)/ });
let port = 0;

async function startBroker() {
  ({ tcp: port } = await broker.start());
}

// ----------------------------------------------------------------- clients
let clients = [];

// A connected MQTT.js client that records messages and disconnects.
async function client(name, version, opts = {}) {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    protocolVersion: version,
    clientId: opts.clientId ?? cid(`${name}-v${version}`),
    clean: opts.clean ?? true,
    reconnectPeriod: 0,           // a lost connection is a result, not retried
    connectTimeout: WAIT_MS,
    keepalive: 30,
    properties: opts.properties,
  });
  clients.push(c);
  c.msgs = [];
  c.disconnectPackets = [];
  c.closed = false;
  c.on('message', (t, payload, packet) => c.msgs.push({ topic: t, payload: payload.toString(), packet }));
  c.on('disconnect', (packet) => c.disconnectPackets.push(packet));
  c.on('close', () => { c.closed = true; });
  c.on('error', () => {});
  c.name = name;
  const connack = await within(new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
    c.once('close', () => reject(new TestFailure(`${name}: connection closed before CONNACK`)));
  }), WAIT_MS, `${name}: CONNACK`);
  c.connack = connack;
  return c;
}

const waitFor = (pred, what, ms = WAIT_MS) => waitUntil(pred, what, ms);

async function sub(c, filter, opts) {
  const granted = await within(c.subscribeAsync(filter, opts), WAIT_MS, `SUBACK for ${filter}`);
  return granted.map((g) => g.qos);
}

const pub = (c, t, payload, opts) => within(c.publishAsync(t, payload, opts), WAIT_MS, `ack of publish to ${t}`);

// ------------------------------------------------------------------- tests
const TESTS = [];
const test = (name, fn) => TESTS.push([name, fn]);

async function pubsub(version, qos, n) {
  const a = await client(`a-q${qos}`, version);
  const b = await client(`b-q${qos}`, version);
  const ta = topic(`v${version}/q${qos}/to-a`);
  const tb = topic(`v${version}/q${qos}/to-b`);
  check(isDeepStrictEqual(await sub(a, ta, { qos }), [qos]), `a: QoS ${qos} not granted`);
  check(isDeepStrictEqual(await sub(b, tb, { qos }), [qos]), `b: QoS ${qos} not granted`);
  const acks = [];
  for (let i = 0; i < n; i++) {
    acks.push(a.publishAsync(tb, `a${i}`, { qos }));
    acks.push(b.publishAsync(ta, `b${i}`, { qos }));
  }
  await within(Promise.all(acks), 20000, `acks of ${2 * n} publishes`);
  await waitFor(() => a.msgs.length >= n && b.msgs.length >= n,
    `${n} messages each (a has ${a.msgs.length}, b has ${b.msgs.length})`, 20000);
  await sleep(500);
  for (const [c, src] of [[a, 'b'], [b, 'a']]) {
    const got = c.msgs.map((m) => m.payload);
    const want = Array.from({ length: n }, (_, i) => `${src}${i}`);
    if (!isDeepStrictEqual(got, want)) {
      const dups = got.length - new Set(got).size;
      throw new TestFailure(`${c.name}: ${got.length} messages (${dups} duplicates), expected ${n} in order; ` +
        `first difference at ${got.findIndex((g, i) => g !== want[i])}`);
    }
    const bad = c.msgs.filter((m) => m.packet.qos !== qos || m.packet.retain);
    check(bad.length === 0, `${c.name}: ${bad.length} deliveries with wrong QoS or retain flag`);
  }
}

for (const v of [4, 5]) {
  for (const q of [0, 1, 2]) {
    test(`MQTT.js v${v}: QoS ${q} both ways, 200 messages each, exactly once, in order`, () => pubsub(v, q, 200));
  }
  test(`MQTT.js v${v}: retained message reaches a later subscriber; empty retained deletes it`, async () => {
    const t = topic(`v${v}/retained`);
    const p = await client('pub', v);
    await pub(p, t, 'kept', { qos: 1, retain: true });
    try {
      const s = await client('late', v);
      await sub(s, topic(`v${v}/+`), { qos: 1 });
      await waitFor(() => s.msgs.length >= 1, 'the retained message');
      await sleep(300);
      check(s.msgs.length === 1, `late subscriber got ${s.msgs.length} messages, expected 1`);
      const m = s.msgs[0];
      check(m.topic === t && m.payload === 'kept' && m.packet.retain === true && m.packet.qos === 1,
        `got ${m.topic} ${m.payload} retain=${m.packet.retain} qos=${m.packet.qos}`);
    } finally {
      await pub(p, t, '', { qos: 1, retain: true });
    }
    const s2 = await client('later', v);
    await sub(s2, t, { qos: 1 });
    await sleep(700);
    check(s2.msgs.length === 0, `after the delete a new subscriber still got ${JSON.stringify(s2.msgs.map((m) => m.payload))}`);
  });
}

test('MQTT.js v5: user properties, content type, correlation data passed through unchanged', async () => {
  const t = topic('v5/props');
  const s = await client('sub', 5);
  await sub(s, t, { qos: 1 });
  const p = await client('pub', 5);
  const userProperties = { zeta: '1', alpha: ['x', 'y', 'x'], 'é': '✓', empty: '' };
  const properties = {
    userProperties,
    contentType: 'text/plain',
    responseTopic: topic('v5/props/reply'),
    correlationData: Buffer.from([0, 1, 2, 255]),
    payloadFormatIndicator: true,
    messageExpiryInterval: 3600,
  };
  for (const qos of [0, 1, 2]) await pub(p, t, `q${qos}`, { qos, properties });
  await waitFor(() => s.msgs.length >= 3, '3 messages');
  await sleep(300);
  check(s.msgs.length === 3, `${s.msgs.length} messages, expected 3`);
  for (const m of s.msgs) {
    const pr = m.packet.properties || {};
    const where = `message ${m.payload}`;
    // Object.entries keeps key order: the order of the user properties on the wire
    check(isDeepStrictEqual(Object.entries(pr.userProperties || {}), Object.entries(userProperties)),
      `${where}: user properties ${JSON.stringify(pr.userProperties)}, sent ${JSON.stringify(userProperties)} [MQTT-3.3.2-17/18]`);
    check(pr.contentType === 'text/plain', `${where}: content type ${pr.contentType}`);
    check(pr.responseTopic === properties.responseTopic, `${where}: response topic ${pr.responseTopic}`);
    check(Buffer.isBuffer(pr.correlationData) && pr.correlationData.equals(properties.correlationData),
      `${where}: correlation data ${pr.correlationData && pr.correlationData.toString('hex')}`);
    check(pr.payloadFormatIndicator === true, `${where}: payload format indicator ${pr.payloadFormatIndicator}`);
    check(typeof pr.messageExpiryInterval === 'number' && pr.messageExpiryInterval > 0 &&
      pr.messageExpiryInterval <= 3600, `${where}: message expiry ${pr.messageExpiryInterval} [MQTT-3.3.2-6]`);
  }
});

test('MQTT.js v5: takeover: same client id connects, the first gets DISCONNECT 0x8E', async () => {
  const id = cid('takeover');
  const a = await client('first', 5, { clientId: id });
  const b = await client('second', 5, { clientId: id });
  await waitFor(() => a.disconnectPackets.length > 0 || a.closed, 'the first client to be disconnected');
  await sleep(100);
  check(a.disconnectPackets.length === 1, `first client closed without a DISCONNECT packet`);
  const rc = a.disconnectPackets[0].reasonCode;
  check(rc === 0x8e, `first client's DISCONNECT reason ${rc}, expected 0x8E Session taken over [MQTT-3.1.4-3]`);
  const t = topic('v5/takeover');
  await sub(b, t, { qos: 1 });
  await pub(b, t, 'still-here', { qos: 1 });
  await waitFor(() => b.msgs.length >= 1, 'the second client to get its message');
  check(!b.closed, 'second client was disconnected');
});

test('MQTT.js v5: outgoing topic aliases (Topic Alias Maximum 2) resolve to the right topics', async () => {
  // The broker aliases the first two topics it sends this client and
  // sends the rest in full (core/session.h); MQTT.js resolves what it
  // gets. Three topics interleaved, QoS 0 and 1: every message must
  // arrive under its own topic, in order, and some must have come aliased.
  const s = await client('alias-sub', 5, { properties: { topicAliasMaximum: 2 } });
  const base = topic('v5/alias/a-rather-long-topic-name-that-aliases-make-cheap');
  await sub(s, `${base}/+`, { qos: 1 });
  const p = await client('alias-pub', 5);
  const want = [];
  for (let i = 0; i < 30; i++) {
    const t = `${base}/${['x', 'y', 'z'][i % 3]}`;
    want.push([t, `m${i}`]);
    await pub(p, t, `m${i}`, { qos: i % 2 });
  }
  await waitFor(() => s.msgs.length >= want.length, `${want.length} messages (have ${s.msgs.length})`);
  await sleep(300);
  const got = s.msgs.map((m) => [m.topic, m.payload]);
  check(isDeepStrictEqual(got, want), `got ${JSON.stringify(got.slice(0, 6))}..., expected ${JSON.stringify(want.slice(0, 6))}...`);
  const aliased = s.msgs.filter((m) => m.packet.topic === '' && m.packet.properties?.topicAlias).length;
  check(aliased === 18, `${aliased} messages came as an empty topic + alias, expected 18 (x and y after their first)`);
  check(!s.closed, 'the subscriber was disconnected');
});

// -------------------------------------------------------------------- main
async function cleanup() {
  const cs = clients;
  clients = [];
  await Promise.all(cs.map((c) => within(new Promise((r) => c.end(true, {}, r)), 3000, 'end').catch(() => {})));
}

async function main() {
  console.log('TAP version 13');
  console.log(`# starling ${STARLING} --workers ${WORKERS}; MQTT.js ${require('mqtt/package.json').version}; run ${RUN}`);
  try {
    await startBroker();
  } catch (e) {
    console.log(`1..1\nnot ok 1 - broker starts\n${comment(e.message)}`);
    return 1;
  }
  let n = 0;
  let failed = 0;
  for (const [baseName, fn] of TESTS) {
    n++;
    const name = `${baseName} [workers=${WORKERS}]`;
    if (!broker.alive()) {
      try { await startBroker(); } catch (e) {
        console.log(`not ok ${n} - ${name}\n# broker could not be restarted`);
        failed++;
        continue;
      }
    }
    let err = null;
    const t0 = Date.now();
    try {
      await within(fn(), TEST_TIMEOUT_MS, `the whole test (watchdog)`);
    } catch (e) {
      err = e instanceof TestFailure ? e.message : (e && e.stack) || String(e);
    }
    await cleanup();
    if (!broker.alive()) {
      err = (err || '') + `\nbroker DIED during this test; its stderr ends:\n${broker.log.split('\n').slice(-25).join('\n')}`;
    }
    if (err === null) {
      console.log(`ok ${n} - ${name}\n# ${((Date.now() - t0) / 1000).toFixed(2)}s`);
    } else {
      failed++;
      console.log(`not ok ${n} - ${name}\n# ${err.trim().replace(/\n/g, '\n# ')}`);
    }
  }
  n++;
  if (!await broker.cleanShutdown(n, `broker exits 0 on SIGTERM with no sanitizer report [workers=${WORKERS}]`)) failed++;
  console.log(`1..${n}`);
  return failed ? 1 : 0;
}

main().then((rc) => { process.exitCode = rc; }, (e) => {
  console.log(`not ok 999 - harness error\n# ${e && e.stack}`);
  process.exitCode = 1;
}).finally(async () => {
  await cleanup().catch(() => {});
  if (broker.alive()) broker.proc.kill('SIGKILL');
  setTimeout(() => process.exit(process.exitCode ?? 1), 200).unref();
});
