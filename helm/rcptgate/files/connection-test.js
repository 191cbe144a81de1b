// `helm test` probe, run with `node -e` in the rcptgate image (CommonJS, no dependencies).
// Checks GET /healthz on the http port, then one socketmap request that has a fixed answer:
// the `domains` map answers "NOTFOUND " for a domain nobody serves (.invalid never is).
const net = require('node:net');
const host = process.env.TARGET_HOST;
const fail = (message) => {
  console.error(`FAIL ${message}`);
  process.exit(1);
};
const timer = setTimeout(() => fail('no answer within 20 s'), 20000);

function socketmapRequest(port, request) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host);
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${Buffer.byteLength(request)}:${request},`));
    socket.on('data', (chunk) => {
      reply += chunk;
      if (/^\d+:[^]*,$/.test(reply)) socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(reply));
  });
}

(async () => {
  const res = await fetch(`http://${host}:${process.env.HTTP_PORT}/healthz`);
  if (res.status !== 200) fail(`GET /healthz answered ${res.status}`);
  console.log('ok GET /healthz 200');
  if (process.env.SOCKETMAP_PORT) {
    const reply = await socketmapRequest(Number(process.env.SOCKETMAP_PORT), 'domains rcptgate-helm-test.invalid');
    if (reply !== '9:NOTFOUND ,') fail(`socketmap answered ${JSON.stringify(reply)}, expected "9:NOTFOUND ,"`);
    console.log('ok socketmap domains lookup answered NOTFOUND');
  }
  clearTimeout(timer);
})().catch((err) => fail(err.message));
