/**
 * `@parley/relay`: the Parley relay server. It authenticates devices by their identity key,
 * keeps the public prekey directory and queues opaque envelopes until their recipient acks.
 * It imports only `@parley/protocol/verify` and `@parley/protocol/wire`: no key or session code.
 */
export { createRelay, type Relay } from './relay.js';
export { DEFAULT_LIMITS, type MetricsOptions, type RelayLimits, type RelayOptions, type TlsOptions } from './options.js';
export { processMetrics } from './metrics.js';
export { normalizeOrigin } from './origin.js';
export type { RelayStore, StoredMessage, NewMessage, ApiKeyRecord, FindApiKeyOptions, StoredRevocationList, ArchiveHold, ArchiveOpening } from './store/types.js';
export { MemoryStore } from './store/memory.js';
export { SqliteStore, type SqliteStoreOptions } from './store/sqlite.js';
export { RedisStore, RedisDurabilityError, type RedisStoreOptions } from './store/redis.js';
export { attachRedisAdapter, type RedisOption } from './cluster/redis-adapter.js';
export type { StoreOption } from './store/open.js';
export { createApiKey, verifyApiKey, checkApiKey, apiKeyIdOf, hashApiKey, API_KEY_PREFIX, type ApiKeyCheck } from './apikeys.js';
