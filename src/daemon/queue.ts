/**
 * The one queue every change of the director's model goes through: socket
 * requests from any connection, the tick, and any later internal writer.
 * A task starts only after the previous one has finished, awaits included,
 * so a check made at its start still holds when it writes.
 */
export class MutationQueue {
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;

  run<T>(task: () => T | Promise<T>): Promise<T> {
    this.#pending++;
    const result = this.#tail.then(task).finally(() => {
      this.#pending--;
    });
    // A failed task fails its caller only; the queue goes on.
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** Tasks queued or running. */
  get pending(): number {
    return this.#pending;
  }
}
