// The SDK side of bench/serve.sh: E2B's SDK (tests/tools/node_modules/e2b)
// against vmsan serve, timed inside node (its start-up is not counted).
//   node e2b-bench.mjs first            create, then the first commands.run('true'): ms of each,
//                                       in a fresh process and again in the same one
//   node e2b-bench.mjs rtt ID N         N commands.run('true') on sandbox ID: ms of each
//   node e2b-bench.mjs many N           N sandboxes created at once, then killed: wall ms
import { Sandbox } from 'e2b';

const now = () => performance.now();
const [what, ...a] = process.argv.slice(2);

if (what === 'first') {
  const t0 = now();
  const s = await Sandbox.create('base');
  const t1 = now();
  await s.commands.run('true');
  const t2 = now();
  await s.kill();
  // the same again in this process: what node's first request costs
  // (its HTTP client, connections, code not yet compiled) left out
  const t3 = now();
  const w = await Sandbox.create('base');
  const t4 = now();
  await w.commands.run('true');
  const t5 = now();
  await w.kill();
  console.log(JSON.stringify({ create: t1 - t0, firstRun: t2 - t1, total: t2 - t0,
                               createWarm: t4 - t3, firstRunWarm: t5 - t4, totalWarm: t5 - t3 }));
} else if (what === 'rtt') {
  const s = await Sandbox.connect(a[0]);
  const ms = [];
  for (let i = 0; i < Number(a[1]); i++) {
    const t = now();
    await s.commands.run('true');
    ms.push(now() - t);
  }
  console.log(JSON.stringify(ms));
} else if (what === 'many') {
  const t0 = now();
  const boxes = await Promise.all(Array.from({ length: Number(a[0]) }, () => Sandbox.create('base')));
  const t1 = now();
  await Promise.all(boxes.map((s) => s.kill()));
  console.log(JSON.stringify({ wall: t1 - t0, n: boxes.length }));
} else {
  console.error('usage: e2b-bench.mjs first | rtt ID N | many N');
  process.exit(100);
}
