/**
 * Archive opening notices (relay README "Compliance archive"): when the compliance officer opens
 * or exports an archive this device appended to (`parley-compliance open|export --reason`), the
 * relay pushes `archiveOpened { ref, at, reason }`; the client maps the opaque ref back to the
 * conversation (`archiveRef(id)` of each conversation it holds) and emits
 * `archiveOpened { conversation, at, reason }`. The relay pushes each opening once per device:
 * the link acknowledges it after this ran; a ref of no conversation held here (erased since)
 * is acknowledged without an event.
 */
import { archiveRef } from '@parley/protocol';
import type { ConversationBook } from '@parley/engine';
import type { ArchiveOpenedNotice } from '@parley/protocol/wire';

/** The app-facing event: the compliance officer opened this conversation's archive. */
export interface ArchiveOpenedEvent {
  readonly conversation: string;
  /** When it was opened, ms since the epoch (the relay's record of the opening). */
  readonly at: number;
  /** The reason the opener gave (free text from the organisation: show it as such). */
  readonly reason: string;
}

/** The `archiveOpened` event of a notice: its ref mapped to a conversation of `book`; `undefined` when none matches. */
export function archiveOpenedEvent(book: ConversationBook, notice: ArchiveOpenedNotice): ArchiveOpenedEvent | undefined {
  const info = book.list().find((c) => archiveRef(c.id) === notice.ref); // ct-ok: public opaque refs
  return info && { conversation: info.id, at: notice.at, reason: notice.reason };
}

/**
 * Holds notices until the app listens for `archiveOpened` (a notice pushed at login arrives
 * before the app's listeners), so none is acknowledged unseen: {@link deliver} resolves, and
 * the link acknowledges, only once the event went to a listener.
 */
export class ArchiveNoticeQueue {
  readonly #emit: (event: ArchiveOpenedEvent) => void;
  readonly #listening: () => boolean;
  #waiting: { readonly event: ArchiveOpenedEvent; readonly done: () => void }[] = [];

  constructor(emit: (event: ArchiveOpenedEvent) => void, listening: () => boolean) {
    this.#emit = emit;
    this.#listening = listening;
  }

  /** Emits now when the app listens, else once it does. */
  deliver(event: ArchiveOpenedEvent): Promise<void> {
    if (this.#listening()) {
      this.#emit(event);
      return Promise.resolve();
    }
    return new Promise((done) => this.#waiting.push({ event, done }));
  }

  /** The app added a listener: emits what waited. */
  flush(): void {
    if (!this.#listening()) return;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) {
      this.#emit(w.event);
      w.done();
    }
  }
}
