import { test } from 'node:test';
import { call, login, newDevice, setupCrypto, startRelay, upload } from '/work/main/packages/relay/test/helpers.js';
test('dbg', async () => {
  await setupCrypto();
  const relay = await startRelay();
  const d = newDevice();
  const s = await login(relay, d);
  s.socket.on('disconnect', (r) => console.log('disc', r));
  try { console.log(await call(s.socket, 'uploadPrekeys', upload(d, Array.from({length:30},(_,i)=>i+1)))); } catch (e) { console.log('err', e); }
  console.log(relay.logs().split('\n').slice(-6).join('\n'));
  await relay.close();
});
