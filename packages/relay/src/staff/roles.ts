/**
 * The relay's role model (README "Roles"). A connection's roles come from its login: `customer`
 * (no credential, no API key), `bot` (API key), or the staff roles of its verified credential.
 * Each device's roles at its last login are kept in the store, so any node can judge a message
 * addressed to it. What a role may not do is refused with `FORBIDDEN` (`details.role`,
 * `details.operation`), logged (`event: 'forbidden'`, no content) and counted
 * (`parley_relay_forbidden_total{role,operation}`).
 */
import { ParleyError, STAFF_ROLES, type StaffRole } from '@parley/protocol/verify';
import type { RelayContext, RelaySocket } from '../context.js';

/** A connection's role at the relay. */
export type ConnectionRole = 'customer' | 'bot' | StaffRole;

/** Operations a role can be refused (the `operation` label and detail). */
export type RoleOperation = 'sendToCustomer';

/** The roles of a login: the staff roles, `bot` for an API key, else `customer`. */
export function loginRoles(bot: boolean, staff: readonly StaffRole[] | undefined): ConnectionRole[] {
  const roles: ConnectionRole[] = [...(bot ? ['bot' as const] : []), ...(staff ?? [])];
  return roles.length === 0 ? ['customer'] : roles;
}

/**
 * A customer is a device that is neither a bot nor staff. A device the relay never saw log in
 * (`undefined`) counts as one: every device that can be messaged has logged in to publish its
 * prekeys, and the store remembers roles from the first login after an upgrade on.
 */
export function isCustomer(roles: readonly string[] | undefined): boolean {
  return roles === undefined || roles.length === 0 || roles.every((r) => r === 'customer'); // ct-ok: public role names
}

/** The one role named in logs, metrics and `details.role`: staff roles first, in their canonical order. */
export function primaryRole(roles: readonly string[] | undefined): string {
  if (!roles || roles.length === 0) return 'customer';
  for (const r of STAFF_ROLES) if (roles.includes(r)) return r;
  return roles.includes('bot') ? 'bot' : 'customer';
}

/** Logs and counts a refusal and returns the `FORBIDDEN` error to throw. */
export function forbidden(ctx: RelayContext, socket: RelaySocket, operation: RoleOperation, message: string): ParleyError {
  const role = primaryRole(socket.data.roles);
  ctx.metrics.forbidden.inc({ role, operation });
  ctx.log.warn({ event: 'forbidden', deviceId: socket.data.deviceId, role, operation }, `forbidden: ${operation} for role ${role}`);
  return new ParleyError('FORBIDDEN', message, { details: { role, operation } });
}

/**
 * `send` from `socket` to `to`: a customer may not message a customer unless the relay allows it
 * (`customersMayMessageCustomers`).
 * @throws ParleyError `FORBIDDEN` with `operation: 'sendToCustomer'`.
 */
export async function checkSend(ctx: RelayContext, socket: RelaySocket, to: string): Promise<void> {
  if (ctx.customersMayMessageCustomers || !isCustomer(socket.data.roles)) return;
  if (!isCustomer(await ctx.store.getDeviceRoles(to))) return;
  throw forbidden(ctx, socket, 'sendToCustomer', 'customers may not message other customers on this relay');
}

/** Stores a device's roles when they differ from the stored ones (one read per login, a write only on change). */
export async function rememberRoles(ctx: RelayContext, deviceId: string, roles: readonly string[]): Promise<void> {
  const stored = await ctx.store.getDeviceRoles(deviceId);
  if (stored && stored.length === roles.length && stored.every((r, i) => r === roles[i])) return; // ct-ok: public role names
  await ctx.store.setDeviceRoles(deviceId, roles);
}
