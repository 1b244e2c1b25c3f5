/**
 * Conversation bench, case 1a: the sender's CPU cost of one conversation message, in process.
 *
 * A conversation of n members is fanned out pairwise (docs/architecture.md "Conversations with
 * several members"): the sender's `ConversationBook.prepareMessage` makes the frame (seq, epoch,
 * members hash, its own history item, persisted), then `ConversationEngine.encrypt` seals one
 * engine message of kind `conversation` per other member, each persisted with its session
 * before it returns. One op = both, for every other member: what a device does between the
 * app's `send` and handing the envelopes to the relay. Sessions are established (and confirmed
 * by a reply) before the clock starts; MemoryStores (client storage is not what this measures).
 * Two patterns: `oneWay`, the sender writes and nobody answers, so an op is n − 1 symmetric
 * ratchet steps; `replies`, every member decrypts each message and answers it (as receipts and
 * replies do in a live conversation) before the next, so every encryption of an op also takes a
 * DH ratchet step. The members' work is untimed. Each message's CPU time (`process.cpuUsage`,
 * user + system, all threads) is taken on its own.
 */
import { ConversationBook, ConversationEngine, MemoryStore, type Member, type OutgoingEnvelope } from '@parley/engine';

/** 100 bytes of text, like the relay bench's messages. */
export const TEXT = 'x'.repeat(100);

/** One sender with established sessions to every other member of one conversation. */
export interface FanoutGroup {
  readonly size: number;
  /** Seals one message to every other member (the timed op); returns the envelopes sealed. */
  send(messageId: string): Promise<number>;
  /**
   * After a timed op (untimed): the relay's acks (the envelopes leave the outbox) and, with
   * `replies`, every member decrypts its envelope and answers, and the sender decrypts the answers.
   */
  settle(messageId: string, replies: boolean): Promise<void>;
  close(): Promise<void>;
}

const enc = new TextEncoder();

/** Makes the sender and `size − 1` members, establishes every pairwise session, creates the conversation. */
export async function fanoutGroup(size: number): Promise<FanoutGroup> {
  const store = new MemoryStore();
  const sender = await ConversationEngine.open({ store });
  const book = await ConversationBook.open({ store, deviceId: sender.deviceId });
  const others: ConversationEngine[] = [];
  for (let i = 1; i < size; i++) others.push(await ConversationEngine.open({ store: new MemoryStore() }));
  let k = 0;
  for (const peer of others) {
    // X3DH with a one-time prekey, then a reply, so the sender's next messages are plain ratchet messages.
    const upload = await peer.prekeyUpload(1);
    const bundle = { identity: upload.identity, signedPrekey: upload.signedPrekey, oneTimePrekey: upload.oneTimePrekeys[0]! };
    const first = await sender.encrypt(peer.deviceId, enc.encode('hello'), { messageId: `setup${k++}`, bundle, type: 'text' });
    await peer.receive({ from: sender.deviceId, id: first.id, envelope: first.envelope });
    await sender.markDelivered(peer.deviceId, first.id);
    const back = await peer.encrypt(sender.deviceId, enc.encode('hello back'), { messageId: `setup${k++}`, type: 'text' });
    await sender.receive({ from: peer.deviceId, id: back.id, envelope: back.envelope });
    await peer.markDelivered(sender.deviceId, back.id);
  }
  const self: Member = { deviceId: sender.deviceId, role: 'customer', name: 'Customer' };
  const members: Member[] = others.map((o, i) => ({ deviceId: o.deviceId, role: 'agent', name: `Agent ${i + 1}` }));
  const info = await book.create(members, self);
  let sealed: OutgoingEnvelope[] = [];
  return {
    size,
    async send(messageId) {
      const { recipients, frame } = await book.prepareMessage(info.id, { type: 'text', text: TEXT }, messageId);
      sealed = [];
      for (const to of recipients) sealed.push(await sender.encrypt(to, frame, { messageId, type: 'conversation' }));
      return recipients.length;
    },
    async settle(messageId, replies) {
      for (const peer of others) await sender.markDelivered(peer.deviceId, messageId);
      if (!replies) return;
      for (const out of sealed) {
        const peer = others.find((o) => o.deviceId === out.to)!;
        await peer.receive({ from: sender.deviceId, id: out.id, envelope: out.envelope });
        await peer.consume(sender.deviceId, out.id);
        const back = await peer.encrypt(sender.deviceId, enc.encode('ok'), { messageId: `${messageId}-re`, type: 'text' });
        await peer.markDelivered(sender.deviceId, back.id);
        await sender.receive({ from: peer.deviceId, id: back.id, envelope: back.envelope });
        await sender.consume(peer.deviceId, back.id);
      }
    },
    async close() {
      await Promise.all([sender, ...others].map((e) => e.close()));
    },
  };
}

/** CPU milliseconds (user + system) of each of `count` messages of `group`, after `warmup` untimed ones. */
export async function measureFanoutCpu(group: FanoutGroup, o: { warmup: number; count: number; prefix: string; replies: boolean }): Promise<number[]> {
  for (let i = 0; i < o.warmup; i++) {
    const id = `${o.prefix}w${i}`;
    await group.send(id);
    await group.settle(id, o.replies);
  }
  const cpuMs: number[] = [];
  for (let i = 0; i < o.count; i++) {
    const id = `${o.prefix}m${i}`;
    const before = process.cpuUsage();
    await group.send(id);
    const d = process.cpuUsage(before);
    cpuMs.push((d.user + d.system) / 1000);
    await group.settle(id, o.replies);
  }
  return cpuMs;
}
