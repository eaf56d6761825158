/**
 * Watches the directories that recorded attachments' netns files live in (e.g. `/run/netns`) and
 * calls back soon after a file there disappears, so that reconcile (src/agent/reconcile.ts) runs a
 * pass then instead of at its next periodic one. Best effort: a directory that cannot be watched
 * (missing, under /proc where inotify tells nothing, out of inotify watches, removed while watched)
 * is left to the periodic pass.
 */

import { existsSync, watch, type FSWatcher } from "node:fs";
import { dirname, join } from "node:path";

/** Calls `onGone` once, `delayMs` after the first of a burst of netns files went away. */
export class NetnsWatch {
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(
    private readonly onGone: () => void,
    private readonly delayMs = 250,
  ) {}

  /** The directories watched now. */
  get directories(): string[] {
    return [...this.watchers.keys()];
  }

  /**
   * Also watch the directories of these netns paths. A directory stays watched once added (a node
   * has one or two, e.g. /run/netns): a pod made and gone between two passes is then seen too.
   */
  add(netnsPaths: Iterable<string>): void {
    if (this.closed) return;
    const want = new Set<string>();
    for (const p of netnsPaths) if (p.startsWith("/") && !p.startsWith("/proc/")) want.add(dirname(p));
    for (const dir of want) {
      if (this.watchers.has(dir)) continue;
      try {
        // a name that still exists is a netns being added (or replaced): no pass for that
        const w = watch(dir, { persistent: false }, (_event, name) => {
          if (name && !existsSync(join(dir, String(name)))) this.fire();
        });
        w.on("error", () => {
          w.close();
          if (this.watchers.get(dir) === w) this.watchers.delete(dir);
        });
        this.watchers.set(dir, w);
      } catch {
        // not watchable: the periodic pass finds what goes there
      }
    }
  }

  /** Stop watching (a callback pending is dropped). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  private fire(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closed) this.onGone();
    }, this.delayMs);
  }
}
