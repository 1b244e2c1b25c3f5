/**
 * Revoked API keys end their bots' connections. The keys of this node's connected bots are
 * checked against the store every `apiKeyCheckIntervalMs`, so a revocation made by another
 * process (`parley-relay apikey revoke` on the same SQLite file) or through another node (Redis)
 * reaches every socket: the bot gets a `relayError` (`UNAUTHENTICATED`, reason `apiKeyRevoked`)
 * and is disconnected, and its next login is refused with the same reason.
 */
import type { RelayContext, RelaySocket } from './context.js';
import { dropRevokedStaff } from './staff/revocations.js';

/** One pass: returns how many sockets were disconnected. Store errors skip the pass (logged). */
export async function dropRevokedBots(ctx: RelayContext): Promise<number> {
  const byKey = new Map<string, RelaySocket[]>();
  for (const socket of ctx.io.of('/').sockets.values()) {
    const key = socket.data.apiKey;
    if (!socket.data.deviceId || !key) continue;
    const list = byKey.get(key.hash) ?? [];
    list.push(socket);
    byKey.set(key.hash, list);
  }
  let dropped = 0;
  for (const [hash, sockets] of byKey) {
    let active: boolean;
    try {
      active = (await ctx.store.findApiKey(hash)) !== undefined;
    } catch (e) {
      ctx.log.error({ event: 'apiKeyCheck', errorName: e instanceof Error ? e.name : typeof e });
      return dropped;
    }
    if (active) continue;
    for (const socket of sockets) {
      if (!socket.connected) continue;
      const keyId = socket.data.apiKey?.id ?? '';
      ctx.log.warn({ event: 'apiKeyRevoked', keyId, deviceId: socket.data.deviceId, address: socket.data.address }, 'API key revoked: bot disconnected');
      socket.emit('relayError', {
        code: 'UNAUTHENTICATED',
        message: `the API key ${keyId} was revoked`,
        details: { reason: 'apiKeyRevoked' },
      });
      socket.disconnect(true);
      dropped++;
    }
  }
  return dropped;
}

/**
 * Runs {@link dropRevokedBots} on a timer, and with an org key `dropRevokedStaff` (revoked or
 * expired staff devices: the catch-up for a node that missed a revocation message); returns the
 * stop function (waits for a running pass).
 */
export function watchRevocations(ctx: RelayContext): () => Promise<void> {
  let running: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    running ??= Promise.all([dropRevokedBots(ctx), dropRevokedStaff(ctx)]).finally(() => {
      running = undefined;
    });
  }, Math.min(ctx.limits.apiKeyCheckIntervalMs, 2 ** 31 - 1));
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
