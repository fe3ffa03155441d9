'use strict';
// Measures the test SMSC's own ceiling, with no gateway in the way: binds B
// transceivers with the npm `smpp` client, submits N submit_sm (registered
// delivery on) keeping W outstanding per bind, acknowledges every receipt, and
// prints one JSON line {submits_per_s, receipts_per_s, elapsed_s, ...}. A
// gateway test that runs the simulator near this rate measures the simulator,
// not the gateway. Buffers: PDUs belong to the `smpp` library.
//
// Usage: node ceiling.js --port P [--host 127.0.0.1] [--messages N] [--window W]
//          [--binds B] [--system-id ID] [--password PW] [--timeout-s S] [--sim-pid PID]
// With --sim-pid (Linux) it also reports the simulator's CPU seconds during the
// run and the rate that CPU would allow at 100 % of one core, which is the
// simulator's own ceiling when this client, not the simulator, is the limit.
// Pin it and the simulator to different cores: taskset -c 0 node simulator.js ...,
// taskset -c 1 node ceiling.js ...

const smpp = require('smpp');

function parse_args(argv) {
  const o = {host: '127.0.0.1', port: 0, messages: 20000, window: 10, binds: 1, system_id: 'ceiling',
    password: 'ceiling', timeout_s: 300, sim_pid: 0};
  const flags = {'--host': 'host', '--port': 'port', '--messages': 'messages', '--window': 'window',
    '--binds': 'binds', '--system-id': 'system_id', '--password': 'password', '--timeout-s': 'timeout_s',
    '--sim-pid': 'sim_pid'};
  for (let i = 0; i < argv.length; i++) {
    if (!(argv[i] in flags) || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    o[flags[argv[i]]] = argv[++i];
  }
  for (const k of ['port', 'messages', 'window', 'binds', 'timeout_s', 'sim_pid']) {
    o[k] = Number(o[k]);
    const min = (k === 'messages' || k === 'sim_pid') ? 0 : 1;
    if (!Number.isInteger(o[k]) || o[k] < min) throw new Error(`bad --${k.replace('_', '-')}`);
  }
  return o;
}

let o;
try {
  o = parse_args(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`ceiling: ${e.message}\n`);
  process.exit(2);
}

const timer = setTimeout(() => {
  process.stderr.write(`ceiling: timed out after ${o.timeout_s} s (${submitted} submitted, ${answered} answered, ` +
    `${receipts} receipts)\n`);
  process.exit(1);
}, o.timeout_s * 1000);

let submitted = 0;
let answered = 0;
let accepted = 0;
let rejected = 0;
let receipts = 0;
let t_start = 0n;
let t_submits_done = 0n;
let t_receipts_done = 0n;
const sessions = [];

// utime + stime of a process, in seconds, from /proc.
function cpu_seconds(pid) {
  if (!pid) return null;
  try {
    const stat = require('fs').readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;  // USER_HZ is 100 on Linux
  } catch (e) {
    return null;
  }
}
let sim_cpu_start = null;

function now() {
  return process.hrtime.bigint();
}

function connect() {
  return new Promise((resolve, reject) => {
    const session = smpp.connect({host: o.host, port: o.port}, () => {
      session.socket.setNoDelay(true);
      session.bind_transceiver({system_id: o.system_id, password: o.password}, (pdu) => {
        if (pdu.command_status !== 0) reject(new Error(`bind failed with status ${pdu.command_status}`));
        else resolve(session);
      });
    });
    session.on('error', reject);
    session.on('deliver_sm', (pdu) => {
      session.send(pdu.response());
      if (pdu.esm_class & 0x04) {
        receipts++;
        maybe_done();
      }
    });
  });
}

function maybe_done() {
  if (answered === o.messages && t_submits_done === 0n) t_submits_done = now();
  if (t_submits_done !== 0n && receipts >= accepted && t_receipts_done === 0n) {
    t_receipts_done = now();
    finish();
  }
}

// Each bind keeps `window` submits outstanding until its share is sent.
function run_bind(session, share) {
  let left = share;
  const next = () => {
    if (left === 0) return;
    left--;
    const i = submitted++;
    session.submit_sm({
      source_addr_ton: 5, source_addr_npi: 0, source_addr: 'Ceiling',
      dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: String(393000000000 + i),
      registered_delivery: 1, data_coding: 0, short_message: Buffer.from(`ceiling message ${i}`, 'latin1'),
    }, (resp) => {
      answered++;
      if (resp.command_status === 0) accepted++;
      else rejected++;
      next();
      maybe_done();
    });
  };
  for (let w = 0; w < o.window; w++) next();
}

function seconds(a, b) {
  return Number(b - a) / 1e9;
}

function finish() {
  clearTimeout(timer);
  const submit_s = seconds(t_start, t_submits_done);
  const total_s = seconds(t_start, t_receipts_done);
  const round = (x) => Math.round(x * 10) / 10;
  const sim_cpu_end = cpu_seconds(o.sim_pid);
  const sim = {};
  if (sim_cpu_start !== null && sim_cpu_end !== null) {
    sim.sim_cpu_s = Math.round((sim_cpu_end - sim_cpu_start) * 100) / 100;
    sim.sim_cpu_util = Math.round((sim_cpu_end - sim_cpu_start) / total_s * 100) / 100;
    sim.sim_ceiling_msgs_per_s = sim_cpu_end > sim_cpu_start ?
      Math.round(o.messages / (sim_cpu_end - sim_cpu_start)) : null;
  }
  process.stdout.write(JSON.stringify(Object.assign({
    submits_per_s: round(o.messages / submit_s),
    receipts_per_s: round(receipts / total_s),
    elapsed_s: Math.round(total_s * 1000) / 1000,
    submit_elapsed_s: Math.round(submit_s * 1000) / 1000,
    messages: o.messages, window: o.window, binds: o.binds, accepted, rejected, receipts,
  }, sim)) + '\n');
  let open = sessions.length;
  for (const s of sessions) {
    s.unbind(() => {
      s.close();
      if (--open === 0) process.exit(0);
    });
  }
  setTimeout(() => process.exit(0), 2000).unref();
}

async function main() {
  for (let b = 0; b < o.binds; b++) sessions.push(await connect());
  t_start = now();
  sim_cpu_start = cpu_seconds(o.sim_pid);
  if (o.messages === 0) {
    t_submits_done = t_receipts_done = now();
    return finish();
  }
  const base = Math.floor(o.messages / o.binds);
  sessions.forEach((s, b) => run_bind(s, base + (b < o.messages % o.binds ? 1 : 0)));
}

main().catch((e) => {
  process.stderr.write(`ceiling: ${e.message}\n`);
  process.exit(1);
});
