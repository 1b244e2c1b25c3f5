import { initCrypto, Account } from '@parley/protocol';
await initCrypto('node');
const msg = new Uint8Array(100);
const bob = Account.create(); bob.generateOneTimePrekeys(4000);
const alice = Account.create();
const mode = process.argv[2];
if (mode === 'est') {
  const s = performance.now(); let n = 0;
  while (performance.now() - s < 4000) { const a = alice.createOutboundSession(bob.bundle()); bob.createInboundSession(a.encrypt(msg)); n++; }
  console.log('est/s', Math.round(n / 4));
} else {
  const a = alice.createOutboundSession(bob.bundle()); const { session: b } = bob.createInboundSession(a.encrypt(msg)); a.decrypt(b.encrypt(msg));
  const s = performance.now(); let n = 0;
  while (performance.now() - s < 4000) { b.decrypt(a.encrypt(msg)); a.decrypt(b.encrypt(msg)); n += 2; }
  console.log('pp msgs/s', Math.round(n / 4));
}
