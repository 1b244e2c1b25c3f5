/**
 * Generator of the frozen protocol transcript `golden-v4.json` (`golden-v1.json`,
 * `golden-v2.json` and `golden-v3.json` are the frozen transcripts of versions 1 to 3, kept:
 * golden.test.ts checks that their pickles are still read).
 *
 * v2: session pickle version 2 (a responder keeps the prekey ids that opened it). The seed, the
 * wire format and every ciphertext are the same as v1's.
 * v3: account pickle version 2 (each signed prekey keeps its retirement time and the base keys
 * it accepted, THREATS C6). Seed, wire format, ciphertexts and session pickles are v2's.
 * v4: session pickle version 3 (each skipped key keeps its skip time, each skipped chain the
 * ranges of its evicted counters). Seed, wire format, ciphertexts and accounts are v3's; each
 * delivery records the receiver's clock (`now`), one minute after the previous one, since skip
 * times are part of the session pickle.
 *
 * Run from the repository root to (re)write the file:
 *   node --import tsx packages/protocol/test/golden/generate.ts
 *
 * The transcript is deterministic: randomness (`randomBytes`, `x25519Generate`,
 * `ed25519Generate`) comes from a seeded SHA-256 stream installed on the active provider by the
 * test helper `unsafeDeterministicCrypto` (never by `src/`), and account creation times are
 * fixed. Everything else is the real protocol through its public API, so the same code run on
 * any backend must reproduce the file byte for byte (golden.test.ts checks that on node,
 * sodium and noble). Regenerate only for a deliberate, versioned format change: bump
 * GENERATOR_VERSION and the wire/pickle versions together and keep the old file.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Account, Session, associatedData, initCrypto, safetyNumber, toHex, type PublicIdentity } from '../../src/index.js';
import { deriveX3dh } from '../../src/x3dh.js';
import { SeededStream, str, text, unsafeDeterministicCrypto } from '../helpers/protocol.js';

export const GENERATOR_VERSION = 4;
export const GOLDEN_PATH = join(dirname(fileURLToPath(import.meta.url)), 'golden-v4.json');
/** The frozen version-3 transcript (session pickle version 2): its pickles must still be read. */
export const GOLDEN_V3_PATH = join(dirname(fileURLToPath(import.meta.url)), 'golden-v3.json');
/** The frozen version-2 transcript (account pickle version 1): its pickles must still be read. */
export const GOLDEN_V2_PATH = join(dirname(fileURLToPath(import.meta.url)), 'golden-v2.json');
/** The frozen version-1 transcript: its pickles must still be read. */
export const GOLDEN_V1_PATH = join(dirname(fileURLToPath(import.meta.url)), 'golden-v1.json');
const SEED = 'parley golden transcript v1';
const NOW = 1_700_000_000_000;

export interface GoldenMessage {
  /** Position in send order (0 = the prekey message). */
  readonly index: number;
  readonly from: 'alice' | 'bob';
  readonly plaintext: string;
  readonly wire: string;
}

export interface GoldenDelivery {
  readonly index: number;
  /** The receiver's session pickle just before this message arrived. */
  readonly receiverBefore: string;
  /** The receiver's state digest right after this message was decrypted. */
  readonly receiverDigest: string;
  /** The receiver's clock (ms) for this decrypt (v4 on; earlier transcripts did not pass one). */
  readonly now?: number;
}

export interface GoldenV1 {
  readonly generatorVersion: number;
  readonly note: string;
  readonly seed: string;
  readonly now: number;
  readonly x3dhKnownAnswer: { readonly dhs: string[]; readonly sk: string; readonly sharedHka: string; readonly sharedNhkb: string; readonly ad: string };
  readonly alice: { readonly accountPickle: string; readonly identity: Record<keyof PublicIdentity, string>; readonly deviceId: string };
  readonly bob: { readonly accountPickle: string; readonly identity: Record<keyof PublicIdentity, string>; readonly deviceId: string };
  readonly bundle: {
    readonly signedPrekey: { readonly id: number; readonly createdAt: number; readonly publicKey: string; readonly signature: string };
    readonly oneTimePrekey: { readonly id: number; readonly publicKey: string };
  };
  readonly associatedData: string;
  readonly safetyNumber: string;
  readonly sessionId: string;
  /** Alice's session right after she wrote the prekey message, and Bob's right after accepting it. */
  readonly aliceSessionAfterPrekey: string;
  readonly bobSessionAfterPrekey: string;
  readonly messages: GoldenMessage[];
  /** Delivery order after the prekey message (two pairs arrive out of order). */
  readonly deliveries: GoldenDelivery[];
  readonly final: {
    readonly aliceSession: string;
    readonly bobSession: string;
    readonly aliceDigest: string;
    readonly bobDigest: string;
    readonly aliceAccount: string;
    readonly bobAccount: string;
  };
}

const identityHex = (id: PublicIdentity) => ({ signingKey: toHex(id.signingKey), dhKey: toHex(id.dhKey), binding: toHex(id.binding) });

/** Send schedule after the prekey message: who writes, then the delivery order of those indexes. */
const SENDS: ('alice' | 'bob')[] = ['bob', 'bob', 'alice', 'alice', 'alice', 'bob', 'alice', 'bob', 'alice', 'bob'];
const DELIVERY_ORDER = [2, 1, 3, 5, 4, 6, 7, 8, 9, 10]; // 2 before 1, and 5 before 4

/** Builds the transcript with the active backend. Deterministic for a given source tree. */
export function generateGolden(): GoldenV1 {
  return unsafeDeterministicCrypto(SEED, () => {
    // X3DH known answer: the KDF over fixed DH outputs and identities, independent of any DH.
    const kat = new SeededStream(`${SEED} / x3dh`);
    const dhs = [kat.next(32), kat.next(32), kat.next(32), kat.next(32)];
    const katIdentities = [0, 1].map(() => ({ signingKey: kat.next(32), dhKey: kat.next(32), binding: kat.next(64) }));
    const dhHex = dhs.map(toHex);
    const x3dh = deriveX3dh(dhs, katIdentities[0]!, katIdentities[1]!);

    const alice = Account.create({ now: NOW });
    const bob = Account.create({ now: NOW });
    bob.generateOneTimePrekeys(2);
    const bobAccountBefore = toHex(bob.pickle());
    const bundle = bob.bundle();
    const a = alice.createOutboundSession(bundle);
    const messages: GoldenMessage[] = [];
    const first = a.encrypt(text('golden 0: hello bob'));
    messages.push({ index: 0, from: 'alice', plaintext: 'golden 0: hello bob', wire: toHex(first) });
    const aliceSessionAfterPrekey = toHex(a.pickle());
    const inbound = bob.createInboundSession(first);
    if (str(inbound.plaintext) !== messages[0]!.plaintext) throw new Error('golden: prekey message did not round-trip');
    const b = inbound.session;
    const bobSessionAfterPrekey = toHex(b.pickle());

    const sessions = { alice: a, bob: b };
    const wires: Uint8Array[] = [first];
    const deliveries: GoldenDelivery[] = [];
    const deliver = (index: number) => {
      const m = messages[index]!;
      const receiver = sessions[m.from === 'alice' ? 'bob' : 'alice'];
      const receiverBefore = toHex(receiver.pickle());
      const now = NOW + (deliveries.length + 1) * 60_000;
      if (str(receiver.decrypt(wires[index]!, { now })) !== m.plaintext) throw new Error(`golden: message ${index} did not round-trip`);
      deliveries.push({ index, receiverBefore, receiverDigest: receiver.stateDigest(), now });
    };
    // Sends interleave with deliveries so the ratchet turns: each batch of one sender is
    // delivered (in DELIVERY_ORDER) before the other side writes.
    let pending: number[] = [];
    SENDS.forEach((from, i) => {
      const index = i + 1;
      if (pending.length > 0 && messages[pending[0]!]!.from !== from) {
        for (const d of DELIVERY_ORDER.filter((x) => pending.includes(x))) deliver(d);
        pending = [];
      }
      const plaintext = `golden ${index}: ${from} says ${'*'.repeat(index * 37)}`;
      const wire = sessions[from].encrypt(text(plaintext));
      wires.push(wire);
      messages.push({ index, from, plaintext, wire: toHex(wire) });
      pending.push(index);
    });
    for (const d of DELIVERY_ORDER.filter((x) => pending.includes(x))) deliver(d);
    if (a.skippedKeyCount !== 0 || b.skippedKeyCount !== 0) throw new Error('golden: skipped keys left over');

    return {
      generatorVersion: GENERATOR_VERSION,
      note:
        'Frozen Parley v4 transcript (wire version 1, account pickle version 2, session pickle version 3). Generated by ' +
        'packages/protocol/test/golden/generate.ts with a seeded randomness source; golden.test.ts regenerates it on every ' +
        'backend and requires byte equality, and also decrypts the frozen ciphertexts from the frozen pickles. A change ' +
        'to any byte is a protocol or format change: version it, do not regenerate in place.',
      seed: SEED,
      now: NOW,
      x3dhKnownAnswer: { dhs: dhHex, sk: toHex(x3dh.sk), sharedHka: toHex(x3dh.sharedHka), sharedNhkb: toHex(x3dh.sharedNhkb), ad: toHex(x3dh.ad) },
      alice: { accountPickle: toHex(alice.pickle()), identity: identityHex(alice.publicIdentity), deviceId: alice.deviceId },
      bob: { accountPickle: bobAccountBefore, identity: identityHex(bob.publicIdentity), deviceId: bob.deviceId },
      bundle: {
        signedPrekey: {
          id: bundle.signedPrekey.id,
          createdAt: bundle.signedPrekey.createdAt,
          publicKey: toHex(bundle.signedPrekey.publicKey),
          signature: toHex(bundle.signedPrekey.signature),
        },
        oneTimePrekey: { id: bundle.oneTimePrekey!.id, publicKey: toHex(bundle.oneTimePrekey!.publicKey) },
      },
      associatedData: toHex(associatedData(alice.publicIdentity, bob.publicIdentity)),
      safetyNumber: safetyNumber(alice.publicIdentity, bob.publicIdentity),
      sessionId: a.sessionId,
      aliceSessionAfterPrekey,
      bobSessionAfterPrekey,
      messages,
      deliveries,
      final: {
        aliceSession: toHex(a.pickle()),
        bobSession: toHex(b.pickle()),
        aliceDigest: a.stateDigest(),
        bobDigest: b.stateDigest(),
        aliceAccount: toHex(alice.pickle()),
        bobAccount: toHex(bob.pickle()),
      },
    };
  });
}

/** Sanity check used by the test: the frozen sessions really are sessions. */
export function unpickleHex(hex: string): Session {
  return Session.unpickle(Uint8Array.from(Buffer.from(hex, 'hex')));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await initCrypto('node');
  const golden = generateGolden();
  writeFileSync(GOLDEN_PATH, `${JSON.stringify(golden, null, 2)}\n`);
  console.log(`wrote ${GOLDEN_PATH} (${golden.messages.length} messages)`);
}
