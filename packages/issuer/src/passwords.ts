/**
 * Password hashing with argon2id (`@node-rs/argon2`, prebuilt native binaries): OWASP's
 * minimum (19 MiB, 2 passes, 1 lane) by default. An unknown username is checked against a
 * dummy hash, so it costs the same work as a wrong password.
 */
import { hash, verify, type Algorithm } from '@node-rs/argon2';

/** `Algorithm.Argon2id` (a const enum, which isolated modules cannot read). */
const ARGON2ID = 2 as Algorithm;

/** argon2id cost parameters. */
export interface PasswordCost {
  /** KiB of memory (default 19456). */
  readonly memoryCost: number;
  /** Passes (default 2). */
  readonly timeCost: number;
}

/** OWASP's argon2id minimum. */
export const DEFAULT_PASSWORD_COST: PasswordCost = { memoryCost: 19456, timeCost: 2 };

/** Shortest accepted password. */
export const MIN_PASSWORD_LENGTH = 12;
/** Longest accepted password (bytes of UTF-8), so hashing stays bounded. */
export const MAX_PASSWORD_LENGTH = 256;

/** Hashes passwords and checks them in constant work. */
export class Passwords {
  readonly #cost: PasswordCost;
  #dummy: Promise<string> | undefined;

  constructor(cost: PasswordCost = DEFAULT_PASSWORD_COST) {
    this.#cost = cost;
  }

  /** An argon2id PHC string. */
  hash(password: string): Promise<string> {
    return hash(password, { algorithm: ARGON2ID, memoryCost: this.#cost.memoryCost, timeCost: this.#cost.timeCost, parallelism: 1 });
  }

  /** Checks `password` against `stored`, or against a dummy hash when there is none (always false then). */
  async check(stored: string | undefined, password: string): Promise<boolean> {
    this.#dummy ??= this.hash('parley-issuer-dummy-password');
    const target = stored ?? (await this.#dummy);
    let ok = false;
    try {
      ok = await verify(target, password);
    } catch {
      ok = false;
    }
    return stored !== undefined && ok;
  }
}
