/**
 * An undo stack for a plugin's ADD: each step that changed something pushes how to take it back,
 * and a failure later on runs those actions newest first, each even when another fails, so a
 * refused ADD leaves nothing behind (instead of a flag per step and a cleanup that reads them).
 */

/** Undo actions of one ADD, run in reverse order by `unwind`. */
export class UndoStack {
  private readonly actions: Array<{ what: string; undo: () => unknown }> = [];

  /** Record how to take back a step that has just succeeded (`what` names it in logs). */
  push(what: string, undo: () => unknown): void {
    this.actions.push({ what, undo });
  }

  /** How many actions are recorded. */
  get size(): number {
    return this.actions.length;
  }

  /**
   * Run every recorded action, newest first, each even when an earlier one failed; failures are
   * only logged (the ADD's own error is what the runtime must see). The stack is empty afterwards.
   */
  async unwind(log: (msg: string) => void = () => {}): Promise<void> {
    while (this.actions.length > 0) {
      const { what, undo } = this.actions.pop()!;
      try {
        await undo();
      } catch (e) {
        log(`undoing ${what} failed: ${(e as Error).message}`);
      }
    }
  }
}
