/**
 * `@parley/bot`: the server SDK for bots. The bot's identity keys, sessions and the developer's
 * handler run inside an enclave worker; this process (the host) only moves ciphertext envelopes
 * and sealed state blobs. See README.md for what the enclave is, and is not.
 *
 * @example
 * import { createBot } from '@parley/bot';
 * const bot = await createBot({ relayUrl, apiKey, handler: './handler.ts', stateDir: './bot-state' });
 */
export { createBot, ATTESTATION_REFRESH_MS, DEFAULT_ONE_TIME_PREKEYS, type Bot, type BotOptions } from './host/bot.js';
export type { BotLogger, SealingSecretOption, SupervisorStats } from './host/supervisor.js';
export type { BotEvents, HandlerFailedEvent, HandlerFailureKind, HandoffUnclaimedEvent } from './host/events.js';
export type { BotEventListener } from './host/bot-events.js';
export { computeMeasurement, type Measurement, type MeasuredFile, type MeasurementOptions } from './measurement.js';
export {
  verifyAttestation,
  attestationPayload,
  encodeAttestation,
  decodeAttestation,
  measurementHex,
  ATTESTATION_VERSION,
  DEFAULT_ATTESTATION_MAX_AGE_MS,
  type BotAttestation,
  type VerifyAttestationOptions,
} from './attestation.js';
export type { BotHandler, BotMessage, BotContext, BotConversation, HandoffRequest, Member, MemberRole, StaffSender, HandlerState, JsonValue, EgressFetchInit, EgressResponse } from './handler-api.js';
export type { BotConsentRequest, BotFormRequest, BotConsentAnswer, BotFormValues, BotConsentEntry } from './handler-api.js';
