'use strict';
// Test SMSC for postino's SMPP delivery (issue 7): an SMPP 3.4 server built on
// the npm `smpp` package that binds ESMEs, answers submit_sm according to
// per-destination-prefix rules (accept, throttle, queue full, permanent and
// temporary errors, a global rate limit, an abrupt disconnect mid-window),
// produces delivery receipts that it keeps and re-sends until an ESME session
// of the same system_id acknowledges them, injects mobile-originated messages,
// and counts everything for the tests over a small HTTP control API on
// 127.0.0.1. One single-threaded process: ceiling.js measures how fast it is.
// Buffers: every PDU buffer read from a socket belongs to the `smpp` library;
// submit records copy what they keep, so nothing here outlives its read.
//
// Usage: node simulator.js --port 0 --ready-file PATH [--config rules.json]
//          [--system-id ID --password PW] [--stats-file PATH] [--verbose]
//          [--control-port 0] [--no-exit-with-parent]
// README.md documents the rules and the control API.

const fs = require('fs');
const http = require('http');
const path = require('path');
const smpp = require('smpp');

const PDU = smpp.PDU;

// The library decodes short_message into text and validity_period into a Date,
// which loses the octets the tests must see. Keep the PDU's raw bytes next to
// the decoded fields (non-enumerable so re-encoding ignores it) and read the
// body ourselves.
// submit_sm skips the library's decoding altogether: it is the hot path and
// parse_submit reads it from the octets anyway.
const library_from_buffer = PDU.prototype.fromBuffer;
PDU.prototype.fromBuffer = function (buffer) {
  Object.defineProperty(this, 'raw', {value: buffer, enumerable: false, writable: true});
  if (buffer.length >= 16 && buffer.readUInt32BE(4) === 0x00000004) {
    this.command_length = buffer.readUInt32BE(0);
    this.command_id = 0x00000004;
    this.command_status = buffer.readUInt32BE(8);
    this.sequence_number = buffer.readUInt32BE(12);
    this.command = 'submit_sm';
    return;
  }
  return library_from_buffer.call(this, buffer);
};

// submit_sm_resp by hand: the library's generic encoder costs more than the
// rest of a submit's handling.
function submit_resp_buffer(sequence, status, message_id) {
  const body = status === 0 ? Buffer.byteLength(message_id, 'latin1') + 1 : 0;
  const b = Buffer.allocUnsafe(16 + body);
  b.writeUInt32BE(16 + body, 0);
  b.writeUInt32BE(0x80000004, 4);
  b.writeUInt32BE(status, 8);
  b.writeUInt32BE(sequence, 12);
  if (body) {
    b.write(message_id, 16, 'latin1');
    b[15 + body] = 0;
  }
  return b;
}

const ST = {
  ok: 0x00,
  invmsglen: 0x01,
  invcmdid: 0x03,
  invbndsts: 0x04,
  alybnd: 0x05,
  syserr: 0x08,
  invdstadr: 0x0B,
  invpaswd: 0x0E,
  invsysid: 0x0F,
  msgqful: 0x14,
  throttled: 0x58,
};

const SUBMIT_MODES = ['accept', 'throttle', 'queue_full', 'permanent', 'temporary'];
const RECEIPT_KINDS = {
  delivered: {stat: 'DELIVRD', state: 2, err: '000'},
  undeliverable: {stat: 'UNDELIV', state: 5, err: '001'},
  expired: {stat: 'EXPIRED', state: 3, err: '001'},
  rejected: {stat: 'REJECTD', state: 8, err: '001'},
  deleted: {stat: 'DELETED', state: 4, err: '001'},
  none: null,
};
const RULE_KEYS = new Set(['prefix', 'submit', 'status', 'times', 'receipt', 'receipt_delay_ms', 'receipt_before_resp',
  'id_format', 'receipt_id_format', 'receipt_form', 'err']);
const CONFIG_KEYS = new Set(['rules', 'default', 'disconnect_after_submits', 'max_submits_per_second',
  'max_submits_burst', 'resp_delay_ms', 'deliver_window', 'deliver_timeout_ms', 'redeliver_delay_ms',
  'keep_submits']);

// ---------------------------------------------------------------- command line

function parse_args(argv) {
  const opts = {port: 2775, host: '127.0.0.1', control_port: 0, ready_file: null, config: null,
    system_id: null, password: null, stats_file: null, verbose: false, exit_with_parent: true};
  const value_flags = {'--port': 'port', '--host': 'host', '--control-port': 'control_port',
    '--ready-file': 'ready_file', '--config': 'config', '--system-id': 'system_id', '--password': 'password',
    '--stats-file': 'stats_file'};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a in value_flags) {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      opts[value_flags[a]] = argv[++i];
    } else if (a === '--verbose') {
      opts.verbose = true;
    } else if (a === '--no-exit-with-parent') {
      opts.exit_with_parent = false;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(fs.readFileSync(__filename, 'utf8').split('\n').filter(l => l.startsWith('// Usage') ||
        l.startsWith('//   ')).join('\n') + '\n');
      process.exit(0);
    } else {
      throw new Error(`unknown argument ${a}`);
    }
  }
  opts.port = Number(opts.port);
  opts.control_port = Number(opts.control_port);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error('bad --port');
  if (!Number.isInteger(opts.control_port) || opts.control_port < 0 || opts.control_port > 65535) {
    throw new Error('bad --control-port');
  }
  return opts;
}

let opts;
try {
  opts = parse_args(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`simulator: ${e.message}\n`);
  process.exit(2);
}
const log = opts.verbose ? (m) => process.stderr.write(`smsc: ${m}\n`) : () => {};

// ---------------------------------------------------------------- configuration

function check_uint(obj, key, where) {
  if (key in obj && !(Number.isInteger(obj[key]) && obj[key] >= 0)) {
    throw new Error(`${where}.${key} must be a non-negative integer`);
  }
}

function validate_rule(r, where) {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new Error(`${where} must be an object`);
  for (const k of Object.keys(r)) if (!RULE_KEYS.has(k)) throw new Error(`${where}: unknown field "${k}"`);
  if ('prefix' in r && !(typeof r.prefix === 'string' && /^[0-9]*$/.test(r.prefix))) {
    throw new Error(`${where}.prefix must be a string of digits`);
  }
  if ('submit' in r && !SUBMIT_MODES.includes(r.submit)) {
    throw new Error(`${where}.submit must be one of ${SUBMIT_MODES.join(', ')}`);
  }
  if ('status' in r && !(Number.isInteger(r.status) && r.status > 0 && r.status <= 0xFFFFFFFF)) {
    throw new Error(`${where}.status must be a positive integer`);
  }
  if ('receipt' in r && !(r.receipt in RECEIPT_KINDS)) {
    throw new Error(`${where}.receipt must be one of ${Object.keys(RECEIPT_KINDS).join(', ')}`);
  }
  check_uint(r, 'times', where);
  check_uint(r, 'receipt_delay_ms', where);
  if ('receipt_before_resp' in r && typeof r.receipt_before_resp !== 'boolean') {
    throw new Error(`${where}.receipt_before_resp must be true or false`);
  }
  if ('id_format' in r && !['hex', 'decimal'].includes(r.id_format)) {
    throw new Error(`${where}.id_format must be hex or decimal`);
  }
  if ('receipt_id_format' in r && !['same', 'other'].includes(r.receipt_id_format)) {
    throw new Error(`${where}.receipt_id_format must be same or other`);
  }
  if ('receipt_form' in r && !['text', 'text_only', 'tlv_only'].includes(r.receipt_form)) {
    throw new Error(`${where}.receipt_form must be text, text_only or tlv_only`);
  }
  if ('err' in r && !(typeof r.err === 'string' && /^[0-9A-Za-z]{1,3}$/.test(r.err))) {
    throw new Error(`${where}.err must be 1-3 characters`);
  }
}

// Returns the normalised configuration or throws with a message for the caller.
function load_config(json) {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('config must be an object');
  for (const k of Object.keys(json)) if (!CONFIG_KEYS.has(k)) throw new Error(`unknown config field "${k}"`);
  const rules = json.rules === undefined ? [] : json.rules;
  if (!Array.isArray(rules)) throw new Error('rules must be an array');
  rules.forEach((r, i) => {
    validate_rule(r, `rules[${i}]`);
    if (!('prefix' in r)) throw new Error(`rules[${i}] needs a prefix`);
  });
  const dflt = json.default === undefined ? {} : json.default;
  validate_rule(dflt, 'default');
  for (const k of ['disconnect_after_submits', 'max_submits_per_second', 'max_submits_burst', 'resp_delay_ms',
    'deliver_window', 'deliver_timeout_ms', 'redeliver_delay_ms']) {
    check_uint(json, k, 'config');
  }
  if ('keep_submits' in json && typeof json.keep_submits !== 'boolean') throw new Error('keep_submits must be a boolean');
  if (json.deliver_window === 0) throw new Error('deliver_window must be at least 1');
  const rate = json.max_submits_per_second || 0;
  return {
    source: json,
    // Longest prefix first, so the first match is the one that applies.
    rules: rules.map(r => Object.assign({}, dflt, r)).sort((a, b) => b.prefix.length - a.prefix.length),
    dflt: Object.assign({}, dflt),
    disconnect_after_submits: json.disconnect_after_submits || 0,
    rate,
    // A bucket of a tenth of a second by default: a whole second's burst would
    // hide throttling from short tests.
    burst: json.max_submits_burst || Math.max(1, Math.ceil(rate / 10)),
    // 0 = answer right after the current read (setImmediate). While a forced
    // disconnect is armed, hold answers 1 ms by default so that it catches
    // several submits of the window unanswered, as a real mid-window loss.
    resp_delay_ms: json.resp_delay_ms !== undefined ? json.resp_delay_ms : (json.disconnect_after_submits ? 1 : 0),
    deliver_window: json.deliver_window || 50,
    deliver_timeout_ms: json.deliver_timeout_ms || 10000,
    redeliver_delay_ms: json.redeliver_delay_ms === undefined ? 500 : json.redeliver_delay_ms,
    keep_submits: json.keep_submits === undefined ? true : json.keep_submits,
  };
}

let config;
try {
  config = load_config(opts.config ? JSON.parse(fs.readFileSync(opts.config, 'utf8')) : {});
} catch (e) {
  process.stderr.write(`simulator: config ${opts.config}: ${e.message}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- state

function fresh_stats() {
  return {
    binds_total: 0, bind_failures: 0, submits_total: 0, unique_submits: 0, duplicates: 0, retries_after_refusal: 0, duplicate_keys: [],
    responses: {}, throttled_by_rate: 0, malformed: 0,
    receipts_queued: 0, receipts_sent: 0, receipts_resent: 0, receipts_acked: 0,
    inbound_queued: 0, inbound_sent: 0, inbound_resent: 0, inbound_acked: 0,
    deliver_failed: 0, deliver_timeouts: 0,
    enquire_links: 0, unbinds: 0, closes: 0, disconnects_forced: 0, unanswered_at_disconnect: 0,
    unanswered_at_close: 0, generic_nacks: 0, generic_nacks_sent: 0,
  };
}

let stats = fresh_stats();
let submits = [];            // records, in arrival order (GET /submits)
// dest:hex(short_message) -> the latest submit record with that key. A repeat
// is a duplicate when the earlier one was accepted or never answered (the
// SMSC may deliver both); after a refusal (throttled, queue full, temporary
// or permanent error) it is a retry, which is what the ESME should do.
let seen_keys = new Map();
let dup_key_set = new Set();
let times_seen = new Map();  // rule "times": submits seen per destination+segment
let submits_since_config = 0;
let disconnect_fired = false;
let next_message_id = 1;     // never reset: ids of pending receipts stay unique
let session_seq = 0;
let inbound_seq = 0;
const inbound_items = [];    // every POST /inbound, for GET /inbound
const sessions = new Set();  // every open connection
let bound = [];              // bound sessions, in bind order (round robin)
let rr_index = 0;
const queues = new Map();    // system_id (or '*') -> deliver items ready to send
let pending_deliveries = {receipt: 0, inbound: 0};  // created, not yet acknowledged
let tokens = config.burst;
let tokens_at = process.hrtime.bigint();

function count_response(status) {
  const key = '0x' + status.toString(16).toUpperCase().padStart(8, '0');
  stats.responses[key] = (stats.responses[key] || 0) + 1;
}

// ---------------------------------------------------------------- text helpers

const GSM_BASIC = '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXT = {0x0A: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2F: '\\', 0x3C: '[', 0x3D: '~', 0x3E: ']',
  0x40: '|', 0x65: '€'};
const GSM_ENC = new Map();
for (let i = 0; i < GSM_BASIC.length; i++) if (i !== 0x1b) GSM_ENC.set(GSM_BASIC[i], [i]);
for (const [code, ch] of Object.entries(GSM_EXT)) GSM_ENC.set(ch, [0x1b, Number(code)]);
if (GSM_BASIC.length !== 128) throw new Error('GSM table is not 128 characters');

function gsm_decode(buf) {
  let out = '';
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i] & 0x7f;
    if (c === 0x1b && i + 1 < buf.length && GSM_EXT[buf[i + 1] & 0x7f]) {
      out += GSM_EXT[buf[++i] & 0x7f];
    } else {
      out += GSM_BASIC[c];
    }
  }
  return out;
}

// Unpacked septets, or null when a character is not in GSM 03.38.
function gsm_encode(text) {
  const out = [];
  for (const ch of text) {
    const code = GSM_ENC.get(ch);
    if (!code) return null;
    out.push(...code);
  }
  return Buffer.from(out);
}

function decode_text(payload, data_coding) {
  switch (data_coding) {
    case 0: return gsm_decode(payload);
    case 1: return payload.toString('latin1').replace(/[\x80-\xff]/g, '?');
    case 3: return payload.toString('latin1');
    case 8: {
      const even = Buffer.from(payload.subarray(0, payload.length & ~1));
      return even.swap16().toString('utf16le');
    }
    default: return payload.toString('hex');
  }
}

// The receipt's text: field is printed in plain ASCII so any parser reads it.
function receipt_text_field(text) {
  return Array.from(text.slice(0, 40)).slice(0, 20).join('').replace(/[^\x20-\x7e]/g, '?');
}

function smpp_date(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) + p(d.getUTCHours()) +
    p(d.getUTCMinutes());
}

function format_id(n, fmt) {
  return fmt === 'decimal' ? String(n) : n.toString(16).toUpperCase().padStart(8, '0');
}

// ---------------------------------------------------------------- PDU bodies

// submit_sm body straight from the octets; throws on a truncated body.
function parse_submit(buf) {
  const declared = buf.readUInt32BE(0);
  const end = Math.min(declared, buf.length);
  let o = 16;
  const cstr = () => {
    const start = o;
    while (o < end && buf[o] !== 0) o++;
    if (o >= end) throw new Error('unterminated C-octet string');
    return buf.toString('latin1', start, o++);
  };
  const u8 = () => {
    if (o >= end) throw new Error('truncated body');
    return buf[o++];
  };
  const r = {};
  r.service_type = cstr();
  r.source_ton = u8();
  r.source_npi = u8();
  r.source = cstr();
  r.dest_ton = u8();
  r.dest_npi = u8();
  r.dest = cstr();
  r.esm_class = u8();
  r.protocol_id = u8();
  r.priority_flag = u8();
  r.schedule_delivery_time = cstr();
  r.validity_period = cstr();
  r.registered_delivery = u8();
  r.replace_if_present = u8();
  r.data_coding = u8();
  r.sm_default_msg_id = u8();
  const len = u8();
  if (o + len > end) throw new Error('short_message overruns the PDU');
  r.sm = Buffer.from(buf.subarray(o, o + len));
  o += len;
  r.tlvs = new Map();
  while (o + 4 <= end) {
    const tag = buf.readUInt16BE(o);
    const l = buf.readUInt16BE(o + 2);
    if (o + 4 + l > end) throw new Error('TLV overruns the PDU');
    r.tlvs.set(tag, Buffer.from(buf.subarray(o + 4, o + 4 + l)));
    o += 4 + l;
  }
  if (o !== end) throw new Error('trailing octets after the TLVs');
  return r;
}

// Concatenation info from a UDH (8- or 16-bit reference) and the text after it.
function split_udh(sm, esm_class) {
  if (!(esm_class & 0x40) || sm.length === 0) return {udh: null, payload: sm};
  const udhl = sm[0];
  if (1 + udhl > sm.length) return {udh: null, payload: sm};
  let udh = null;
  for (let i = 1; i + 1 < 1 + udhl;) {
    const iei = sm[i];
    const iel = sm[i + 1];
    if (i + 2 + iel > 1 + udhl) break;
    if (iei === 0x00 && iel === 3) udh = {ref: sm[i + 2], total: sm[i + 3], seq: sm[i + 4]};
    if (iei === 0x08 && iel === 4) udh = {ref: sm.readUInt16BE(i + 2), total: sm[i + 4], seq: sm[i + 5]};
    i += 2 + iel;
  }
  return {udh, payload: sm.subarray(1 + udhl)};
}

function rule_for(dest) {
  for (const r of config.rules) if (dest.startsWith(r.prefix)) return r;
  return config.dflt;
}

function take_token() {
  if (!config.rate) return true;
  const now = process.hrtime.bigint();
  tokens = Math.min(config.burst, tokens + Number(now - tokens_at) * config.rate / 1e9);
  tokens_at = now;
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

// ---------------------------------------------------------------- sessions

function on_session(session) {
  const s = {
    id: ++session_seq, session, socket: session.socket, bound: false, system_id: null, mode: null, rx: false,
    tx: false, pending: [], flush_timer: null, delayed: new Set(), inflight: new Map(), dead: false,
    remote_port: session.socket.remotePort,
  };
  sessions.add(s);
  session.socket.setNoDelay(true);
  log(`session ${s.id} connected from port ${s.remote_port}`);
  session.on('pdu', (pdu) => {
    try {
      on_pdu(s, pdu);
    } catch (e) {
      process.stderr.write(`smsc: session ${s.id}: ${e.stack}\n`);
      drop(s);
    }
  });
  session.on('error', (e) => {
    log(`session ${s.id}: ${e.message}`);
    drop(s);
  });
  session.on('close', () => on_close(s));
}

function drop(s) {
  if (!s.dead) {
    s.dead = true;
    s.socket.destroy();
  }
}

function send(s, pdu, cb) {
  if (s.dead) return false;
  return s.session.send(pdu, undefined, cb);
}

function respond(s, pdu, options) {
  return send(s, pdu.response(options || {}));
}

function on_pdu(s, pdu) {
  if (s.dead) return;
  switch (pdu.command) {
    case 'bind_transceiver':
    case 'bind_transmitter':
    case 'bind_receiver':
      return on_bind(s, pdu);
    case 'submit_sm':
      return on_submit(s, pdu);
    case 'deliver_sm_resp':
      return on_deliver_resp(s, pdu.sequence_number, pdu.command_status);
    case 'enquire_link':
      stats.enquire_links++;
      return respond(s, pdu);
    case 'enquire_link_resp':
      return;
    case 'unbind':
      stats.unbinds++;
      log(`session ${s.id} unbind`);
      unbind_session(s);
      return send(s, pdu.response(), () => s.socket.end());
    case 'unbind_resp':
      unbind_session(s);
      return s.socket.end();
    case 'generic_nack':
      stats.generic_nacks++;
      // A nack of our deliver_sm is a failed delivery: keep the item.
      return on_deliver_resp(s, pdu.sequence_number, pdu.command_status || ST.syserr);
    default:
      if (pdu.isResponse()) return;
      stats.generic_nacks_sent++;
      return send(s, new PDU('generic_nack', {sequence_number: pdu.sequence_number, command_status: ST.invcmdid}));
  }
}

function on_bind(s, pdu) {
  if (s.bound) return respond(s, pdu, {command_status: ST.alybnd});
  let status = ST.ok;
  if (opts.system_id !== null && pdu.system_id !== opts.system_id) status = ST.invsysid;
  else if (opts.password !== null && pdu.password !== opts.password) status = ST.invpaswd;
  if (status !== ST.ok) {
    stats.bind_failures++;
    log(`session ${s.id} bind refused (${status}) for "${pdu.system_id}"`);
    // Answer, then hang up like most SMSCs do after a failed bind.
    return send(s, pdu.response({command_status: status}), () => s.socket.end());
  }
  s.bound = true;
  s.system_id = pdu.system_id;
  s.mode = pdu.command.slice(5);
  s.rx = pdu.command !== 'bind_transmitter';
  s.tx = pdu.command !== 'bind_receiver';
  stats.binds_total++;
  bound.push(s);
  log(`session ${s.id} bound as ${s.mode} "${s.system_id}"`);
  respond(s, pdu, {system_id: 'postino-smsc'});
  schedule_pump();
}

function unbind_session(s) {
  if (!s.bound) return;
  s.bound = false;
  bound = bound.filter(x => x !== s);
  requeue_inflight(s);
}

function on_submit(s, pdu) {
  stats.submits_total++;
  submits_since_config++;
  if (!s.bound || !s.tx) {
    count_response(ST.invbndsts);
    return respond(s, pdu, {command_status: ST.invbndsts});
  }
  let r;
  try {
    r = parse_submit(pdu.raw);
  } catch (e) {
    stats.malformed++;
    log(`session ${s.id} malformed submit_sm: ${e.message}`);
    count_response(ST.invmsglen);
    return respond(s, pdu, {command_status: ST.invmsglen});
  }
  let sm = r.sm;
  if (sm.length === 0 && r.tlvs.has(0x0424)) sm = r.tlvs.get(0x0424);
  const {udh, payload} = split_udh(sm, r.esm_class);
  const sm_hex = sm.toString('hex');
  const key = r.dest + ':' + sm_hex;
  const earlier = seen_keys.get(key);
  if (earlier === undefined) {
    stats.unique_submits++;
  } else if (earlier.status === null || earlier.status === ST.ok) {
    stats.duplicates++;
    if (!dup_key_set.has(key)) {
      dup_key_set.add(key);
      stats.duplicate_keys.push(key);
    }
  } else {
    stats.retries_after_refusal++;
  }
  const record = {
    dest: r.dest, dest_ton: r.dest_ton, dest_npi: r.dest_npi, source: r.source, source_ton: r.source_ton,
    source_npi: r.source_npi, esm_class: r.esm_class, data_coding: r.data_coding,
    registered_delivery: r.registered_delivery, validity_period: r.validity_period, sm_hex, udh,
    message_id: null, status: null, at_ms: Date.now(), session: s.id, system_id: s.system_id,
  };
  seen_keys.set(key, record);
  if (config.keep_submits) submits.push(record);
  const entry = {pdu, record, status: ST.ok, rule: null, payload};
  s.pending.push(entry);

  if (config.disconnect_after_submits && !disconnect_fired &&
      submits_since_config >= config.disconnect_after_submits) {
    disconnect_fired = true;
    log(`session ${s.id}: disconnecting after submit ${submits_since_config}`);
    return force_disconnect(s);
  }

  const rule = rule_for(r.dest);
  entry.rule = rule;
  if (!take_token()) {
    stats.throttled_by_rate++;
    entry.status = ST.throttled;
  } else {
    const mode = rule.submit || 'accept';
    let apply = mode !== 'accept';
    if (apply && rule.times !== undefined) {
      const tkey = r.dest + ':' + (udh ? `${udh.total}/${udh.seq}:` : '') + payload.toString('hex');
      const n = (times_seen.get(tkey) || 0) + 1;
      times_seen.set(tkey, n);
      apply = n <= rule.times;
    }
    if (apply) {
      entry.status = {throttle: ST.throttled, queue_full: ST.msgqful, temporary: ST.syserr,
        permanent: rule.status || ST.invdstadr}[mode];
    }
  }
  schedule_flush(s);
}

// Responses leave in batches a little after their submits arrive, so that a
// disconnect really catches several submits unanswered, as in a real window.
function schedule_flush(s) {
  if (s.flush_timer) return;
  s.flush_timer = config.resp_delay_ms > 0 ?
    setTimeout(flush, config.resp_delay_ms, s) : setImmediate(flush, s);
}

function flush(s) {
  s.flush_timer = null;
  if (s.dead) return;
  const batch = s.pending;
  s.pending = [];
  s.socket.cork();
  for (const entry of batch) {
    if (entry.status === ST.ok) {
      const rule = entry.rule;
      const n = next_message_id++;
      entry.message_id = format_id(n, rule.id_format);
      entry.id_number = n;
      entry.record.message_id = entry.message_id;
      if (rule.receipt_before_resp && wants_receipt(entry)) {
        send_receipt_first(s, entry);
        continue;
      }
    }
    answer(s, entry);
  }
  s.socket.uncork();
}

function answer(s, entry) {
  entry.record.status = entry.status;
  count_response(entry.status);
  s.socket.write(submit_resp_buffer(entry.pdu.sequence_number, entry.status, entry.message_id));
  if (entry.status !== ST.ok) return;
  if (!entry.receipt_made && wants_receipt(entry)) {
    // Pending from now on, so that receipts_pending 0 means "nothing to come".
    pending_deliveries.receipt++;
    stats.receipts_queued++;
    const delay = entry.rule.receipt_delay_ms || 0;
    const system_id = s.system_id;
    if (delay > 0) setTimeout(() => enqueue_ready(make_receipt(entry, system_id)), delay);
    else enqueue_ready(make_receipt(entry, system_id));
  }
}

function wants_receipt(entry) {
  const kind = entry.rule.receipt || 'delivered';
  if (kind === 'none') return false;
  const rd = entry.record.registered_delivery & 0x03;
  return rd === 1 || (rd === 2 && kind !== 'delivered');
}

// receipt_before_resp: the receipt goes out on this session now, the
// submit_sm_resp ~50 ms later, as some SMSCs do under load.
function send_receipt_first(s, entry) {
  const item = make_receipt(entry, s.system_id);
  entry.receipt_made = true;
  pending_deliveries.receipt++;
  stats.receipts_queued++;
  if (s.rx) send_item(s, item);
  else enqueue_ready(item);
  const t = setTimeout(() => {
    s.delayed.delete(entry);
    if (!s.dead) answer(s, entry);
  }, 50);
  s.delayed.add(entry);
  entry.timer = t;
}

// Marks every submit of `s` still waiting for its answer as unanswered and
// drops them; returns how many there were.
function abandon_unanswered(s) {
  const unanswered = s.pending.length + s.delayed.size;
  for (const e of s.pending) e.record.unanswered = true;
  for (const e of s.delayed) {
    e.record.unanswered = true;
    clearTimeout(e.timer);
  }
  s.pending = [];
  s.delayed.clear();
  return unanswered;
}

function force_disconnect(s) {
  stats.disconnects_forced++;
  const unanswered = abandon_unanswered(s);
  stats.unanswered_at_disconnect += unanswered;
  log(`session ${s.id}: dropped with ${unanswered} submits unanswered`);
  drop(s);
}

function on_close(s) {
  if (!sessions.has(s)) return;
  sessions.delete(s);
  s.dead = true;
  stats.closes++;
  if (s.flush_timer) {
    clearTimeout(s.flush_timer);
    clearImmediate(s.flush_timer);
    s.flush_timer = null;
  }
  stats.unanswered_at_close += abandon_unanswered(s);
  unbind_session(s);
  requeue_inflight(s);
  log(`session ${s.id} closed`);
  schedule_pump();
}

// ---------------------------------------------------------------- receipts and inbound delivery

function make_receipt(entry, system_id) {
  const rule = entry.rule;
  const kind = RECEIPT_KINDS[rule.receipt || 'delivered'];
  const other = rule.receipt_id_format === 'other';
  const shown = other ? format_id(entry.id_number, rule.id_format === 'decimal' ? 'hex' : 'decimal') :
    entry.message_id;
  const rec = entry.record;
  const form = rule.receipt_form || 'text';
  const err = rule.err || kind.err;
  const text = form === 'tlv_only' ? '' :
    `id:${shown} sub:001 dlvrd:${kind.stat === 'DELIVRD' ? '001' : '000'} submit date:${smpp_date(rec.at_ms)} ` +
    `done date:${smpp_date(Date.now())} stat:${kind.stat} err:${err.padStart(3, '0')} ` +
    `text:${receipt_text_field(decode_text(entry.payload, rec.data_coding))}`;
  const params = {
    source_addr_ton: rec.dest_ton, source_addr_npi: rec.dest_npi, source_addr: rec.dest,
    dest_addr_ton: rec.source_ton, dest_addr_npi: rec.source_npi, destination_addr: rec.source,
    esm_class: 0x04, data_coding: 0, short_message: Buffer.from(text, 'latin1'),
  };
  if (form !== 'text_only') {
    params.receipted_message_id = shown;
    params.message_state = kind.state;
  }
  rec.receipt_stat = kind.stat;
  rec.receipt_sends = 0;
  rec.receipt_acked = false;
  return {kind: 'receipt', system_id, params, record: rec, sends: 0, session: null, seq: 0, sent_at: 0};
}

function enqueue_inbound(item) {
  pending_deliveries.inbound++;
  stats.inbound_queued++;
  enqueue_ready(item);
}

function enqueue_ready(item, front) {
  const key = item.system_id === null ? '*' : item.system_id;
  let q = queues.get(key);
  if (!q) queues.set(key, q = []);
  if (front) q.unshift(item);
  else q.push(item);
  schedule_pump();
}

let pump_scheduled = false;
function schedule_pump() {
  if (pump_scheduled) return;
  pump_scheduled = true;
  setImmediate(pump);
}

function pick_session(key) {
  const n = bound.length;
  for (let i = 0; i < n; i++) {
    const s = bound[(rr_index + i) % n];
    if (s.dead || !s.rx || s.inflight.size >= config.deliver_window) continue;
    if (key !== '*' && s.system_id !== key) continue;
    rr_index = (rr_index + i + 1) % n;
    return s;
  }
  return null;
}

function pump() {
  pump_scheduled = false;
  const corked = new Set();
  for (const [key, q] of queues) {
    while (q.length) {
      const s = pick_session(key);
      if (!s) break;
      if (!corked.has(s)) {
        corked.add(s);
        s.socket.cork();
      }
      send_item(s, q.shift());
    }
  }
  for (const s of corked) s.socket.uncork();
}

function send_item(s, item) {
  const pdu = new PDU('deliver_sm', item.params);
  if (!send(s, pdu)) {
    // Not writable any more: stop choosing it before its close event arrives.
    drop(s);
    return enqueue_ready(item, true);
  }
  item.session = s;
  item.seq = pdu.sequence_number;
  item.sent_at = Date.now();
  item.sends++;
  s.inflight.set(item.seq, item);
  if (item.kind === 'receipt') {
    stats.receipts_sent++;
    if (item.sends > 1) stats.receipts_resent++;
    item.record.receipt_sends = item.sends;
  } else {
    stats.inbound_sent++;
    if (item.sends > 1) stats.inbound_resent++;
  }
}

function on_deliver_resp(s, seq, status) {
  const item = s.inflight.get(seq);
  if (!item) return;
  s.inflight.delete(seq);
  item.session = null;
  if (status === ST.ok) {
    item.acked = true;
    if (item.kind === 'receipt') {
      stats.receipts_acked++;
      pending_deliveries.receipt--;
      item.record.receipt_acked = true;
    } else {
      stats.inbound_acked++;
      pending_deliveries.inbound--;
    }
  } else {
    stats.deliver_failed++;
    item.last_status = status;
    setTimeout(() => enqueue_ready(item), config.redeliver_delay_ms);
  }
  schedule_pump();
}

// Undelivered receipts stay with the SMSC: whatever was in flight on a lost
// session goes back to the head of its queue for the next bind.
function requeue_inflight(s) {
  const items = Array.from(s.inflight.values()).reverse();
  s.inflight.clear();
  for (const item of items) {
    item.session = null;
    enqueue_ready(item, true);
  }
}

// An ESME that never answers a deliver_sm gets it again later.
setInterval(() => {
  const limit = Date.now() - config.deliver_timeout_ms;
  for (const s of bound) {
    for (const [seq, item] of s.inflight) {
      if (item.sent_at > limit) break;
      s.inflight.delete(seq);
      item.session = null;
      stats.deliver_timeouts++;
      enqueue_ready(item);
    }
  }
}, 200).unref();

function make_inbound(body) {
  if (typeof body !== 'object' || body === null) throw new Error('body must be a JSON object');
  for (const k of ['from', 'to', 'text']) {
    if (typeof body[k] !== 'string') throw new Error(`"${k}" must be a string`);
  }
  let data_coding = body.data_coding;
  let sm;
  if (data_coding === undefined) {
    const gsm = /^[\x20-\x7e\r\n]*$/.test(body.text) ? gsm_encode(body.text) : null;
    if (gsm) {
      data_coding = 0;
      sm = gsm;
    } else {
      data_coding = 8;
    }
  }
  if (!sm) {
    if (data_coding === 0) sm = gsm_encode(body.text);
    else if (data_coding === 3) sm = Buffer.from(body.text, 'latin1');
    else if (data_coding === 8) sm = Buffer.from(body.text, 'utf16le').swap16();
    else throw new Error('data_coding must be 0, 3 or 8');
    if (!sm) throw new Error('text is not representable in GSM 03.38');
  }
  const address_type = (a) => /^[0-9]+$/.test(a) ? (a.length > 6 ? [1, 1] : [0, 1]) : [5, 0];
  const [fton, fnpi] = address_type(body.from);
  const [tton, tnpi] = address_type(body.to);
  const params = {
    source_addr_ton: body.from_ton ?? fton, source_addr_npi: body.from_npi ?? fnpi, source_addr: body.from,
    dest_addr_ton: body.to_ton ?? tton, dest_addr_npi: body.to_npi ?? tnpi, destination_addr: body.to,
    esm_class: 0, data_coding,
  };
  if (sm.length <= 254) params.short_message = sm;
  else params.message_payload = sm;
  const system_id = typeof body.system_id === 'string' ? body.system_id : opts.system_id;
  const item = {kind: 'inbound', id: ++inbound_seq, system_id, params, sends: 0, session: null, seq: 0, sent_at: 0,
    acked: false, from: body.from, to: body.to, text: body.text};
  inbound_items.push(item);
  return item;
}

// ---------------------------------------------------------------- control API

function snapshot() {
  let inflight = 0;
  for (const s of sessions) inflight += s.inflight.size;
  let queued = 0;
  for (const q of queues.values()) queued += q.length;
  return Object.assign({}, stats, {
    binds_active: bound.length,
    sessions_open: sessions.size,
    receipts_pending: pending_deliveries.receipt,
    inbound_pending: pending_deliveries.inbound,
    deliver_queued: queued,
    deliver_inflight: inflight,
    next_message_id: next_message_id,
  });
}

function reset() {
  stats = fresh_stats();
  submits = [];
  seen_keys = new Map();
  dup_key_set = new Set();
  times_seen = new Map();
  submits_since_config = 0;
  disconnect_fired = false;
}

function apply_config(c) {
  config = c;
  tokens = config.burst;
  tokens_at = process.hrtime.bigint();
  times_seen = new Map();
  submits_since_config = 0;
  disconnect_fired = false;
}

function reply(res, code, obj) {
  const body = JSON.stringify(obj) + '\n';
  res.writeHead(code, {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body)});
  res.end(body);
}

function read_json(req, cb) {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size <= 1 << 20) chunks.push(c);
  });
  req.on('end', () => {
    if (size > 1 << 20) return cb(new Error('body too large'));
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return cb(null, {});
    try {
      cb(null, JSON.parse(text));
    } catch (e) {
      cb(new Error(`bad JSON: ${e.message}`));
    }
  });
}

function on_control(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const route = `${req.method} ${url.pathname}`;
  const with_body = (fn) => read_json(req, (err, body) => {
    if (err) return reply(res, 400, {error: err.message});
    try {
      fn(body);
    } catch (e) {
      reply(res, 400, {error: e.message});
    }
  });
  switch (route) {
    case 'GET /stats':
      return reply(res, 200, snapshot());
    case 'GET /submits': {
      const from = Number(url.searchParams.get('from') || 0);
      return reply(res, 200, from > 0 ? submits.slice(from) : submits);
    }
    case 'GET /config':
      return reply(res, 200, config.source);
    case 'GET /sessions':
      return reply(res, 200, Array.from(sessions).map(s => ({
        id: s.id, bound: s.bound, system_id: s.system_id, mode: s.mode, remote_port: s.remote_port,
        inflight: s.inflight.size, unanswered: s.pending.length + s.delayed.size})));
    case 'GET /inbound':
      return reply(res, 200, inbound_items.map(i => ({id: i.id, from: i.from, to: i.to, text: i.text,
        system_id: i.system_id, data_coding: i.params.data_coding, sends: i.sends, acked: i.acked})));
    case 'POST /config':
      return with_body((body) => {
        apply_config(load_config(body));
        log('configuration replaced');
        reply(res, 200, {ok: true});
      });
    case 'POST /inbound':
      return with_body((body) => {
        const item = make_inbound(body);
        enqueue_inbound(item);
        reply(res, 200, {ok: true, id: item.id, data_coding: item.params.data_coding});
      });
    case 'POST /disconnect': {
      const victims = Array.from(sessions);
      for (const s of victims) force_disconnect(s);
      return reply(res, 200, {ok: true, dropped: victims.length});
    }
    case 'POST /reset':
      reset();
      return reply(res, 200, {ok: true});
    default:
      return reply(res, 404, {error: `no route ${route}`});
  }
}

// ---------------------------------------------------------------- start and stop

function write_atomically(file, text) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

const smsc = smpp.createServer(on_session);
const control = http.createServer(on_control);
let listening = 0;

function on_listening() {
  if (++listening < 2) return;
  const smpp_port = smsc.address().port;
  const control_port = control.address().port;
  if (opts.ready_file) write_atomically(opts.ready_file, `smpp ${smpp_port}\ncontrol ${control_port}\n`);
  log(`listening: smpp ${smpp_port}, control ${control_port}`);
}

for (const server of [smsc, control]) {
  server.on('error', (e) => {
    process.stderr.write(`simulator: ${e.message}\n`);
    process.exit(1);
  });
}
smsc.listen(opts.port, opts.host, 4096, on_listening);
control.listen(opts.control_port, opts.host, on_listening);

let stopping = false;
function shutdown(why) {
  if (stopping) return;
  stopping = true;
  log(`stopping: ${why}`);
  if (opts.stats_file) {
    try {
      write_atomically(opts.stats_file, JSON.stringify(snapshot()) + '\n');
    } catch (e) {
      process.stderr.write(`simulator: cannot write ${opts.stats_file}: ${e.message}\n`);
    }
  }
  for (const s of sessions) s.socket.destroy();
  smsc.close();
  control.close();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// A test that dies without stopping us must not leave us running.
// process.ppid is fixed at start-up in Node, so ask the kernel.
function parent_alive(parent) {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent;
  } catch (e) {
    try {
      process.kill(parent, 0);
      return true;
    } catch (e2) {
      return e2.code === 'EPERM';
    }
  }
}
if (opts.exit_with_parent) {
  const parent = process.ppid;
  setInterval(() => {
    if (!parent_alive(parent)) shutdown('parent exited');
  }, 1000).unref();
}
