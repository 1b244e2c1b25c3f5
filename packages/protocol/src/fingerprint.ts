/**
 * Safety numbers: 60 digits derived from both identities, the same on both sides, for users
 * to compare out of band. Each side's half follows Signal's NumericFingerprint: iterated
 * SHA-512 (5,200 rounds, to make grinding a matching half expensive) over a version, the
 * identity keys and the device id; 30 bytes become 6 groups of 5 digits. The halves are
 * sorted so both sides print the same string.
 */
import { concatBytes, fromHex, utf8 } from './bytes.js';
import { getCrypto } from './crypto/index.js';
import { deviceIdOf, type PublicIdentity } from './identity.js';

const FINGERPRINT_VERSION = new Uint8Array([0, 1]);
/** Signal's iteration count; see NumericFingerprintGenerator. */
export const FINGERPRINT_ITERATIONS = 5200;

function half(identity: PublicIdentity): string {
  const c = getCrypto();
  const publicKeys = concatBytes(identity.signingKey, identity.dhKey);
  const id = fromHex(deviceIdOf(identity));
  let hash = concatBytes(FINGERPRINT_VERSION, utf8('parley/v1/safety-number'), publicKeys, id);
  for (let i = 0; i < FINGERPRINT_ITERATIONS; i++) hash = c.sha512(concatBytes(hash, publicKeys));
  let digits = '';
  for (let i = 0; i < 30; i += 5) {
    const chunk = hash[i]! * 2 ** 32 + ((hash[i + 1]! << 24) >>> 0) + (hash[i + 2]! << 16) + (hash[i + 3]! << 8) + hash[i + 4]!;
    digits += String(chunk % 100000).padStart(5, '0');
  }
  return digits;
}

/**
 * The safety number of two identities: 60 digits, identical whichever side computes it.
 * @example formatSafetyNumber(safetyNumber(me, peer)) // "12345 67890 …"
 */
export function safetyNumber(a: PublicIdentity, b: PublicIdentity): string {
  const [x, y] = [half(a), half(b)].sort();
  return x! + y!;
}

/** Groups a safety number in blocks of five digits for display. */
export function formatSafetyNumber(digits: string): string {
  return digits.replace(/(\d{5})(?=\d)/g, '$1 ');
}
