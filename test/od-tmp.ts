import { initCrypto, Account } from '@parley/protocol';
await initCrypto('node');
const msg = new Uint8Array(100);
const bob = Account.create(); bob.generateOneTimePrekeys(10);
const alice = Account.create();
const a = alice.createOutboundSession(bob.bundle()); const { session: b } = bob.createInboundSession(a.encrypt(msg)); a.decrypt(b.encrypt(msg));
for (let r = 0; r < 3; r++) { const s = performance.now(); for (let i = 0; i < 30000; i++) b.decrypt(a.encrypt(msg)); console.log('one-dir', Math.round(30000 / (performance.now() - s) * 1000)); }
