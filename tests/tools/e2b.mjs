// E2B's own SDK (the e2b package from npm, unmodified) driving vmsan serve:
// one step per run, its result as one JSON line.  The environment names the
// server: E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY.
//
//   node e2b.mjs create TEMPLATE [METADATA_JSON] [TIMEOUT_MS] [NETWORK_JSON]
//   node e2b.mjs list [METADATA_JSON] | info ID | kill ID | timeout ID MS
//   node e2b.mjs pause ID | connect ID | metrics ID | network ID NETWORK_JSON | host ID PORT
//   node e2b.mjs run ID CMD            (commands.run: stdout, stderr, exitCode)
import { Sandbox, CommandExitError } from 'e2b';

const [step, ...a] = process.argv.slice(2);
const out = (x) => console.log(JSON.stringify(x));
const json = (s, d) => (s === undefined || s === '' ? d : JSON.parse(s));

const steps = {
  async create(template, md, timeoutMs, network) {
    const t0 = performance.now();
    const s = await Sandbox.create(template, {
      metadata: json(md, undefined), timeoutMs: json(timeoutMs, undefined), network: json(network, undefined),
    });
    return { id: s.sandboxId, ms: performance.now() - t0 };
  },
  async list(md) {
    const items = await Sandbox.list(md ? { query: { metadata: json(md) } } : {}).nextItems();
    return items.map((s) => ({ id: s.sandboxId, state: s.state, metadata: s.metadata, template: s.templateId }));
  },
  async info(id) {
    const s = await Sandbox.getInfo(id);
    return { id: s.sandboxId, state: s.state, endAt: s.endAt, metadata: s.metadata };
  },
  async kill(id) { return { killed: await Sandbox.kill(id) }; },
  async timeout(id, ms) { await Sandbox.setTimeout(id, Number(ms)); return { ok: true }; },
  async pause(id) { return { paused: await Sandbox.pause(id) }; },
  async connect(id) { const s = await Sandbox.connect(id); return { id: s.sandboxId, running: await s.isRunning() }; },
  async host(id, port) {
    const s = await Sandbox.connect(id);
    return { host: s.getHost(Number(port)), trafficAccessToken: s.trafficAccessToken ?? null };
  },
  async metrics(id) { return await Sandbox.getMetrics(id); },
  async network(id, n) { await Sandbox.updateNetwork(id, json(n)); return { ok: true }; },
  async run(id, cmd) {
    const s = await Sandbox.connect(id);
    try {
      const r = await s.commands.run(cmd);
      return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode };
    } catch (e) {
      if (e instanceof CommandExitError) return { stdout: e.stdout, stderr: e.stderr, exitCode: e.exitCode };
      throw e;
    }
  },
};

try {
  if (!steps[step]) throw new Error(`unknown step ${step}`);
  out(await steps[step](...a));
} catch (e) {
  out({ error: e.name, message: String(e.message).slice(0, 300) });
  process.exit(1);
}
