// resp_node_redis.js: node-redis (Debian node-redis) against chorusd's RESP
// gateway (test_node_resp.c runs it). Usage: node resp_node_redis.js PREFIX
// KILL_PID PORT...: the first port's node is killed (SIGKILL) half way and
// the client goes on through the next port. One line per check; exit 0
// when every check held, else 1 after the failed check's line.
'use strict';
const { createClient } = require('redis');

function check(what, got, want) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) {
    console.log(`FAIL ${what}: got ${g}, want ${w}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

async function connect(port) {
  const c = createClient({
    socket: { host: '127.0.0.1', port: Number(port), reconnectStrategy: false,
              connectTimeout: 5000 },
  });
  c.on('error', () => {}); // surfaced by the commands themselves
  await c.connect();
  return c;
}

async function main() {
  const [prefix, killPid, ...ports] = process.argv.slice(2);
  const k = (s) => `${prefix}:${s}`;
  let c = await connect(ports[0]);
  check('ping', await c.ping(), 'PONG');
  check('set', await c.set(k('a'), '1'), 'OK');
  check('get', await c.get(k('a')), '1');
  check('get missing', await c.get(k('missing')), null);
  check('incr', await c.incr(k('n')), 1);
  check('sadd', await c.sAdd(k('s'), ['x', 'y']), 2);
  check('scard', await c.sCard(k('s')), 2);
  check('mset', await c.mSet([k('m1'), 'a', k('m2'), 'b']), 'OK');
  check('mget', await c.mGet([k('m1'), k('m2'), k('m3')]), ['a', 'b', null]);
  check('del', await c.del([k('m1'), k('m3')]), 1);
  check('exists', await c.exists([k('m1'), k('m2')]), 1);
  // Pipelining: node-redis sends commands issued together in one write.
  const ps = [];
  for (let i = 0; i < 100; i++) {
    ps.push(c.set(k(`p${i}`), String(i)));
    ps.push(c.get(k(`p${i}`)));
  }
  const out = await Promise.all(ps);
  const want = [];
  for (let i = 0; i < 100; i++) want.push('OK', String(i));
  check('pipeline order', out, want);
  // A transaction is refused cleanly, and the connection goes on.
  let refused = false;
  try {
    await c.multi().set(k('t'), '1').exec();
  } catch (e) {
    refused = /no transactions/.test(String(e && (e.message || e)));
    if (!refused && e && e.errors)
      refused = e.errors.some((x) => /no transactions/.test(String(x)));
  }
  check('multi refused', refused, true);
  check('after multi', await c.get(k('a')), '1');
  let wrong = '';
  try { await c.incr(k('a')); } catch (e) { wrong = String(e.message); }
  check('wrongtype', wrong.startsWith('WRONGTYPE'), true);
  // Reconnect after a node is killed.
  check('before kill', await c.get(k('p7')), '7');
  process.kill(Number(killPid), 'SIGKILL');
  let lost = false;
  try {
    await c.get(k('p7'));
    await c.get(k('p7'));
  } catch (e) {
    lost = true;
  }
  check('connection lost', lost, true);
  try { await c.disconnect(); } catch (e) { /* already gone */ }
  for (const port of ports.slice(1)) {
    try { c = await connect(port); break; } catch (e) { /* next */ }
  }
  check('reconnected read', await c.get(k('p7')), '7');
  check('reconnected write', await c.set(k('after'), 'x'), 'OK');
  check('reconnected read back', await c.get(k('after')), 'x');
  await c.quit();
  console.log('all ok');
}

main().catch((e) => { console.log(`FAIL ${e && e.stack || e}`); process.exit(1); });
