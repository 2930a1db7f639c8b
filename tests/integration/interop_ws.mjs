// Interop over WebSocket: Starling's ws listener against MQTT.js in Node and
// MQTT.js inside headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core; both pinned in package.json, installed by
// deploy/setup.sh --test), each exchanging messages with a client on the
// plain TCP listener. Also raw-socket checks of the upgrade's refusals.
// Prints TAP; every wait has a timeout; broker, browser and page server are
// stopped even on failure.
//
// Usage: node interop_ws.mjs PATH/TO/starling [--workers N]
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect as netConnect } from 'node:net';
import { dirname, join } from 'node:path';

import { Broker, TestFailure, check, comment, parseArgs, sleep, waitFor as waitUntil, within } from './harness.mjs';

const require = createRequire(import.meta.url);
let mqtt, chromium;
try {
  mqtt = require('mqtt');
  ({ chromium } = require('playwright-core'));
} catch (e) {
  console.log('TAP version 13\n1..1\nnot ok 1 - MQTT.js and playwright-core are installed\n# ' +
    'run deploy/setup.sh --test (npm ci in tests/integration): ' + e.message);
  process.exit(1);
}

const { binary: STARLING, workers: WORKERS } = parseArgs();
const WAIT_MS = 15000;
const RUN = randomBytes(4).toString('hex');
const topic = (name) => `interopws/${RUN}/${name}`;
const waitFor = (pred, what, ms = WAIT_MS) => waitUntil(pred, what, ms, 20);

// ------------------------------------------------------------------ broker
const broker = new Broker(STARLING, WORKERS, ['--listen=127.0.0.1:0', '--ws-listen=127.0.0.1:0'], {
  tcp: /listening for MQTT on 127\.0\.0\.1:(\d+)/,
  ws: /listening for MQTT over WebSocket on 127\.0\.0\.1:(\d+)/,
});
let tcpPort = 0;
let wsPort = 0;

// ----------------------------------------------------------------- clients
const clients = [];

async function client(url, name, version) {
  const c = mqtt.connect(url, {
    protocolVersion: version, clientId: `ws-${RUN}-${name}`, reconnectPeriod: 0,
    connectTimeout: WAIT_MS, keepalive: 30,
  });
  clients.push(c);
  c.msgs = [];
  c.on('message', (t, payload, packet) => c.msgs.push({ topic: t, payload: payload.toString(), packet }));
  c.on('error', () => {});
  await within(new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
    c.once('close', () => reject(new TestFailure(`${name}: closed before CONNACK`)));
  }), WAIT_MS, `${name}: CONNACK`);
  return c;
}

// Bytes of a raw HTTP exchange on the ws port (the answer, whole).
function rawHttp(request) {
  return within(new Promise((resolve, reject) => {
    const s = netConnect(wsPort, '127.0.0.1');
    let data = '';
    s.on('connect', () => s.write(request));
    s.on('data', (d) => { data += d.toString('latin1'); });
    s.on('close', () => resolve(data));
    s.on('error', reject);
  }), WAIT_MS, 'the HTTP answer');
}

// ------------------------------------------------------------------- tests
const TESTS = [];
const test = (name, fn) => TESTS.push([name, fn]);

for (const v of [4, 5]) {
  for (const qos of [0, 1, 2]) {
    test(`MQTT.js v${v} over ws <-> MQTT.js over tcp, QoS ${qos}, 100 each way, in order`, async () => {
      const w = await client(`ws://127.0.0.1:${wsPort}/mqtt`, `w-v${v}-q${qos}`, v);
      const t = await client(`mqtt://127.0.0.1:${tcpPort}`, `t-v${v}-q${qos}`, v);
      const tw = topic(`v${v}/q${qos}/to-ws`), tt = topic(`v${v}/q${qos}/to-tcp`);
      await within(w.subscribeAsync(tw, { qos }), WAIT_MS, 'ws SUBACK');
      await within(t.subscribeAsync(tt, { qos }), WAIT_MS, 'tcp SUBACK');
      const acks = [];
      for (let i = 0; i < 100; i++) {
        acks.push(t.publishAsync(tw, `t${i}`, { qos }));
        acks.push(w.publishAsync(tt, `w${i}`, { qos }));
      }
      await within(Promise.all(acks), WAIT_MS, 'acks');
      await waitFor(() => w.msgs.length >= 100 && t.msgs.length >= 100,
        `100 each (ws ${w.msgs.length}, tcp ${t.msgs.length})`);
      await sleep(300);
      const want = (p) => Array.from({ length: 100 }, (_, i) => `${p}${i}`);
      check(JSON.stringify(w.msgs.map((m) => m.payload)) === JSON.stringify(want('t')), 'ws side: wrong messages');
      check(JSON.stringify(t.msgs.map((m) => m.payload)) === JSON.stringify(want('w')), 'tcp side: wrong messages');
      w.end(); t.end();
    });
  }
}

test('a 300 KB message crosses ws both ways (many frames, packets spanning them)', async () => {
  const w = await client(`ws://127.0.0.1:${wsPort}/mqtt`, 'big-w', 5);
  const t = await client(`mqtt://127.0.0.1:${tcpPort}`, 'big-t', 5);
  const big = randomBytes(150 * 1024).toString('hex');
  await within(w.subscribeAsync(topic('big/to-ws'), { qos: 1 }), WAIT_MS, 'SUBACK');
  await within(t.subscribeAsync(topic('big/to-tcp'), { qos: 1 }), WAIT_MS, 'SUBACK');
  await within(t.publishAsync(topic('big/to-ws'), big, { qos: 1 }), WAIT_MS, 'PUBACK');
  await within(w.publishAsync(topic('big/to-tcp'), big, { qos: 1 }), WAIT_MS, 'PUBACK');
  await waitFor(() => w.msgs.length === 1 && t.msgs.length === 1, 'the big messages');
  check(w.msgs[0].payload === big && t.msgs[0].payload === big, 'big payload changed on the way');
  w.end(); t.end();
});

test('upgrade refusals: wrong path 404, no mqtt subprotocol 400, plain HTTP 400', async () => {
  const key = randomBytes(16).toString('base64');
  const up = (path, proto) => `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
    (proto ? `Sec-WebSocket-Protocol: ${proto}\r\n` : '') + '\r\n';
  const a = await rawHttp(up('/nope', 'mqtt'));
  check(a.startsWith('HTTP/1.1 404'), `wrong path: ${a.slice(0, 40)}`);
  const b = await rawHttp(up('/mqtt', 'chat'));
  check(b.startsWith('HTTP/1.1 400') && b.includes('no mqtt subprotocol'), `no mqtt: ${b.slice(0, 80)}`);
  const c = await rawHttp('GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n');
  check(c.startsWith('HTTP/1.1 400'), `plain GET: ${c.slice(0, 40)}`);
  const d = await rawHttp(up('/mqtt', 'mqtt').replace('\r\n\r\n', '\r\n\r\n') + 'junk');
  check(d.startsWith('HTTP/1.1 101') && d.includes('Sec-WebSocket-Protocol: mqtt'), `good upgrade: ${d.slice(0, 60)}`);
});

// ---------------------------------------------------------------- browser
let pageServer = null;
let pagePort = 0;
let browser = null;

function startPageServer() {
  // The browser bundle MQTT.js ships (its exports map hides the path).
  const bundle = readFileSync(join(dirname(require.resolve('mqtt/package.json')), 'dist', 'mqtt.min.js'));
  const html = `<!doctype html><meta charset="utf-8"><title>starling ws</title>
<script src="/mqtt.min.js"></script>
<script>
window.results = { connected: false, got: [], errors: [] };
window.start = (url, sub, pub, n) => {
  const c = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, clientId: 'browser-' + Math.random().toString(16).slice(2) });
  window.c = c;
  c.on('error', (e) => window.results.errors.push(String(e)));
  c.on('message', (t, p) => window.results.got.push(p.toString()));
  c.on('connect', () => {
    c.subscribe(sub, { qos: 1 }, () => {
      window.results.connected = true;
      for (let i = 0; i < n; i++) c.publish(pub, 'browser' + i, { qos: 1 });
    });
  });
};
</script>`;
  pageServer = createServer((req, res) => {
    if (req.url === '/mqtt.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(bundle);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(html);
    }
  });
  return new Promise((resolve) => pageServer.listen(0, '127.0.0.1', () => { pagePort = pageServer.address().port; resolve(); }));
}

test('MQTT.js in headless Chromium over ws <-> MQTT.js over tcp, QoS 1, 50 each way', async () => {
  await startPageServer();
  browser = await within(chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    // playwright gives every launch a fresh, empty profile of its own.
  }), 60000, 'Chromium to start');
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${pagePort}/`);
  const t = await client(`mqtt://127.0.0.1:${tcpPort}`, 'tcp-for-browser', 5);
  const toBrowser = topic('browser/in'), fromBrowser = topic('browser/out');
  await within(t.subscribeAsync(fromBrowser, { qos: 1 }), WAIT_MS, 'SUBACK');
  await page.evaluate(([u, s, p]) => window.start(u, s, p, 50),
    [`ws://127.0.0.1:${wsPort}/mqtt`, toBrowser, fromBrowser]);
  await waitFor(async () => (await page.evaluate(() => window.results.connected)) ||
    (await page.evaluate(() => window.results.errors.length)) > 0, 'the browser to connect and subscribe');
  const errs = await page.evaluate(() => window.results.errors);
  check(errs.length === 0, `browser errors: ${errs}`);
  for (let i = 0; i < 50; i++) await within(t.publishAsync(toBrowser, `tcp${i}`, { qos: 1 }), WAIT_MS, 'PUBACK');
  await waitFor(async () => (await page.evaluate(() => window.results.got.length)) >= 50 && t.msgs.length >= 50,
    'messages both ways');
  const got = await page.evaluate(() => window.results.got);
  check(JSON.stringify(got) === JSON.stringify(Array.from({ length: 50 }, (_, i) => `tcp${i}`)), 'browser got wrong messages');
  check(JSON.stringify(t.msgs.map((m) => m.payload)) === JSON.stringify(Array.from({ length: 50 }, (_, i) => `browser${i}`)),
    'tcp client got wrong messages from the browser');
  t.end();
});

// ------------------------------------------------------------------ runner
async function main() {
  console.log('TAP version 13');
  let n = 0, failed = 0;
  try {
    ({ tcp: tcpPort, ws: wsPort } = await broker.start());
  } catch (e) {
    console.log(`1..1\nnot ok 1 - broker starts\n${comment(e.message)}`);
    process.exit(1);
  }
  for (const [name, fn] of TESTS) {
    n++;
    try {
      await within(fn(), 90000, name);
      console.log(`ok ${n} - ${name}`);
    } catch (e) {
      failed++;
      console.log(`not ok ${n} - ${name}\n${comment(String(e.stack || e).split('\n').slice(0, 4).join('\n'))}`);
      if (!broker.alive()) console.log(`# broker died:\n${comment(broker.log.slice(-1500))}`);
    }
  }
  for (const c of clients) c.end(true);
  if (browser) await browser.close().catch(() => {});
  if (pageServer) pageServer.close();
  n++;
  if (!await broker.cleanShutdown(n, 'clean shutdown')) failed++;
  console.log(`1..${n}`);
  process.exit(failed ? 1 : 0);
}

main();
