/**
 * The closed set of errors every Parley package throws.
 *
 * Every error carries a stable literal `code` you can narrow on, optional numeric/string
 * `details` (never key bytes or plaintext), and an optional `cause`. Errors that cross a
 * process or worker boundary travel as {@link SerializedParleyError} and are rebuilt with
 * {@link ParleyError.fromJSON}.
 */
export const ERROR_CODES = [
  'AUTH_FAILED',
  'DUPLICATE_MESSAGE',
  'TOO_MANY_SKIPPED',
  'MESSAGE_KEY_EXPIRED',
  'INVALID_KEY',
  'INVALID_SIGNATURE',
  'INVALID_PREKEY',
  'IDENTITY_CHANGED',
  'UNTRUSTED_IDENTITY',
  'MALFORMED_MESSAGE',
  'UNSUPPORTED_VERSION',
  'SESSION_NOT_FOUND',
  'SENDER_STATE_ROLLBACK',
  'SESSION_FORK_DETECTED',
  'STORAGE_INTEGRITY',
  'STORAGE_QUOTA',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'RATE_LIMITED',
  'PAYLOAD_TOO_LARGE',
  'ENCLAVE_UNAVAILABLE',
  'ATTESTATION_INVALID',
  'CONFLICT',
  'UNTRUSTED_SOURCE',
  'TRANSPORT',
  'USAGE',
  'INTERNAL',
] as const;

/** A stable error code. */
export type ParleyErrorCode = (typeof ERROR_CODES)[number];

/** Numbers and short public identifiers that help debugging. Never secrets or plaintext. */
export type ErrorDetails = Readonly<Record<string, number | string | boolean>>;

/**
 * The details a code carries, for the codes whose details callers act on. Narrow with
 * {@link isParleyError}: `if (isParleyError(e, 'ATTESTATION_INVALID')) e.details?.reason`.
 * Every field is optional: each throw site fills the ones it knows.
 */
export type ErrorDetailsByCode = {
  readonly ATTESTATION_INVALID: {
    /**
     * `missing`: the bot published none; `invalid`: it does not verify; `measurement`: not the
     * pinned code (and no release manifest for it); `manifest`: the release manifests published
     * for its measurement are all refused (`refusal` says why; release-manifest.ts); `expired`:
     * the stored one is too old.
     */
    readonly reason?: 'missing' | 'invalid' | 'measurement' | 'manifest' | 'expired';
    /** With reason `manifest`: why the (best) release manifest was refused. */
    readonly refusal?: 'malformed' | 'signature' | 'orgKey' | 'label' | 'measurement' | 'notYetValid' | 'expired';
    readonly peer?: string;
    readonly skewMs?: number;
    readonly ageMs?: number;
    readonly maxAgeMs?: number;
  };
  readonly UNTRUSTED_IDENTITY: {
    /**
     * Why an org certificate was refused (`missing`, `expired`, `signature`, `role`, `label`,
     * `identity`, `malformed`), a staff credential (also `issuerSignature`, `issuerExpired`,
     * `issuerPolicy`, `notYetValid`, `revoked`: staff-cert.ts `StaffCredentialRefusal`), or a
     * revocation list (`revocationList`).
     */
    readonly reason?: string;
    readonly peer?: string;
  };
  readonly IDENTITY_CHANGED: { readonly label?: string; readonly previous?: string; readonly peer?: string };
  readonly PAYLOAD_TOO_LARGE: { readonly size?: number; readonly max?: number };
  readonly STORAGE_QUOTA: {
    /** From the relay: which queue quota refused the envelope (`pair`, `recipient`, `sender`, `total`). */
    readonly quota?: 'pair' | 'recipient' | 'sender' | 'total';
    readonly have?: number;
    readonly max?: number;
    /** The recipient's shared room is full and this sender already has its reserved share. */
    readonly reserved?: boolean;
  };
  readonly RATE_LIMITED: {
    /** From the relay: the limit hit, per `requester` device, per remote `address`, or sockets per `device`. */
    readonly scope?: 'requester' | 'address' | 'device';
    readonly perMinute?: number;
    readonly max?: number;
  };
  readonly UNAUTHENTICATED: {
    /**
     * Why the relay refused a login: `apiKey` (unknown API key), `apiKeyRevoked`, `signature`
     * (does not verify), `origin` (the device signed another origin than the relay's: see
     * `expectedOrigin` and `signedOrigin`, neither is secret), `clockSkew`, `identity` (binding
     * does not verify), `malformed`, `challenge` (nonce reused), `timeout` (no answer in time),
     * `credential` (the staff credential presented does not verify: `credentialReason` says why),
     * `revoked` (the staff device or person is on a revocation list; also sent to a connected
     * device when a new list names it).
     */
    readonly reason?: 'apiKey' | 'apiKeyRevoked' | 'signature' | 'origin' | 'clockSkew' | 'identity' | 'malformed' | 'challenge' | 'timeout' | 'credential' | 'revoked';
    /** With reason `credential`: the verifier's refusal (`UNTRUSTED_IDENTITY` reason of `verifyStaffCredential`). */
    readonly credentialReason?: string;
    readonly expectedOrigin?: string;
    readonly signedOrigin?: string;
    readonly skewMs?: number;
  };
  readonly FORBIDDEN: {
    /**
     * Conversations (docs/architecture.md "Conversations with several members"): `notOwner`, a
     * member-list change from anyone but the conversation's owner (the customer's device);
     * `notMember`, a message from, or to, a device not in the current member list; `notClaimant`,
     * a join from an agent who does not hold the ticket at the relay. From the relay:
     * `role` (the connection's role may not do this) and `notParty` (not the ticket's customer,
     * notify device or claimant).
     */
    readonly reason?: 'notOwner' | 'notMember' | 'notClaimant' | 'role' | 'notParty' | 'egress' | (string & {});
    /** From the relay: the role of the acting connection (`customer`, `bot`, or a staff role). */
    readonly role?: string;
    /** From the relay: the operation refused, e.g. `sendToCustomer`. */
    readonly operation?: string;
  };
  readonly CONFLICT: {
    /** `claimed`: another agent holds the ticket (handoff queues). */
    readonly reason?: 'claimed';
    readonly ticketId?: string;
  };
  readonly UNTRUSTED_SOURCE: {
    /**
     * Why a history bundle was refused (docs/threats.md C19, H2): `notOwner` (not from the
     * conversation's owner, the customer's device), `wrongConversation` (for a conversation or
     * ticket this device did not join through its own claim), `unsolicited` (no claim of this
     * device asked for it, or it came twice).
     */
    readonly reason?: 'notOwner' | 'wrongConversation' | 'unsolicited';
    readonly peer?: string;
  };
  readonly TRANSPORT: {
    /**
     * Why the relay could not be reached: `refused` (nothing listens: closed port), `dns` (host
     * name does not resolve), `tls` (certificate not trusted, expired or for another name: see
     * the `ca` option), `timeout` (no login within `connectTimeoutMs`), `closed` (closed first).
     */
    readonly reason?: 'refused' | 'dns' | 'tls' | 'timeout' | 'closed';
    /** The underlying system error code, e.g. `ECONNREFUSED`, `ENOTFOUND`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`. */
    readonly cause?: string;
  };
  readonly INVALID_PREKEY: {
    /** Signed prekey refused: `unknown` (never issued), `retired` (past its grace), `full` (its base-key memory is full). */
    readonly reason?: 'unknown' | 'retired' | 'full';
    readonly spkId?: number;
    readonly opkId?: number;
  };
};

/**
 * The details type of one code: its entry in {@link ErrorDetailsByCode} (plus any other public
 * field), else the generic {@link ErrorDetails}; an error not narrowed to one code has the
 * generic form.
 */
export type DetailsOf<C extends ParleyErrorCode> = [ParleyErrorCode] extends [C]
  ? ErrorDetails
  : C extends keyof ErrorDetailsByCode
    ? ErrorDetailsByCode[C] & ErrorDetails
    : ErrorDetails;

/** The shape an error takes when it crosses a worker or network boundary. */
export interface SerializedParleyError {
  readonly code: ParleyErrorCode;
  readonly message: string;
  readonly details?: ErrorDetails;
}

/**
 * Base class of every error Parley throws on purpose. `code` is stable; narrow on it with
 * {@link isParleyError}, which also types `details`. The table of codes, what each means and
 * what to do: docs/errors.md.
 */
export class ParleyError extends Error {
  override readonly name = 'ParleyError';
  readonly code: ParleyErrorCode;
  readonly details: ErrorDetails | undefined;

  constructor(code: ParleyErrorCode, message: string, options?: { details?: ErrorDetails; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
  }

  /** The boundary-safe form: code, message and details only (no stack, no cause). */
  toJSON(): SerializedParleyError {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  /** Rebuilds an error received from another side; unknown codes become `INTERNAL`. */
  static fromJSON(value: unknown): ParleyError {
    if (typeof value === 'object' && value !== null) {
      const v = value as { code?: unknown; message?: unknown; details?: unknown };
      const code = (ERROR_CODES as readonly unknown[]).includes(v.code) ? (v.code as ParleyErrorCode) : 'INTERNAL';
      const message = typeof v.message === 'string' ? v.message.slice(0, 500) : 'unknown error';
      const details = isDetails(v.details) ? v.details : undefined;
      return new ParleyError(code, message, details ? { details } : undefined);
    }
    return new ParleyError('INTERNAL', 'unknown error');
  }
}

function isDetails(value: unknown): value is ErrorDetails {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return Object.values(value).every((x) => ['number', 'string', 'boolean'].includes(typeof x));
}

/**
 * True when `e` is a {@link ParleyError}, optionally with the given code; with a code, `e` is
 * narrowed to that code and its typed `details`.
 * @example
 * if (isParleyError(e, 'ATTESTATION_INVALID') && e.details?.reason === 'measurement') showWrongBotWarning();
 */
export function isParleyError<C extends ParleyErrorCode>(e: unknown, code: C): e is ParleyErrorOf<C>;
export function isParleyError(e: unknown): e is ParleyError;
export function isParleyError(e: unknown, code?: ParleyErrorCode): boolean {
  return e instanceof ParleyError && (code === undefined || e.code === code);
}

/** A {@link ParleyError} narrowed to one code, with that code's typed `details`. */
export type ParleyErrorOf<C extends ParleyErrorCode> = ParleyError & { readonly code: C; readonly details: DetailsOf<C> | undefined };
