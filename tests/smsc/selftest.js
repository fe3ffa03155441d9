'use strict';
// Self-test of the test SMSC (simulator.js): starts it on ephemeral ports,
// drives it with the npm `smpp` client and checks each behaviour the gateway's
// tests rely on (bind checks, submit rules, receipts and their re-delivery,
// inbound messages, the forced disconnect, the control API, clean shutdown).
// Exits 0 when every check passes, 1 otherwise; bounded to 60 s. Buffers: the
// client's PDUs belong to the `smpp` library; nothing here keeps them.
//
// Usage: node selftest.js   (from any directory; needs `npm ci` done here)

const assert = require('assert');
const child_process = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const smpp = require('smpp');

const SYSTEM_ID = 'postino';
const PASSWORD = 'secret';

const deadline = setTimeout(() => {
  process.stderr.write('selftest: timed out\n');
  process.exit(1);
}, 60000);

function sleep(ms) {
  return new Promise(r => setTimeout(r, ms));
}

async function until(what, fn, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// ---------------------------------------------------------------- simulator process

let sim = null;
let ports = null;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smsc-selftest-'));

async function start_simulator() {
  const ready = path.join(dir, 'ready');
  sim = child_process.spawn(process.execPath, [path.join(__dirname, 'simulator.js'), '--port', '0',
    '--ready-file', ready, '--system-id', SYSTEM_ID, '--password', PASSWORD,
    '--stats-file', path.join(dir, 'stats.json')], {stdio: ['ignore', 'inherit', 'inherit']});
  sim.exited = new Promise(r => sim.on('exit', (code, signal) => r({code, signal})));
  const text = await until('ready file', () => fs.existsSync(ready) && fs.readFileSync(ready, 'utf8'));
  ports = {};
  for (const line of text.trim().split('\n')) {
    const [k, v] = line.split(' ');
    ports[k] = Number(v);
  }
  assert(ports.smpp > 0 && ports.control > 0, `ready file: ${text}`);
}

function control(method, route, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? '' : JSON.stringify(body);
    const req = http.request({host: '127.0.0.1', port: ports.control, method, path: route,
      headers: {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data)}}, (res) => {
      const chunks = [];
      res.on('data', c => chunks.push(c));
      res.on('end', () => {
        const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (res.statusCode !== 200) return reject(new Error(`${method} ${route}: ${res.statusCode} ${parsed.error}`));
        resolve(parsed);
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

// ---------------------------------------------------------------- ESME client

class Esme {
  constructor() {
    this.delivers = [];   // every deliver_sm received, in order
    this.events = [];     // 'resp:<seq>' and 'deliver:<id>' in arrival order
    this.ack = true;      // answer deliver_sm with status 0
    this.closed = false;
  }

  connect() {
    return new Promise((resolve, reject) => {
      this.session = smpp.connect({host: '127.0.0.1', port: ports.smpp}, () => resolve(this));
      this.session.on('error', (e) => {
        if (!this.session.socket.remotePort) reject(e);
      });
      this.session.on('close', () => {
        this.closed = true;
      });
      this.session.on('deliver_sm', (pdu) => {
        this.delivers.push(pdu);
        this.events.push(`deliver:${pdu.receipted_message_id || ''}`);
        if (this.ack) this.session.send(pdu.response());
      });
    });
  }

  bind(system_id = SYSTEM_ID, password = PASSWORD) {
    return new Promise(resolve => this.session.bind_transceiver({system_id, password}, resolve));
  }

  static async bound() {
    const e = await new Esme().connect();
    const r = await e.bind();
    assert.strictEqual(r.command_status, 0, 'bind');
    return e;
  }

  submit(dest, text, extra = {}) {
    return new Promise((resolve) => {
      const sm = Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1');
      const pdu = new smpp.PDU('submit_sm', Object.assign({source_addr_ton: 5, source_addr_npi: 0,
        source_addr: 'Postino', dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: dest,
        registered_delivery: 1, data_coding: 0, short_message: sm}, extra));
      this.session.send(pdu, (resp) => {
        this.events.push(`resp:${resp.message_id || ''}`);
        resolve(resp);
      });
    });
  }

  receipt_for(id) {
    return this.delivers.find(p => p.esm_class === 4 && p.receipted_message_id === id);
  }

  close() {
    this.session.destroy();
  }

  // Closes once nothing is left to deliver, so the next check starts clean.
  async finish() {
    await until('deliveries acknowledged', async () => {
      const st = await control('GET', '/stats');
      return st.receipts_pending === 0 && st.inbound_pending === 0;
    });
    this.close();
  }
}

function receipt_text(pdu) {
  return pdu.short_message.message;
}

// ---------------------------------------------------------------- checks

const checks = [];
function check(name, fn) {
  checks.push({name, fn});
}

check('bind refuses a wrong system_id and a wrong password', async () => {
  let e = await new Esme().connect();
  let r = await e.bind('intruder', PASSWORD);
  assert.strictEqual(r.command_status, 0x0F);
  e.close();
  e = await new Esme().connect();
  r = await e.bind(SYSTEM_ID, 'wrong');
  assert.strictEqual(r.command_status, 0x0E);
  e.close();
  const st = await control('GET', '/stats');
  assert.strictEqual(st.bind_failures, 2);
  await until('refused sessions closed', () => e.closed);
});

check('accept: hex id, text receipt with TLVs, acknowledged', async () => {
  const e = await Esme.bound();
  const r = await e.submit('390001', 'hello world');
  assert.strictEqual(r.command_status, 0);
  assert.match(r.message_id, /^[0-9A-F]{8}$/);
  const d = await until('receipt', () => e.receipt_for(r.message_id));
  assert.match(receipt_text(d), new RegExp(`^id:${r.message_id} sub:001 dlvrd:001 submit date:\\d{10} ` +
    'done date:\\d{10} stat:DELIVRD err:000 text:hello world$'));
  assert.strictEqual(d.message_state, 2);
  assert.strictEqual(d.source_addr, '390001');
  assert.strictEqual(d.destination_addr, 'Postino');
  await until('ack counted', async () => (await control('GET', '/stats')).receipts_acked === 1);
  const subs = await control('GET', '/submits');
  assert.strictEqual(subs.length, 1);
  assert.strictEqual(subs[0].sm_hex, Buffer.from('hello world').toString('hex'));
  assert.strictEqual(subs[0].message_id, r.message_id);
  assert.strictEqual(subs[0].source_ton, 5);
  assert.strictEqual(subs[0].registered_delivery, 1);
  assert.strictEqual(subs[0].receipt_acked, true);
  await e.finish();
});

check('throttle with times: two 0x58 then accepted; retries are not duplicates', async () => {
  await control('POST', '/config', {rules: [{prefix: '3933', submit: 'throttle', times: 2}]});
  const e = await Esme.bound();
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await e.submit('393312345', 'retry me')).command_status);
  assert.deepStrictEqual(statuses, [0x58, 0x58, 0]);
  const other = await e.submit('390012345', 'not throttled');
  assert.strictEqual(other.command_status, 0);
  const st = await control('GET', '/stats');
  assert.strictEqual(st.duplicates, 0);
  assert.strictEqual(st.retries_after_refusal, 2);
  assert.deepStrictEqual(st.duplicate_keys, []);
  assert.strictEqual(st.responses['0x00000058'], 2);
  await e.finish();
});

check('permanent and queue_full rules; longest prefix wins', async () => {
  await control('POST', '/config', {rules: [{prefix: '39', submit: 'queue_full'},
    {prefix: '3944', submit: 'permanent'}, {prefix: '39445', submit: 'permanent', status: 0x45}],
  default: {submit: 'temporary'}});
  const e = await Esme.bound();
  assert.strictEqual((await e.submit('3944000', 'a')).command_status, 0x0B);
  assert.strictEqual((await e.submit('3944500', 'b')).command_status, 0x45);
  assert.strictEqual((await e.submit('3911111', 'c')).command_status, 0x14);
  assert.strictEqual((await e.submit('4411111', 'd')).command_status, 0x08);
  await e.finish();
});

check('receipt_before_resp: deliver_sm arrives before submit_sm_resp', async () => {
  await control('POST', '/config', {rules: [{prefix: '3955', receipt_before_resp: true}]});
  const e = await Esme.bound();
  const r = await e.submit('3955123', 'early receipt');
  assert.strictEqual(r.command_status, 0);
  const di = e.events.indexOf(`deliver:${r.message_id}`);
  const ri = e.events.indexOf(`resp:${r.message_id}`);
  assert(di >= 0 && ri > di, `events ${e.events}`);
  await e.finish();
});

check('hex/decimal: receipt prints the id in the other base', async () => {
  await control('POST', '/config', {rules: [{prefix: '3966', receipt_id_format: 'other'},
    {prefix: '3967', id_format: 'decimal', receipt_id_format: 'other', receipt_form: 'text_only'},
    {prefix: '3968', receipt: 'undeliverable', receipt_form: 'tlv_only'}]});
  const e = await Esme.bound();
  const hex = await e.submit('3966000', 'hex id');
  assert.match(hex.message_id, /^[0-9A-F]{8}$/);
  const as_decimal = String(parseInt(hex.message_id, 16));
  const d1 = await until('receipt 1', () => e.receipt_for(as_decimal));
  assert.match(receipt_text(d1), new RegExp(`^id:${as_decimal} `));
  const dec = await e.submit('3967000', 'decimal id');
  assert.match(dec.message_id, /^[1-9][0-9]*$/);
  const as_hex = Number(dec.message_id).toString(16).toUpperCase().padStart(8, '0');
  const d2 = await until('receipt 2', () => e.delivers.find(p => receipt_text(p).startsWith(`id:${as_hex} `)));
  assert.strictEqual(d2.receipted_message_id, undefined);
  assert.strictEqual(d2.message_state, undefined);
  const und = await e.submit('3968000', 'tlv only');
  const d3 = await until('receipt 3', () => e.receipt_for(und.message_id));
  assert.strictEqual(d3.message_state, 5);
  assert.strictEqual(d3.short_message.message, '');
  await e.finish();
});

check('disconnect_after_submits drops the socket mid-window', async () => {
  await control('POST', '/config', {disconnect_after_submits: 5});
  const e = await Esme.bound();
  const answered = [];
  for (let i = 0; i < 8; i++) e.submit('390500' + i, `window ${i}`).then(r => answered.push(r));
  await until('socket closed', () => e.closed);
  const st = await control('GET', '/stats');
  assert.strictEqual(st.disconnects_forced, 1);
  assert(st.unanswered_at_disconnect >= 1, 'something unanswered');
  assert.strictEqual(answered.length + st.unanswered_at_disconnect, 5, `answered ${answered.length}`);
  if (process.env.SELFTEST_VERBOSE) console.log(`answered ${answered.length}, unanswered ${st.unanswered_at_disconnect}`);
  const subs = await control('GET', '/submits');
  assert.strictEqual(subs.filter(s => s.unanswered).length, st.unanswered_at_disconnect);
  // Once only: the next session is answered normally.
  const e2 = await Esme.bound();
  assert.strictEqual((await e2.submit('3905999', 'after')).command_status, 0);
  await e2.finish();
});

check('unacknowledged receipt is re-sent on the next bind', async () => {
  await control('POST', '/config', {rules: [{prefix: '3977', receipt_delay_ms: 100}]});
  const e = await Esme.bound();
  e.ack = false;
  const r = await e.submit('3977000', 'keep me');
  await until('first receipt', () => e.receipt_for(r.message_id));
  e.close();
  await until('session gone', async () => (await control('GET', '/stats')).binds_active === 0);
  let st = await control('GET', '/stats');
  assert.strictEqual(st.receipts_acked, 0);
  assert.strictEqual(st.receipts_pending, 1);
  const e2 = await Esme.bound();
  await until('receipt again', () => e2.receipt_for(r.message_id));
  await until('acked', async () => (await control('GET', '/stats')).receipts_acked === 1);
  st = await control('GET', '/stats');
  assert.strictEqual(st.receipts_sent, 2);
  assert.strictEqual(st.receipts_resent, 1);
  assert.strictEqual(st.receipts_pending, 0);
  await e2.finish();
});

check('non-zero deliver_sm_resp keeps the receipt for a later attempt', async () => {
  await control('POST', '/config', {redeliver_delay_ms: 50});
  const e = await Esme.bound();
  let refused = 0;
  e.ack = false;
  e.session.on('deliver_sm', (pdu) => {
    if (refused++ === 0) e.session.send(pdu.response({command_status: 0x08}));
    else e.session.send(pdu.response());
  });
  const r = await e.submit('390700', 'refuse once');
  await until('acked', async () => (await control('GET', '/stats')).receipts_acked === 1);
  assert.strictEqual(e.delivers.filter(p => p.receipted_message_id === r.message_id).length, 2);
  assert.strictEqual((await control('GET', '/stats')).deliver_failed, 1);
  await e.finish();
});

check('inbound: GSM for ASCII, UCS-2 otherwise, queued until a bind', async () => {
  await control('POST', '/inbound', {from: '393331112222', to: '4000', text: 'hello @home'});
  await control('POST', '/inbound', {from: '393331112222', to: '4000', text: 'ciao ☺'});
  const e = await Esme.bound();
  await until('two inbound', () => e.delivers.length === 2);
  const [a, b] = e.delivers;
  assert.strictEqual(a.esm_class, 0);
  assert.strictEqual(a.data_coding, 0);
  assert.strictEqual(a.short_message.message, 'hello @home');
  assert.strictEqual(a.source_addr, '393331112222');
  assert.strictEqual(a.source_addr_ton, 1);
  assert.strictEqual(a.destination_addr, '4000');
  assert.strictEqual(b.data_coding, 8);
  assert.strictEqual(b.short_message.message, 'ciao ☺');
  await until('acked', async () => (await control('GET', '/stats')).inbound_acked === 2);
  await e.finish();
});

check('rate limit answers ESME_RTHROTTLED beyond max_submits_per_second', async () => {
  await control('POST', '/config', {max_submits_per_second: 5, max_submits_burst: 1});
  const e = await Esme.bound();
  const rs = await Promise.all([0, 1, 2, 3, 4].map(i => e.submit('3908' + i, `rate ${i}`)));
  const statuses = rs.map(r => r.command_status);
  assert.strictEqual(statuses.filter(s => s === 0).length, 1, `statuses ${statuses}`);
  assert.strictEqual(statuses.filter(s => s === 0x58).length, 4);
  await control('POST', '/config', {});
  await e.finish();
});

check('concatenated segment: UDH parsed, UCS-2 and Latin-1 kept as octets', async () => {
  const e = await Esme.bound();
  const udh = Buffer.from([0x05, 0x00, 0x03, 0x2A, 0x02, 0x01]);
  const ucs2 = Buffer.from('città', 'utf16le').swap16();
  const r = await e.submit('390900', Buffer.concat([udh, ucs2]), {esm_class: 0x40, data_coding: 8,
    validity_period: '000001000000000R'});
  assert.strictEqual(r.command_status, 0);
  await e.submit('390901', Buffer.from('caffè', 'latin1'), {data_coding: 3});
  const subs = await control('GET', '/submits');
  assert.deepStrictEqual(subs[0].udh, {ref: 0x2A, total: 2, seq: 1});
  assert.strictEqual(subs[0].esm_class, 0x40);
  assert.strictEqual(subs[0].data_coding, 8);
  assert.strictEqual(subs[0].validity_period, '000001000000000R');
  assert.strictEqual(subs[0].sm_hex, Buffer.concat([udh, ucs2]).toString('hex'));
  assert.strictEqual(subs[1].sm_hex, Buffer.from('caffè', 'latin1').toString('hex'));
  const d = await until('receipt', () => e.receipt_for(r.message_id));
  assert.match(receipt_text(d), / text:citt\?$/);
  await e.finish();
});

check('enquire_link answered, unknown command nacked, unbind closes', async () => {
  const e = await Esme.bound();
  const el = await new Promise(r => e.session.enquire_link(r));
  assert.strictEqual(el.command_status, 0);
  const nack = await new Promise(r => e.session.query_sm({message_id: '1'}, r));
  assert.strictEqual(nack.command, 'generic_nack');
  assert.strictEqual(nack.command_status, 0x03);
  const ub = await new Promise(r => e.session.unbind(r));
  assert.strictEqual(ub.command, 'unbind_resp');
  await until('closed', () => e.closed);
  const st = await control('GET', '/stats');
  assert(st.enquire_links >= 1 && st.unbinds >= 1 && st.generic_nacks_sent >= 1);
});

check('POST /disconnect drops every session', async () => {
  const a = await Esme.bound();
  const b = await Esme.bound();
  const res = await control('POST', '/disconnect');
  assert.strictEqual(res.dropped, 2);
  await until('both closed', () => a.closed && b.closed);
});

check('SIGTERM: clean exit with final stats file', async () => {
  sim.kill('SIGTERM');
  const {code} = await sim.exited;
  assert.strictEqual(code, 0);
  const st = JSON.parse(fs.readFileSync(path.join(dir, 'stats.json'), 'utf8'));
  assert('submits_total' in st);
});

async function main() {
  await start_simulator();
  let failed = 0;
  for (const c of checks) {
    try {
      // Every check starts with no session, nothing to deliver, default rules.
      await until('previous sessions closed', async () => {
        const st = await control('GET', '/stats');
        return st.sessions_open === 0 && st.receipts_pending === 0 && st.inbound_pending === 0;
      });
      await control('POST', '/config', {});
      await control('POST', '/reset');
      await c.fn();
      process.stdout.write(`ok   ${c.name}\n`);
    } catch (e) {
      failed++;
      process.stdout.write(`FAIL ${c.name}\n     ${e.stack.split('\n').slice(0, 3).join('\n     ')}\n`);
    }
  }
  if (sim.exitCode === null) sim.kill('SIGTERM');
  fs.rmSync(dir, {recursive: true, force: true});
  clearTimeout(deadline);
  process.stdout.write(`${checks.length - failed}/${checks.length} checks passed\n`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  process.stderr.write(`selftest: ${e.stack}\n`);
  if (sim) sim.kill('SIGTERM');
  process.exit(1);
});
