// What the Node interop suites share: their command line, failures and
// bounded waits, and the real broker as a child process on ephemeral
// loopback ports with its clean-shutdown check (the Python suites have the
// same in broker.py and tap.py).
import { spawn } from 'node:child_process';

export class TestFailure extends Error {}

export function check(cond, msg) {
  if (!cond) throw new TestFailure(msg);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The promise, or a TestFailure after ms.
export function within(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => { t = setTimeout(() => reject(new TestFailure(`timed out after ${ms} ms waiting for ${what}`)), ms); }),
  ]).finally(() => clearTimeout(t));
}

// Poll pred (sync or async) until it holds, or a TestFailure after ms.
export async function waitFor(pred, what, ms, stepMs = 10) {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new TestFailure(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

// node SUITE.mjs PATH/TO/starling [--workers N]
export function parseArgs(argv = process.argv.slice(2)) {
  const wi = argv.indexOf('--workers');
  return { binary: argv[0], workers: wi >= 0 ? Number(argv[wi + 1]) : 1 };
}

// Text as TAP comment lines.
export const comment = (text) => '# ' + String(text).trim().split('\n').join('\n# ');

const SANITIZER = /ERROR: (Address|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:|assertion failed/;

// The broker with the given arguments; start() resolves once every pattern
// of ready ({name: /...:(\d+)/}) has matched its log, with the ports in
// this.ports by name.
export class Broker {
  constructor(binary, workers, args, ready) {
    this.binary = binary;
    this.args = ['--metrics-listen=127.0.0.1:0', `--workers=${workers}`, ...args];
    this.ready = ready;
    this.proc = null;
    this.log = '';
    this.ports = {};
    process.on('exit', () => { if (this.alive()) this.proc.kill('SIGKILL'); });
  }

  start() {
    return new Promise((resolve, reject) => {
      this.log = '';
      this.ports = {};
      let up = false;
      this.proc = spawn(this.binary, this.args, { stdio: ['ignore', 'ignore', 'pipe'] });
      const timer = setTimeout(() => reject(new Error('starling did not start:\n' + this.log)), 15000);
      this.proc.stderr.on('data', (d) => {
        this.log += d.toString();
        if (up) return;
        const ports = {};
        for (const [name, re] of Object.entries(this.ready)) {
          const m = re.exec(this.log);
          if (!m) return;
          ports[name] = Number(m[1]);
        }
        up = true;
        this.ports = ports;
        clearTimeout(timer);
        resolve(ports);
      });
      this.proc.on('exit', (code, sig) => {
        this.log += `\n[broker exited: code ${code} signal ${sig}]`;
        clearTimeout(timer);
        if (!up) reject(new Error('starling exited at start:\n' + this.log));
      });
    });
  }

  alive() {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  // SIGTERM, SIGKILL after timeoutMs; resolves with the exit code.
  stop(timeoutMs = 10000) {
    return new Promise((resolve) => {
      if (!this.alive()) return resolve(this.proc ? this.proc.exitCode : null);
      const t = setTimeout(() => { this.proc.kill('SIGKILL'); }, timeoutMs);
      this.proc.once('exit', (code) => { clearTimeout(t); resolve(code); });
      this.proc.kill('SIGTERM');
    });
  }

  // TAP line n: the broker exits 0 on SIGTERM without a sanitizer report.
  // Returns whether it did.
  async cleanShutdown(n, name) {
    if (!this.alive()) {
      console.log(`not ok ${n} - ${name}\n# broker not running at the end\n${comment(this.log.slice(-2000))}`);
      return false;
    }
    const code = await this.stop();
    const report = SANITIZER.exec(this.log);
    if (code === 0 && !report) {
      console.log(`ok ${n} - ${name}`);
      return true;
    }
    console.log(`not ok ${n} - ${name}: exit ${code}\n${comment(this.log.slice(-2000))}`);
    return false;
  }
}
