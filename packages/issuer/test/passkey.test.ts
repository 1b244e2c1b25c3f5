/**
 * Passkeys against a small software authenticator (P-256 keys from node:crypto; the CBOR of the
 * attestation object and the COSE key by @levischuck/tiny-cbor, the library @simplewebauthn uses):
 * enrolment with password + passkey, a sign-in that issues a credential, and the THREATS rows
 * "passkey for the wrong origin" and "replayed challenge" refused. Chromium's virtual
 * authenticator covers the browser side (test/browser/console.test.ts).
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { encodeCBOR, type CBORType } from '@levischuck/tiny-cbor';
import { fromBase64, fromHex, verifyStaffCredential } from '@parley/protocol';
import { createIssuer, type RunningIssuer } from '../src/index.js';
import { makeDevice, makeIssuerKeys, post, tempDir } from './helpers.js';

const CONSOLE = 'http://localhost:5173';
const b64url = (b: Uint8Array | Buffer | string) => Buffer.from(b).toString('base64url');
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest();

/** One authenticator with one credential for rpId `localhost`. */
class SoftAuthenticator {
  readonly id = Buffer.from(crypto.getRandomValues(new Uint8Array(16)));
  readonly #key: KeyObject;
  readonly #public: { x: string; y: string };
  #counter = 0;

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#key = privateKey;
    const jwk = publicKey.export({ format: 'jwk' });
    this.#public = { x: jwk.x!, y: jwk.y! };
  }

  #authData(flags: number, attested?: Uint8Array): Buffer {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(++this.#counter);
    return Buffer.concat([sha256('localhost'), Buffer.from([flags]), counter, ...(attested ? [attested] : [])]);
  }

  create(options: { challenge: string }, origin: string) {
    const cose = encodeCBOR(new Map<string | number, CBORType>([
      [1, 2], [3, -7], [-1, 1], [-2, Buffer.from(this.#public.x, 'base64url')], [-3, Buffer.from(this.#public.y, 'base64url')],
    ]));
    const len = Buffer.alloc(2);
    len.writeUInt16BE(this.id.length);
    const authData = this.#authData(0x45, Buffer.concat([Buffer.alloc(16), len, this.id, cose])); // UP | UV | AT
    const clientData = JSON.stringify({ type: 'webauthn.create', challenge: options.challenge, origin, crossOrigin: false });
    const attestationObject = encodeCBOR(new Map<string | number, CBORType>([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]));
    return {
      id: b64url(this.id), rawId: b64url(this.id), type: 'public-key', clientExtensionResults: {}, authenticatorAttachment: 'platform',
      response: { clientDataJSON: b64url(clientData), attestationObject: b64url(attestationObject), transports: ['internal'] },
    };
  }

  get(options: { challenge: string }, origin: string) {
    const authData = this.#authData(0x05); // UP | UV
    const clientData = JSON.stringify({ type: 'webauthn.get', challenge: options.challenge, origin, crossOrigin: false });
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientData)]), this.#key);
    return {
      id: b64url(this.id), rawId: b64url(this.id), type: 'public-key', clientExtensionResults: {}, authenticatorAttachment: 'platform',
      response: { clientDataJSON: b64url(clientData), authenticatorData: b64url(authData), signature: b64url(signature) },
    };
  }
}

let issuer: RunningIssuer;
let keys: Awaited<ReturnType<typeof makeIssuerKeys>>;
let tmp: ReturnType<typeof tempDir>;
const PASSWORD = 'passkeys are nice too';
const authenticator = new SoftAuthenticator();

before(async () => {
  keys = await makeIssuerKeys();
  tmp = tempDir();
  issuer = await createIssuer({
    db: join(tmp.dir, 'issuer.db'), key: keys.key, issuerCertificate: keys.certificate, port: 0, origin: 'http://localhost:8090',
    consoleOrigins: [CONSOLE], passwordCost: { memoryCost: 4096, timeCost: 1 }, trustProxy: ['127.0.0.1'],
  });
});
after(async () => {
  await issuer.close();
  tmp.remove();
});

test('enrol with password + passkey, then sign in with the passkey: a verified staff credential', async () => {
  const { invitation } = issuer.service.directory.add({ username: 'pat', displayName: 'Pat', roles: ['agent'] }, 'test');
  assert.equal((await post(issuer.url, '/v1/enrol/password', { invitation, password: PASSWORD })).status, 200);
  const options = await post(issuer.url, '/v1/enrol/passkey/options', { invitation });
  assert.equal((options.body['rp'] as { id: string }).id, 'localhost');
  // A registration made on another origin is refused (and uses up the challenge).
  const wrong = await post(issuer.url, '/v1/enrol/passkey/verify', { invitation, response: authenticator.create(options.body as { challenge: string }, 'https://evil.example') });
  assert.equal(wrong.status, 401);
  const again = await post(issuer.url, '/v1/enrol/passkey/verify', { invitation, response: authenticator.create(options.body as { challenge: string }, CONSOLE) });
  assert.equal(again.status, 401, 'the registration challenge is single use');
  const fresh = await post(issuer.url, '/v1/enrol/passkey/options', { invitation });
  const ok = await post(issuer.url, '/v1/enrol/passkey/verify', { invitation, response: authenticator.create(fresh.body as { challenge: string }, CONSOLE) });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));

  const device = makeDevice();
  const start = await post(issuer.url, '/v1/signin/start', { username: 'pat', password: PASSWORD, identity: device.identity });
  assert.deepEqual(start.body['factors'], ['passkey']);
  const passkeyOptions = start.body['passkeyOptions'] as { challenge: string; rpId: string };
  assert.equal(passkeyOptions.rpId, 'localhost');
  const finish = await post(issuer.url, '/v1/signin/finish', {
    signinId: start.body['signinId'], proof: device.proof(String(start.body['challenge']), issuer.origin), passkey: authenticator.get(passkeyOptions, CONSOLE),
  });
  assert.equal(finish.status, 200, JSON.stringify(finish.body));
  const v = verifyStaffCredential(fromBase64(String(finish.body['credential'])), {
    orgKey: keys.org.publicKey, identity: { signingKey: fromHex(device.identity.signingKey), dhKey: fromHex(device.identity.dhKey) }, now: Date.now(),
  });
  assert.equal(v.personId, finish.body['personId']);
});

test('a passkey assertion for the wrong origin, or for a used challenge, is refused', async () => {
  const from = issuer.service.audit.list().length + 1;
  const attempt = async (origin: string, challengeOf?: (opts: { challenge: string }) => { challenge: string }) => {
    const device = makeDevice();
    const start = await post(issuer.url, '/v1/signin/start', { username: 'pat', password: PASSWORD, identity: device.identity });
    const opts = start.body['passkeyOptions'] as { challenge: string };
    return post(issuer.url, '/v1/signin/finish', {
      signinId: start.body['signinId'], proof: device.proof(String(start.body['challenge']), issuer.origin), passkey: authenticator.get(challengeOf ? challengeOf(opts) : opts, origin),
    });
  };
  assert.equal((await attempt('https://evil.example')).status, 401, 'wrong origin');
  // Replay: an assertion over an earlier sign-in's challenge.
  const device = makeDevice();
  const old = await post(issuer.url, '/v1/signin/start', { username: 'pat', password: PASSWORD, identity: device.identity });
  const oldChallenge = (old.body['passkeyOptions'] as { challenge: string }).challenge;
  const used = await post(issuer.url, '/v1/signin/finish', {
    signinId: old.body['signinId'], proof: device.proof(String(old.body['challenge']), issuer.origin), passkey: authenticator.get({ challenge: oldChallenge }, CONSOLE),
  });
  assert.equal(used.status, 200);
  assert.equal((await attempt(CONSOLE, () => ({ challenge: oldChallenge }))).status, 401, 'replayed challenge');
  const reasons = issuer.service.audit.list({ fromSeq: from }).filter((e) => e.type === 'signin.failure').map((e) => e.reason);
  assert.deepEqual(reasons, ['badPasskey', 'badPasskey']);
});

test('behind a trusted proxy, the audit (and the per-IP limit) see the forwarded client address', async () => {
  const r = await post(issuer.url, '/v1/signin/start', { username: 'pat', password: 'not the password', identity: makeDevice().identity }, { 'x-forwarded-for': '203.0.113.7' });
  assert.equal(r.status, 401);
  const last = issuer.service.audit.list().at(-1)!;
  assert.deepEqual([last.type, last.actor, last.reason], ['signin.failure', 'ip:203.0.113.7', 'badPassword']);
});
