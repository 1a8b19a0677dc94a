#!/usr/bin/env node
// An independent WebSocket client (the npm "ws" package) for the agent's
// /ws/shell protocol, used by tests/agent.bats.  Prints one line per event:
//   session <id> | text <message> | matched | close <code> <reason> | timeout
// and, at the end, "output <json string of everything the PTY sent>".
'use strict';
const WebSocket = require('ws');

const args = process.argv.slice(2);
const url = args.shift();
const opt = { send: [], expect: null, big: 0, wait: 5000, auth: 'header', stay: false };
while (args.length) {
  const a = args.shift();
  if (a === '--token') opt.token = args.shift();
  else if (a === '--send') opt.send.push(args.shift());
  else if (a === '--expect') opt.expect = args.shift();
  else if (a === '--big') opt.big = Number(args.shift());
  else if (a === '--wait') opt.wait = Number(args.shift());
  else if (a === '--query-token') opt.auth = 'query';
  else if (a === '--stay') opt.stay = true;
  else { console.error('unknown option ' + a); process.exit(2); }
}
const target = opt.auth === 'query' ? url + (url.includes('?') ? '&' : '?') + 'token=' + opt.token : url;
const headers = opt.auth === 'header' ? { Authorization: 'Bearer ' + opt.token } : {};
const ws = new WebSocket(target, { headers });
let out = '';
let matched = false;
const frame = (type, payload) => Buffer.concat([Buffer.from([type]), Buffer.from(payload || '')]);
const finish = (code) => {
  console.log('output ' + JSON.stringify(out));
  process.exit(code);
};
const timer = setTimeout(() => { console.log('timeout'); ws.terminate(); finish(opt.stay ? 0 : 3); }, opt.wait);
ws.on('unexpected-response', (req, res) => {
  console.log('http ' + res.statusCode);
  clearTimeout(timer);
  finish(0);
});
ws.on('open', () => {
  ws.send(frame(2));
  ws.send(Buffer.from([1, 0, 100, 0, 30]));
  for (const s of opt.send) ws.send(frame(0, s));
  if (opt.big) ws.send(Buffer.alloc(opt.big, 0));
});
ws.on('message', (data, isBinary) => {
  if (!isBinary) {
    const t = data.toString();
    const m = /"sessionId":"([0-9a-f]+)"/.exec(t);
    console.log(m ? 'session ' + m[1] : 'text ' + t);
    return;
  }
  if (data[0] === 0) out += data.subarray(1).toString('utf8');
  if (opt.expect && !matched && out.includes(opt.expect)) {
    matched = true;
    console.log('matched');
    if (!opt.stay) { clearTimeout(timer); ws.close(1000); setTimeout(() => finish(0), 50); }
  }
});
ws.on('close', (code, reason) => {
  console.log('close ' + code + ' ' + reason.toString());
  clearTimeout(timer);
  finish(0);
});
ws.on('error', (e) => { console.log('error ' + e.message); });
