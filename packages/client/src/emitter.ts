/** A tiny typed event emitter (no node:events, so the client also runs in browsers). */
export type Listener<T> = (value: T) => void;

export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    this.#listeners.get(event)?.delete(listener as Listener<never>);
  }

  listenerCount<K extends keyof Events>(event: K): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  /**
   * Calls every listener; a listener that throws does not stop the others. Returns the errors
   * thrown, so the caller can report them.
   */
  emit<K extends keyof Events>(event: K, value: Events[K]): unknown[] {
    const errors: unknown[] = [];
    for (const l of [...(this.#listeners.get(event) ?? [])]) {
      try {
        (l as Listener<Events[K]>)(value);
      } catch (e) {
        errors.push(e);
      }
    }
    return errors;
  }
}
