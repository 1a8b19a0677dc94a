#!/usr/bin/env node
// E2B's own SDK (the "e2b" npm package) against vmsan-agent's envd side,
// for tests/envd.bats.  A stand-in for the control API answers
// Sandbox.create with the agent's URL and token (what `vmsan serve` does);
// the SDK then speaks envd to the agent, with the version the agent's
// /health reports.  Usage:
//   e2b-envd.mjs AGENT_URL TOKEN SCENARIO DIR
// DIR is a scratch directory the scenario may use.  AGENT_URL "serve" (and
// no TOKEN: "-") runs the scenario in a new sandbox of vmsan serve, named by
// E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY, killed at the end.  Each scenario prints
// one JSON object of what it saw; a failure prints {"error":...} and
// exits 1.
import http from 'node:http';
import { Sandbox, CommandExitError, FileNotFoundError } from 'e2b';

const [agentUrl, token, scenario, dir] = process.argv.slice(2);
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// until(fn): fn() until it is truthy, at most 10 s.
async function until(fn, what) {
  for (let i = 0; i < 200; i++) {
    const v = await fn();
    if (v) return v;
    await sleep(50);
  }
  throw new Error('timed out waiting for ' + what);
}

// The control API's part: POST /v2/sandboxes, DELETE /sandboxes/{id}.
async function controlApi(envdVersion) {
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v2/sandboxes') {
        res.writeHead(201, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({
          sandboxID: 'vmsan-test', templateID: JSON.parse(body).templateID, clientID: 'vmsan',
          envdVersion, envdAccessToken: token,
        }));
      } else {
        res.writeHead(204);
        res.end();
      }
    });
  });
  await new Promise((res) => srv.listen(0, '127.0.0.1', res));
  srv.unref();
  return `http://127.0.0.1:${srv.address().port}`;
}

async function sandbox() {
  if (agentUrl === 'serve') {   // the real thing: vmsan serve, named by E2B_API_URL and E2B_SANDBOX_URL
    const sbx = await Sandbox.create('base', { timeoutMs: 300000 });
    return { sbx, envdVersion: sbx.envdApi.version };
  }
  const health = await (await fetch(agentUrl + '/health')).json();
  const apiUrl = await controlApi(health.envdVersion);
  const sbx = await Sandbox.create('base', { apiKey: 'e2b_vmsan_test', apiUrl, sandboxUrl: agentUrl });
  return { sbx, envdVersion: health.envdVersion };
}

const scenarios = {
  // commands.run: streamed output, exit codes, a failing command.
  async run(sbx) {
    const out = [], err = [];
    const ok = await sbx.commands.run('echo one; echo two >&2; printf "%s" "$HOME:$(id -u):$PWD:$FOO"', {
      onStdout: (d) => out.push(d), onStderr: (d) => err.push(d), envs: { FOO: 'bar' }, cwd: dir,
    });
    let fail;
    try {
      await sbx.commands.run('echo partial; echo bad >&2; exit 3');
    } catch (e) {
      fail = { name: e.constructor.name, exitCode: e.exitCode, stdout: e.stdout, stderr: e.stderr,
        error: e.error, isExitError: e instanceof CommandExitError };
    }
    const missing = await sbx.commands.run('no-such-command-here').catch((e) => ({ exitCode: e.exitCode }));
    return { exitCode: ok.exitCode, stdout: ok.stdout, stderr: ok.stderr, streamed: out.join(''),
      streamedErr: err.join(''), fail, missing: missing.exitCode };
  },

  // A background command: listed, connected to again, killed.
  async background(sbx) {
    const h = await sbx.commands.run('i=0; while :; do i=$((i+1)); echo tick$i; sleep 0.1; done',
      { background: true, timeoutMs: 0 });
    await until(() => h.stdout.includes('tick2'), 'output');
    const listed = (await sbx.commands.list()).map((p) => ({ pid: p.pid, cmd: p.cmd, args: p.args }));
    await h.disconnect();
    const seen = [];
    const again = await sbx.commands.connect(h.pid, { onStdout: (d) => seen.push(d), timeoutMs: 0 });
    await until(() => seen.join('').includes('tick'), 'output after connect');
    const killed = await sbx.commands.kill(h.pid);
    const end = await again.wait().catch((e) => ({ exitCode: e.exitCode, error: e.error }));
    await sleep(100);
    const after = await sbx.commands.list();
    const killedAgain = await sbx.commands.kill(h.pid);
    const connectGone = await sbx.commands.connect(h.pid).then(() => 'connected', (e) => e.constructor.name);
    return { pid: h.pid, listed, killed, end, listedAfter: after.length, killedAgain, connectGone };
  },

  // stdin: sendStdin, closeStdin.
  async stdin(sbx) {
    const h = await sbx.commands.run('cat; echo done', { background: true, stdin: true });
    await h.sendStdin('hello ');
    await sbx.commands.sendStdin(h.pid, 'world\n');
    await h.closeStdin();
    const r = await h.wait();
    const noStdin = await sbx.commands.run('sleep 5', { background: true });
    const refused = await noStdin.sendStdin('x').then(() => 'sent', (e) => e.message);
    await noStdin.kill();
    return { stdout: r.stdout, exitCode: r.exitCode, refused };
  },

  // A PTY: input, resize, kill.
  async pty(sbx) {
    let out = '';
    const dec = new TextDecoder();
    const h = await sbx.pty.create({ cols: 80, rows: 24, cwd: dir, onData: (d) => { out += dec.decode(d); },
      timeoutMs: 0 });
    await sbx.pty.sendInput(h.pid, new TextEncoder().encode('echo $((6*7))x; stty size; tty\n'));
    await until(() => out.includes('42x') && out.includes('24 80'), 'pty output');
    await sbx.pty.resize(h.pid, { cols: 100, rows: 30 });
    await sbx.pty.sendInput(h.pid, new TextEncoder().encode('stty size\n'));
    await until(() => out.includes('30 100'), 'resized');
    const killed = await sbx.pty.kill(h.pid);
    const end = await h.wait().catch((e) => ({ exitCode: e.exitCode, error: e.error }));
    return { answered: out.includes('42x'), resized: out.includes('30 100'), tty: /\/dev\/pts\/\d+/.test(out),
      killed, end };
  },

  // The file system: write, read, list, exists, makeDir, rename, remove,
  // getInfo, metadata, gzip.
  async files(sbx) {
    const r = {};
    const w = await sbx.files.write(`${dir}/a/b/one.txt`, 'hello files\n');
    r.write = { name: w.name, path: w.path, type: w.type };
    r.read = await sbx.files.read(`${dir}/a/b/one.txt`);
    const bytes = new Uint8Array(70000).map((_, i) => (i * 7) & 255);
    await sbx.files.write(`${dir}/bin.dat`, bytes.buffer);
    const back = await sbx.files.read(`${dir}/bin.dat`, { format: 'bytes' });
    r.bytesEqual = back.length === bytes.length && back.every((v, i) => v === bytes[i]);
    const many = await sbx.files.write([{ path: `${dir}/m1`, data: 'one' }, { path: `${dir}/m2`, data: 'two' }]);
    r.many = many.map((e) => e.name);
    const gz = await sbx.files.write(`${dir}/gz.txt`, 'squeezed', { gzip: true });
    r.gzip = { name: gz.name, back: await sbx.files.read(`${dir}/gz.txt`) };
    const md = await sbx.files.write(`${dir}/md.txt`, 'x', { metadata: { Owner: 'vmsan', k2: 'v 2' } });
    r.metadataWritten = md.metadata;
    r.metadataInfo = (await sbx.files.getInfo(`${dir}/md.txt`)).metadata;
    r.exists = [await sbx.files.exists(`${dir}/a/b/one.txt`), await sbx.files.exists(`${dir}/nope`)];
    r.makeDir = [await sbx.files.makeDir(`${dir}/new/deep`), await sbx.files.makeDir(`${dir}/new/deep`)];
    const info = await sbx.files.getInfo(`${dir}/a/b/one.txt`);
    r.info = { name: info.name, type: info.type, size: info.size, permissions: info.permissions,
      owner: info.owner, mtimeOk: Math.abs(info.modifiedTime - Date.now()) < 60000 };
    r.list = (await sbx.files.list(dir)).map((e) => `${e.name}:${e.type}`);
    r.listDeep = (await sbx.files.list(dir, { depth: 3 })).map((e) => e.path.slice(dir.length + 1));
    const moved = await sbx.files.rename(`${dir}/a/b/one.txt`, `${dir}/moved/one.txt`);
    r.rename = { path: moved.path, old: await sbx.files.exists(`${dir}/a/b/one.txt`) };
    await sbx.files.remove(`${dir}/a`);
    await sbx.files.remove(`${dir}/never-was`);
    r.removed = await sbx.files.exists(`${dir}/a`);
    r.readMissing = await sbx.files.read(`${dir}/nope`).then(() => 'read', (e) => e instanceof FileNotFoundError);
    r.listMissing = await sbx.files.list(`${dir}/nope`).then(() => 'listed', (e) => e instanceof FileNotFoundError);
    return r;
  },

  // watchDir: events as they happen, recursive.
  async watch(sbx) {
    const events = [];
    const wh = await sbx.files.watchDir(dir, (e) => { events.push(`${e.type}:${e.name}`); },
      { recursive: true, includeEntry: true, timeoutMs: 0 });
    await sbx.files.write(`${dir}/w1.txt`, 'one');
    await sbx.files.makeDir(`${dir}/sub`);
    // the agent watches a new directory before it tells of it
    await until(() => events.includes('create:sub'), 'the new directory');
    await sbx.files.write(`${dir}/sub/w2.txt`, 'two');
    await sbx.files.remove(`${dir}/w1.txt`);
    await until(() => events.includes('remove:w1.txt') && events.includes('write:sub/w2.txt'), 'events');
    await wh.stop();
    return { events };
  },

  // Another user, named the way the SDK names it.
  async user(sbx) {
    const r = await sbx.commands.run('id -un; echo $HOME', { user: 'nobody' });
    const w = await sbx.files.write(`${dir}/by-nobody.txt`, 'n', { user: 'nobody' });
    const info = await sbx.files.getInfo(w.path);
    const denied = await sbx.files.write('/root/not-nobodys.txt', 'n', { user: 'nobody' })
      .then(() => 'written', (e) => e.constructor.name);
    const unknown = await sbx.commands.run('true', { user: 'no-such-user-here' })
      .then(() => 'ran', (e) => e.constructor.name);
    return { who: r.stdout, owner: info.owner, denied, unknown };
  },

  // Signed URLs (downloadUrl, uploadUrl): no token, the token's signature.
  async urls(sbx) {
    const up = await sbx.uploadUrl(`${dir}/signed.txt`);
    const form = new FormData();
    form.append('file', new Blob(['via a signed URL\n']), 'ignored-name');
    const put = await fetch(up, { method: 'POST', body: form });
    const down = await sbx.downloadUrl(`${dir}/signed.txt`, { useSignatureExpiration: 60 });
    const got = await fetch(down);
    const other = new URL(down);
    other.searchParams.set('path', '/etc/passwd');
    const tampered = await fetch(other);
    const expired = await fetch(await sbx.downloadUrl(`${dir}/signed.txt`, { useSignatureExpiration: -5 }));
    const asRead = new URL(up);   // a write's signature is not a read's
    const forWrite = await fetch(asRead);
    return { upload: put.status, uploaded: (await put.json()).map((e) => e.path), download: got.status,
      body: await got.text(), tampered: tampered.status, expired: [expired.status, (await expired.json()).message],
      writeAsRead: forWrite.status, signed: /[?&]signature=v1_/.test(down) };
  },

  // A command's timeout (timeoutMs, Connect-Timeout-Ms on the wire) ends
  // it: the agent kills it.
  async timeout(sbx) {
    const t0 = Date.now();
    const err = await sbx.commands.run('sleep 30', { timeoutMs: 1500 }).then(() => 'ran', (e) => e.constructor.name);
    const elapsed = Date.now() - t0;
    await sleep(300);
    const left = (await sbx.commands.list()).filter((p) => p.args.includes('sleep 30')).length;
    return { err, elapsedOk: elapsed >= 1400 && elapsed < 10000, left };
  },

  // StreamInput, the client stream the SDK does not use (fetch cannot
  // stream a request body in browsers): envelopes sent as they come.
  async streaminput(sbx) {
    const h = await sbx.commands.run('cat', { background: true, stdin: true });
    const env = (o) => {
      const b = Buffer.from(JSON.stringify(o));
      const head = Buffer.alloc(5);
      head.writeUInt32BE(b.length, 1);
      return Buffer.concat([head, b]);
    };
    const b64 = (x) => Buffer.from(x).toString('base64');
    const body = new ReadableStream({
      async start(c) {
        c.enqueue(env({ start: { process: { pid: h.pid } } }));
        await sleep(200);
        c.enqueue(env({ data: { input: { stdin: b64('streamed ') } } }));
        c.enqueue(env({ keepalive: {} }));
        await sleep(200);
        c.enqueue(env({ data: { input: { stdin: b64('input\n') } } }));
        c.close();
      },
    });
    const res = await fetch(`${agentUrl}/process.Process/StreamInput`, {
      method: 'POST', body, duplex: 'half',
      headers: { 'Content-Type': 'application/connect+json', 'X-Access-Token': token },
    });
    const raw = Buffer.from(await res.arrayBuffer());
    const answer = [];
    for (let o = 0; o + 5 <= raw.length; o += 5 + raw.readUInt32BE(o + 1))
      answer.push(`${raw[o]}:${raw.subarray(o + 5, o + 5 + raw.readUInt32BE(o + 1))}`);
    await h.closeStdin();
    const r = await h.wait();
    return { status: res.status, answer, stdout: r.stdout };
  },

  // In a guest: a command (the SDK asks for /bin/bash; a busybox image
  // has none), a file both ways.
  async guest(sbx) {
    const r = await sbx.commands.run('echo "$0"; echo ok; hostname');
    await sbx.files.write(`${dir}/from-sdk.txt`, 'written by the SDK\n');
    const cat = await sbx.commands.run(`cat ${dir}/from-sdk.txt`);
    return { stdout: r.stdout, cat: cat.stdout, read: await sbx.files.read(`${dir}/from-sdk.txt`) };
  },
};

try {
  const { sbx, envdVersion } = await sandbox();
  const result = await scenarios[scenario](sbx);
  if (agentUrl === 'serve') await sbx.kill();
  console.log(JSON.stringify({ envdVersion, ...result }));
  process.exit(0);
} catch (e) {
  console.log(JSON.stringify({ error: `${e.constructor.name}: ${e.message}` }));
  process.exit(1);
}
