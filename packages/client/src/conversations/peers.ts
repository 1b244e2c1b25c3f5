/**
 * Who may be a member (docs/threats.md C18, H1): each peer of a new conversation is verified as
 * `send` verifies it (its published statements, checked by the engine against the pinned org
 * key) and must be a certified bot (org certificate role `bot`) or a staff device (agent or
 * supervisor); an agent is admitted only while it holds the ticket's claim at the relay.
 */
import { ParleyError, isParleyError } from '@parley/protocol';
import type { PeerStaffInfo } from '@parley/engine';
import type { Member } from '@parley/engine';
import type { ConversationPort } from './port.js';

/** Staff roles that may join a conversation, in the order a member's role is taken from. */
const JOINING_ROLES = ['agent', 'supervisor'] as const;

/** The conversation role of a staff device: `agent` or `supervisor`, or undefined if it holds neither. */
export function staffMemberRole(staff: PeerStaffInfo | undefined): 'agent' | 'supervisor' | undefined {
  if (!staff) return undefined;
  return JOINING_ROLES.find((r) => staff.roles.includes(r));
}

/** `peer` as a member of a new conversation, verified (see the module comment). */
export async function verifiedMember(port: ConversationPort, peer: string): Promise<Member> {
  if (!port.orgKeyPinned) {
    // Nothing to verify certificates against: accepted as `send` accepts a peer (first use).
    return { deviceId: peer, role: 'bot', name: 'bot' };
  }
  if (!port.peerCertificate(peer) && !port.peerStaff(peer)) {
    // Throws the engine's refusal (UNTRUSTED_IDENTITY with the reason) for a forged or invalid statement.
    await port.refreshStatements(peer);
  }
  const staff = port.peerStaff(peer);
  const role = staffMemberRole(staff);
  if (staff && role) return { deviceId: peer, role, name: staff.displayName };
  const cert = port.peerCertificate(peer);
  if (cert?.role === 'bot') return { deviceId: peer, role: 'bot', name: cert.label };
  const reason = staff || cert ? 'role' : 'missing';
  throw new ParleyError('UNTRUSTED_IDENTITY', 'a conversation member must be a certified bot or a staff device (agent or supervisor)', { details: { reason, peer } });
}

/** The member entry of a verified agent or supervisor. @throws ParleyError `UNTRUSTED_IDENTITY` otherwise. */
export function agentMember(port: ConversationPort, agent: string): Member {
  const staff = port.peerStaff(agent);
  const role = staffMemberRole(staff);
  if (!staff || !role) {
    throw new ParleyError('UNTRUSTED_IDENTITY', 'the device is not a verified agent or supervisor', { details: { reason: staff ? 'role' : 'missing', peer: agent } });
  }
  return { deviceId: agent, role, name: staff.displayName };
}

/** Relay errors after which asking again later can help (the frame stays in the inbox). */
export function isRetryable(e: unknown): boolean {
  return isParleyError(e, 'TRANSPORT') || isParleyError(e, 'RATE_LIMITED') || isParleyError(e, 'INTERNAL');
}

function notClaimant(): ParleyError {
  return new ParleyError('FORBIDDEN', 'the agent does not hold the ticket at the relay', { details: { reason: 'notClaimant' } });
}

/**
 * Checks at the relay that `ticket` is this device's and claimed by `agent`.
 * @throws ParleyError `FORBIDDEN` reason `notClaimant`, or the relay's retryable error
 *   (`TRANSPORT`, `RATE_LIMITED`, `INTERNAL`) as is.
 */
export async function checkClaim(port: ConversationPort, agent: string, ticket: string): Promise<void> {
  let claimedBy: string | undefined;
  let customer: string;
  try {
    const t = await port.link.getTicket(ticket);
    claimedBy = t.claimedBy;
    customer = t.customer;
  } catch (e) {
    if (isRetryable(e)) throw e;
    // Unknown ticket, or not this device's: nobody holds a claim this device could honour.
    throw notClaimant();
  }
  if (claimedBy !== agent || customer !== port.deviceId) throw notClaimant(); // ct-ok: public device ids
}
