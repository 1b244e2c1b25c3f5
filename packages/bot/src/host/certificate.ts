/**
 * The bot's org certificate as the host handles it: parsed from what the operator gives
 * (`parley-org certify` output) and checked to name the identity the enclave holds. Its
 * signature is the customers' business: they hold the pinned org key.
 */
import { ParleyError, constantTimeEqual, decodeOrgCertificate, describeOrgCertificate, orgCertificateFromBase64, type PublicIdentity } from '@parley/protocol/verify';
import type { BotLogger } from './supervisor.js';
import { parseStatementInput } from './statement-input.js';

/**
 * Parses the `certificate` option: bytes, base64 (`parley-org certify`), or the JSON that
 * `parley-org certify --json` prints.
 * @throws ParleyError `USAGE`.
 */
export function parseCertificate(value: Uint8Array | string): Uint8Array {
  return parseStatementInput(value, 'certificate', 'certificate', orgCertificateFromBase64);
}

/**
 * Checks that `bytes` is a well-formed org certificate of `identity` (the signature is the
 * customers' business: they hold the pinned org key). Warns when it is expired or not for a bot.
 * @throws ParleyError `USAGE`.
 */
export function checkCertificate(bytes: Uint8Array, identity: PublicIdentity, logger: BotLogger): void {
  let cert;
  try {
    cert = decodeOrgCertificate(bytes);
  } catch {
    throw new ParleyError('USAGE', 'certificate is not a parley org certificate');
  }
  if (!constantTimeEqual(cert.signingKey, identity.signingKey) || !constantTimeEqual(cert.dhKey, identity.dhKey)) {
    throw new ParleyError('USAGE', 'certificate certifies another identity than this bot\'s (certify bot.identityHex)');
  }
  const view = describeOrgCertificate(cert);
  if (cert.role !== 'bot') logger.warn({ event: 'certificate.role', role: cert.role }, 'the certificate is not for role "bot"');
  if (cert.expiresAt <= Date.now()) logger.warn({ event: 'certificate.expired', expiresAt: view.expiresAt }, 'the certificate has expired: customers will refuse this bot');
}
