/**
 * Locates and reads the third-party test vectors (Wycheproof, ed25519-speccheck), kept in the
 * repository under `packages/protocol/test/vectors/data/` (provenance and licences in its
 * README.md). The location is:
 *
 * 1. `$PARLEY_VECTORS`, when set (a directory with the same layout: `wycheproof/`,
 *    `ed25519-speccheck/`);
 * 2. otherwise the in-repository copy, found from this file's path.
 *
 * A missing file fails loudly: a conformance suite that silently finds nothing proves nothing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex } from '../../src/bytes.js';

/** The in-repository copy: `packages/protocol/test/helpers` → `../vectors/data`. */
const IN_REPO_VECTORS = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'vectors', 'data');

/** The vectors directory in use (see the module comment for how it is found). */
export const VECTORS_DIR: string = process.env.PARLEY_VECTORS || IN_REPO_VECTORS;

/**
 * Reads and parses a JSON file under {@link VECTORS_DIR}.
 *
 * @throws Error naming the path and `PARLEY_VECTORS` when the file does not exist.
 */
export function readVectorJson<T>(relativePath: string): T {
  const path = join(VECTORS_DIR, relativePath);
  if (!existsSync(path)) {
    throw new Error(
      `test vectors not found: ${path}. They ship in packages/protocol/test/vectors/data/; ` +
        'PARLEY_VECTORS, when set, must name a directory holding wycheproof/ and ed25519-speccheck/.',
    );
  }
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/** Hex from a vector file to bytes. */
export const hex = fromHex;

/** Wycheproof's verdict for one case (see `wycheproof/README.md` for our policy on each). */
export type WycheproofResult = 'valid' | 'invalid' | 'acceptable';

/** The fields every Wycheproof test case has. */
export interface WycheproofCase {
  readonly tcId: number;
  readonly comment: string;
  readonly flags: readonly string[];
  readonly result: WycheproofResult;
}

/** The top level of a Wycheproof `testvectors_v1` file. */
export interface WycheproofFile<G> {
  readonly algorithm: string;
  readonly numberOfTests: number;
  readonly testGroups: readonly G[];
}

/** `xdh_comp_schema_v1.json` */
export interface XdhGroup {
  readonly curve: string;
  readonly tests: readonly (WycheproofCase & { readonly public: string; readonly private: string; readonly shared: string })[];
}

/** `aead_test_schema_v1.json` (sizes in bits) */
export interface AeadGroup {
  readonly ivSize: number;
  readonly keySize: number;
  readonly tagSize: number;
  readonly tests: readonly (WycheproofCase & {
    readonly key: string;
    readonly iv: string;
    readonly aad: string;
    readonly msg: string;
    readonly ct: string;
    readonly tag: string;
  })[];
}

/** `eddsa_verify_schema_v1.json` */
export interface EddsaGroup {
  readonly publicKey: { readonly pk: string };
  readonly tests: readonly (WycheproofCase & { readonly msg: string; readonly sig: string })[];
}

/** `hkdf_test_schema_v1.json` (`size` in bytes) */
export interface HkdfGroup {
  readonly tests: readonly (WycheproofCase & {
    readonly ikm: string;
    readonly salt: string;
    readonly info: string;
    readonly size: number;
    readonly okm: string;
  })[];
}

/** `mac_test_schema_v1.json` (sizes in bits) */
export interface MacGroup {
  readonly keySize: number;
  readonly tagSize: number;
  readonly tests: readonly (WycheproofCase & { readonly key: string; readonly msg: string; readonly tag: string })[];
}

/** One case of `ed25519-speccheck/cases.json` (hex strings). */
export interface SpeccheckCase {
  readonly message: string;
  readonly pub_key: string;
  readonly signature: string;
}

/** Reads `wycheproof/<name>`. */
export function readWycheproof<G>(name: string): WycheproofFile<G> {
  return readVectorJson<WycheproofFile<G>>(join('wycheproof', name));
}
