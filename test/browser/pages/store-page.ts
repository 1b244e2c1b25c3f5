/**
 * Test page for `@parley/client/browser`: exposes the store and lock helpers on `window` so the
 * Playwright test can drive them with `page.evaluate`.
 */
import { IndexedDbStore, WRAPPING_KEY_ID, acquireWriterLock, isWriterLockHeld, writerLockName } from '@parley/client/browser';
import { unsafeTestingWrappingKey } from '@parley/client/testing';

const api = { IndexedDbStore, WRAPPING_KEY_ID, acquireWriterLock, isWriterLockHeld, writerLockName, unsafeTestingWrappingKey };
(window as unknown as { parley: typeof api }).parley = api;
document.getElementById('status')!.textContent = 'ready';
