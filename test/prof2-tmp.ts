import { initCrypto, Account } from '@parley/protocol';
await initCrypto('node');
const msg = new Uint8Array(100);
const bob = Account.create(); bob.generateOneTimePrekeys(10); const alice = Account.create();
const a = alice.createOutboundSession(bob.bundle()); const { session: b } = bob.createInboundSession(a.encrypt(msg)); a.decrypt(b.encrypt(msg));
const s = performance.now(); let n = 0;
while (performance.now() - s < 8000) { for (let i = 0; i < 1000; i++) b.decrypt(a.encrypt(msg)); n += 1000; }
console.log('one-dir msgs/s', Math.round(n / 8));
