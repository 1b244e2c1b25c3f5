/**
 * Protocol-only demo: a customer and a support bot establish a session (X3DH) and exchange a
 * few messages (Double Ratchet), printing each plaintext beside exactly what a relay would
 * carry: routing ids, sizes and opaque bytes.
 */
import { initCrypto, Account, Session, safetyNumber, formatSafetyNumber, parseMessage, toHex } from '@parley/protocol';

const text = new TextEncoder();
const untext = new TextDecoder();

function relayView(from: string, to: string, wire: Uint8Array): string {
  const kind = parseMessage(wire).type === 1 ? 'prekey msg' : 'message';
  return `relay sees ${from.slice(0, 8)}→${to.slice(0, 8)} ${kind.padEnd(10)} ${String(wire.length).padStart(4)} B  ${toHex(wire.subarray(0, 24))}…`;
}

export async function runProtocolDemo(log: (line: string) => void = console.log): Promise<void> {
  const backend = await initCrypto();
  log(`crypto backend: ${backend.name}`);
  const customer = Account.create();
  const bot = Account.create();
  bot.generateOneTimePrekeys(5);
  log(`customer device ${customer.deviceId}`);
  log(`bot device      ${bot.deviceId}`);

  const customerSession = customer.createOutboundSession(bot.bundle());
  const first = customerSession.encrypt(text.encode('Hi, where is my order #1042?'));
  log(relayView(customer.deviceId, bot.deviceId, first));
  const { session: botSessionStart, plaintext } = bot.createInboundSession(first);
  let botSession: Session = botSessionStart;
  log(`  bot reads:      "${untext.decode(plaintext)}"`);

  const script: [Session, string, string, string][] = [
    [botSession, 'It left our warehouse this morning and arrives tomorrow.', bot.deviceId, customer.deviceId],
    [customerSession, 'Great, thanks!', customer.deviceId, bot.deviceId],
  ];
  for (const [sender, line, from, to] of script) {
    const wire = sender.encrypt(text.encode(line));
    log(relayView(from, to, wire));
    const receiver = sender === customerSession ? botSession : customerSession;
    log(`  ${receiver === botSession ? 'bot' : 'customer'} reads: ${' '.repeat(receiver === botSession ? 5 : 0)}"${untext.decode(receiver.decrypt(wire))}"`);
  }

  // A restart mid-conversation: the bot's session survives as a pickle.
  botSession = Session.unpickle(botSession.pickle());
  const after = customerSession.encrypt(text.encode('One more question after your restart.'));
  log(relayView(customer.deviceId, bot.deviceId, after));
  log(`  bot reads:      "${untext.decode(botSession.decrypt(after))}" (after restoring its session from a pickle)`);
  log(`safety number (same on both sides): ${formatSafetyNumber(safetyNumber(customer.publicIdentity, bot.publicIdentity))}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await runProtocolDemo();
