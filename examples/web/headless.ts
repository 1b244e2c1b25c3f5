/**
 * `serve.ts --headless`: the scripted conversation through the real widget in Debian's Chromium,
 * plus the checks a CI smoke test wants (the SDK verified the bot against the pins, history after
 * reload, relay saw only ciphertext). Without Chromium it says so and fails: CI installs it.
 */
import { SCRIPT, hasChromium, launchChromium, newWidgetContext, openWidget, runScript, widgetState, allMessages, CHROMIUM_PATH } from './lib/driver.js';

export async function runScriptedConversation(url: string, io: { log: (line: string) => void }): Promise<void> {
  if (!hasChromium()) throw new Error(`${CHROMIUM_PATH} not found: install Debian's chromium package for the headless demo`);
  const browser = await launchChromium();
  try {
    const context = await newWidgetContext(browser);
    const { page, errors } = await openWidget(context, `${url}/`);
    const state = await widgetState(page);
    if (state.phase !== 'ready') throw new Error(`widget did not start: ${state.phase} ${state.errorCode ?? ''}`);
    io.log(`widget ready: device ${state.deviceId}, backend ${state.backend}`);

    // The SDK checks the bot (org certificate, enclave attestation) before the first message.
    const transcript = await runScript(page);
    const checked = await widgetState(page);
    io.log(`bot ${checked.verified ? 'verified by the SDK against the pinned org key and measurement' : `NOT verified (${checked.errorCode ?? 'no verdict'})`}`);
    if (!checked.verified) throw new Error('the bot badge is not verified');
    for (const line of transcript) io.log(`  ${line.replace(/\s+/g, ' ').slice(0, 160)}`);

    await page.reload();
    await page.waitForFunction(() => document.body.dataset.phase === 'ready');
    const again = await allMessages(page);
    if (again.length < transcript.length) throw new Error(`history after reload: ${again.length} of ${transcript.length} lines`);
    io.log(`reload: ${again.length} lines of history restored, same device: ${(await widgetState(page)).deviceId === state.deviceId}`);

    const events = (await (await fetch(`${url}/api/relay-events.json`)).json()) as { kind: string; envelope?: string }[];
    const stored = events.filter((e) => e.kind === 'stored');
    const secrets = [SCRIPT.order, SCRIPT.form.name, SCRIPT.form.email, SCRIPT.form.address, 'Monday to Friday'];
    for (const e of stored) {
      const bytes = Buffer.from(e.envelope ?? '', 'base64');
      for (const s of secrets) if (bytes.includes(Buffer.from(s))) throw new Error(`plaintext "${s}" found in an envelope the relay stored`);
    }
    io.log(`relay stored ${stored.length} envelopes, none holds any of the conversation's plaintext`);
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
    await context.close();
  } finally {
    await browser.close();
  }
}
