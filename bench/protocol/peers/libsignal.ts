/**
 * Adapter for `@signalapp/libsignal-client` (Rust, native Node addon), through its public
 * Node API with the smallest possible in-memory stores, so what is timed is libsignal's
 * protocol work plus its own JS↔native and store-callback overhead, which every app pays.
 *
 * Since 0.6x, libsignal REQUIRES a Kyber (ML-KEM-1024) prekey in every bundle (PQXDH), and its
 * messages carry the SPQR post-quantum ratchet. Both are extra work our protocol does not do;
 * we cannot switch them off, so the report says so next to the numbers. We use one
 * last-resort Kyber prekey (generated in `setup`, reused by every bundle), the cheapest
 * configuration Signal's servers accept; Bob's KEM decapsulation per establishment and the
 * sender's encapsulation remain.
 */
import {
  CiphertextMessageType,
  IdentityChange,
  IdentityKeyPair,
  IdentityKeyStore,
  KEMKeyPair,
  KyberPreKeyRecord,
  KyberPreKeyStore,
  PreKeyBundle,
  PreKeyRecord,
  PreKeySignalMessage,
  PreKeyStore,
  PrivateKey,
  ProtocolAddress,
  PublicKey,
  SessionRecord,
  SessionStore,
  SignalMessage,
  SignedPreKeyRecord,
  SignedPreKeyStore,
  processPreKeyBundle,
  signalDecrypt,
  signalDecryptPreKey,
  signalEncrypt,
} from '@signalapp/libsignal-client';
import { check, message, type Pair, type Peer } from '../adapter.js';

const DEVICE_ID = 1;

class MemSessionStore extends SessionStore {
  readonly sessions = new Map<string, SessionRecord>();
  override async saveSession(name: ProtocolAddress, record: SessionRecord): Promise<void> {
    this.sessions.set(name.name(), record);
  }
  override async getSession(name: ProtocolAddress): Promise<SessionRecord | null> {
    return this.sessions.get(name.name()) ?? null;
  }
  override async getExistingSessions(addresses: ProtocolAddress[]): Promise<SessionRecord[]> {
    return addresses.map((a) => {
      const s = this.sessions.get(a.name());
      if (!s) throw new Error(`no session for ${a.name()}`);
      return s;
    });
  }
}

/** Trust on first use, answered at once: identity policy is not what we measure. */
class MemIdentityStore extends IdentityKeyStore {
  readonly identities = new Map<string, PublicKey>();
  constructor(
    private readonly identity: IdentityKeyPair,
    private readonly registrationId: number,
  ) {
    super();
  }
  override async getIdentityKey(): Promise<PrivateKey> {
    return this.identity.privateKey;
  }
  override async getLocalRegistrationId(): Promise<number> {
    return this.registrationId;
  }
  override async saveIdentity(name: ProtocolAddress, key: PublicKey): Promise<IdentityChange> {
    this.identities.set(name.name(), key);
    return IdentityChange.NewOrUnchanged;
  }
  override async isTrustedIdentity(): Promise<boolean> {
    return true;
  }
  override async getIdentity(name: ProtocolAddress): Promise<PublicKey | null> {
    return this.identities.get(name.name()) ?? null;
  }
}

class MemPreKeyStore extends PreKeyStore {
  readonly keys = new Map<number, PreKeyRecord>();
  override async savePreKey(id: number, record: PreKeyRecord): Promise<void> {
    this.keys.set(id, record);
  }
  override async getPreKey(id: number): Promise<PreKeyRecord> {
    const k = this.keys.get(id);
    if (!k) throw new Error(`no prekey ${id}`);
    return k;
  }
  override async removePreKey(id: number): Promise<void> {
    this.keys.delete(id);
  }
}

class MemSignedPreKeyStore extends SignedPreKeyStore {
  readonly keys = new Map<number, SignedPreKeyRecord>();
  override async saveSignedPreKey(id: number, record: SignedPreKeyRecord): Promise<void> {
    this.keys.set(id, record);
  }
  override async getSignedPreKey(id: number): Promise<SignedPreKeyRecord> {
    const k = this.keys.get(id);
    if (!k) throw new Error(`no signed prekey ${id}`);
    return k;
  }
}

/** One last-resort Kyber prekey, never removed (markKyberPreKeyUsed is a no-op for those). */
class MemKyberPreKeyStore extends KyberPreKeyStore {
  readonly keys = new Map<number, KyberPreKeyRecord>();
  override async saveKyberPreKey(id: number, record: KyberPreKeyRecord): Promise<void> {
    this.keys.set(id, record);
  }
  override async getKyberPreKey(id: number): Promise<KyberPreKeyRecord> {
    const k = this.keys.get(id);
    if (!k) throw new Error(`no kyber prekey ${id}`);
    return k;
  }
  override async markKyberPreKeyUsed(): Promise<void> {}
}

interface Party {
  readonly identity: IdentityKeyPair;
  readonly registrationId: number;
  readonly sessions: MemSessionStore;
  readonly identities: MemIdentityStore;
}

function party(): Party {
  const identity = IdentityKeyPair.generate();
  const registrationId = 1 + Math.floor(Math.random() * 16380);
  return {
    identity,
    registrationId,
    sessions: new MemSessionStore(),
    identities: new MemIdentityStore(identity, registrationId),
  };
}

export function createLibsignalPeer(): Peer {
  let alice!: Party;
  let bob!: Party;
  const prekeys = new MemPreKeyStore();
  const signedPrekeys = new MemSignedPreKeyStore();
  const kyberPrekeys = new MemKyberPreKeyStore();
  let signed!: SignedPreKeyRecord;
  let kyber!: KyberPreKeyRecord;
  let nextPrekeyId = 1;
  let nextAddress = 1;
  const plaintext = message();

  /** Bob publishes a bundle around a fresh one-time prekey (untimed part). */
  function bundle(): PreKeyBundle {
    const id = nextPrekeyId++;
    const key = PrivateKey.generate();
    prekeys.keys.set(id, PreKeyRecord.new(id, key.getPublicKey(), key));
    return PreKeyBundle.new(
      bob.registrationId,
      DEVICE_ID,
      id,
      key.getPublicKey(),
      signed.id(),
      signed.publicKey(),
      signed.signature(),
      bob.identity.publicKey,
      kyber.id(),
      kyber.publicKey(),
      kyber.signature(),
    );
  }

  /** Unique addresses per session, so libsignal never archives an old state into the record. */
  function addresses(): { aliceAddr: ProtocolAddress; bobAddr: ProtocolAddress } {
    const n = nextAddress++;
    return { aliceAddr: ProtocolAddress.new(`alice-${n}`, DEVICE_ID), bobAddr: ProtocolAddress.new(`bob-${n}`, DEVICE_ID) };
  }

  /** Alice processes the bundle and sends a first message; Bob decrypts it. */
  async function establish(b: PreKeyBundle, aliceAddr: ProtocolAddress, bobAddr: ProtocolAddress): Promise<void> {
    await processPreKeyBundle(b, bobAddr, aliceAddr, alice.sessions, alice.identities);
    const ct = await signalEncrypt(plaintext, bobAddr, aliceAddr, alice.sessions, alice.identities);
    if (ct.type() !== CiphertextMessageType.PreKey) throw new Error('expected a prekey message');
    const got = await signalDecryptPreKey(
      PreKeySignalMessage.deserialize(ct.serialize()),
      aliceAddr,
      bobAddr,
      bob.sessions,
      bob.identities,
      prekeys,
      signedPrekeys,
      kyberPrekeys,
    );
    check(got, plaintext, false);
  }

  function forget(aliceAddr: ProtocolAddress, bobAddr: ProtocolAddress): void {
    alice.sessions.sessions.delete(bobAddr.name());
    alice.identities.identities.delete(bobAddr.name());
    bob.sessions.sessions.delete(aliceAddr.name());
    bob.identities.identities.delete(aliceAddr.name());
  }

  return {
    name: 'libsignal-client (+PQ: Kyber, SPQR)',
    notes: [
      'native Rust addon; PQXDH: every bundle must carry a Kyber-1024 prekey (one last-resort key, reused), so each establishment also does ML-KEM encaps/decaps',
      'messages carry the SPQR post-quantum ratchet (not switchable in this version)',
      'async API: every call crosses JS↔native and awaits the in-memory store callbacks',
    ],

    async setup() {
      alice = party();
      bob = party();
      const spk = PrivateKey.generate();
      signed = SignedPreKeyRecord.new(
        1,
        Date.now(),
        spk.getPublicKey(),
        spk,
        bob.identity.privateKey.sign(spk.getPublicKey().serialize()),
      );
      signedPrekeys.keys.set(1, signed);
      const kem = KEMKeyPair.generate();
      kyber = KyberPreKeyRecord.new(1, Date.now(), kem, bob.identity.privateKey.sign(kem.getPublicKey().serialize()));
      kyberPrekeys.keys.set(1, kyber);
    },

    async prepareEstablish(n) {
      const jobs = Array.from({ length: n }, () => ({ bundle: bundle(), ...addresses() }));
      return async () => {
        for (const j of jobs) {
          await establish(j.bundle, j.aliceAddr, j.bobAddr);
          forget(j.aliceAddr, j.bobAddr);
        }
      };
    },

    async makePair(): Promise<Pair> {
      const { aliceAddr, bobAddr } = addresses();
      await establish(bundle(), aliceAddr, bobAddr);
      const sides = [
        { self: aliceAddr, peer: bobAddr, party: alice },
        { self: bobAddr, peer: aliceAddr, party: bob },
      ] as const;
      async function send(from: 0 | 1, full: boolean): Promise<void> {
        const s = sides[from];
        const r = sides[from === 0 ? 1 : 0];
        const ct = await signalEncrypt(plaintext, s.peer, s.self, s.party.sessions, s.party.identities);
        if (ct.type() !== CiphertextMessageType.Whisper) throw new Error('expected a whisper message');
        const got = await signalDecrypt(
          SignalMessage.deserialize(ct.serialize()),
          r.peer,
          r.self,
          r.party.sessions,
          r.party.identities,
        );
        check(got, plaintext, full);
      }
      await send(1, true); // Bob replies: one round trip
      let turn: 0 | 1 = 0;
      return {
        async oneDirection(n) {
          for (let i = 0; i < n; i++) await send(0, i === 0);
        },
        async pingPong(n) {
          for (let i = 0; i < n; i++) {
            await send(turn, i === 0);
            turn = turn === 0 ? 1 : 0;
          }
        },
        sessionSize() {
          return aliceSession().serialize().length;
        },
        async loadIdle(n) {
          const bytes = aliceSession().serialize();
          let held: SessionRecord[] = [];
          for (let i = 0; i < n; i++) held.push(SessionRecord.deserialize(bytes));
          return {
            release() {
              held = [];
            },
          };
        },
        free() {
          forget(aliceAddr, bobAddr);
        },
      };
      function aliceSession(): SessionRecord {
        const s = alice.sessions.sessions.get(bobAddr.name());
        if (!s) throw new Error('no session');
        return s;
      }
    },
  };
}
