import { initCrypto, Account } from '@parley/protocol';
const backend = (process.argv[2] ?? 'node') as 'node';
await initCrypto(backend);
const msg = new Uint8Array(100);
function t(name: string, n: number, f: () => void) { for (let i = 0; i < Math.min(50, n); i++) f(); const s = performance.now(); for (let i = 0; i < n; i++) f(); const ms = performance.now() - s; console.log(backend, name, Math.round(n / ms * 1000), 'ops/s'); }
const bob = Account.create(); bob.generateOneTimePrekeys(3000);
const alice = Account.create();
t('establish', backend === 'noble' ? 30 : 1000, () => { const a = alice.createOutboundSession(bob.bundle()); bob.createInboundSession(a.encrypt(msg)); });
const a = alice.createOutboundSession(bob.bundle()); const { session: b } = bob.createInboundSession(a.encrypt(msg)); a.decrypt(b.encrypt(msg));
t('one-direction', 20000, () => { b.decrypt(a.encrypt(msg)); });
t('ping-pong', backend === 'noble' ? 30 : 2000, () => { b.decrypt(a.encrypt(msg)); a.decrypt(b.encrypt(msg)); });
